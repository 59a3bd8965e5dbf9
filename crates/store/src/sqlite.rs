//! The SQLite backend: WAL mode, migrations embedded in the binary, one file created on demand.

use crate::{millis_comparison, OwnedPat, PatPage, PatQuery, Store, StoreError, StoredSigningKey};
use async_trait::async_trait;
use patd_core::exchange::ExchangeRecord;
use patd_core::expiry::Expiry;
use patd_core::filter::{Comparison, Filter, NameMatch, TimeField};
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::listing::SortField;
use patd_core::name::{IdentityName, PatName};
use patd_core::pat::{NewPat, PatRecord, Validity};
use patd_core::rights::{Level, Right, Rights};
use patd_core::scope::Scope;
use patd_core::secret::SecretDigest;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database behind a connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the file named by `sqlite://PATH` and migrates it.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction when the process dies; only a
            // power cut can drop the last ones. See ARCHITECTURE.md, "Durability".
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The pool, for tests that inspect the file directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

const PAT_COLUMNS: &str = "p.id, p.owner_id, p.name, p.scope, p.access_token_validity, \
     p.expiration_date, p.never_expires_acknowledged, p.managed, p.created, p.last_used";

#[async_trait]
impl Store for SqliteStore {
    async fn insert_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO identities (id, name, levels, extra_rights, created) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(identity.id.as_str())
        .bind(identity.name.as_str())
        .bind(to_json(&identity.level_names()))
        .bind(to_json(&identity.extra_rights.idn_names()))
        .bind(millis(OffsetDateTime::now_utc()))
        .execute(&self.pool)
        .await;
        match result {
            Err(err) if is_unique_violation(&err) => Err(StoreError::IdentityNameTaken),
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        sqlx::query("SELECT id, name, levels, extra_rights FROM identities WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| identity_from_row(&row, ""))
            .transpose()
    }

    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        sqlx::query("SELECT id, name, levels, extra_rights FROM identities WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| identity_from_row(&row, ""))
            .transpose()
    }

    async fn has_no_identities(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT NOT EXISTS (SELECT 1 FROM identities) AS empty")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<bool, _>("empty")?)
    }

    async fn insert_pat(&self, new_pat: &NewPat, limit: Option<u32>) -> Result<(), StoreError> {
        let pat = &new_pat.record;
        // One statement, so the count and the insert cannot be split by another writer.
        let result = sqlx::query(
            "INSERT INTO pats (id, owner_id, name, secret_digest, scope, access_token_validity, \
                 expiration_date, never_expires_acknowledged, managed, created, last_used) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE ? IS NULL OR ? = 1 \
                OR (SELECT COUNT(*) FROM pats WHERE owner_id = ? AND managed = 0) < ?",
        )
        .bind(pat.id.as_str())
        .bind(pat.owner_id.as_str())
        .bind(pat.name.as_str())
        .bind(new_pat.digest.as_bytes().as_slice())
        .bind(to_json(pat.scope.entries()))
        .bind(i64::from(pat.validity.seconds()))
        .bind(pat.expiry.date().map(millis))
        .bind(pat.never_expires_acknowledged)
        .bind(pat.managed)
        .bind(millis(pat.created))
        .bind(pat.last_used.map(millis))
        .bind(limit.map(i64::from))
        .bind(pat.managed)
        .bind(pat.owner_id.as_str())
        .bind(limit.map(i64::from))
        .execute(&self.pool)
        .await;
        match result {
            Err(err) if is_unique_violation(&err) => Err(StoreError::NameTaken),
            Err(err) => Err(err.into()),
            Ok(done) if done.rows_affected() == 0 => Err(StoreError::LimitReached {
                max: limit.unwrap_or_default(),
            }),
            Ok(_) => Ok(()),
        }
    }

    async fn pat(&self, id: &PatId) -> Result<Option<OwnedPat>, StoreError> {
        let sql = format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id = ?"
        );
        sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| owned_pat_from_row(&row))
            .transpose()
    }

    async fn list_pats(&self, query: &PatQuery) -> Result<PatPage, StoreError> {
        let request = &query.request;
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id"
        ));
        push_where(&mut select, query);
        select.push(" ORDER BY ");
        for sorter in &request.sorters {
            let direction = if sorter.descending { "DESC" } else { "ASC" };
            match sorter.field {
                SortField::Name => select.push(format!("p.name {direction}, ")),
                SortField::Created => select.push(format!("p.created {direction}, ")),
                // A missing date sorts as later than any date.
                SortField::LastUsed => select.push(format!(
                    "(p.last_used IS NULL) {direction}, p.last_used {direction}, "
                )),
                SortField::ExpirationDate => select.push(format!(
                    "(p.expiration_date IS NULL) {direction}, p.expiration_date {direction}, "
                )),
            };
        }
        select.push("p.id ASC LIMIT ");
        select.push_bind(i64::from(request.limit));
        select.push(" OFFSET ");
        select.push_bind(i64::try_from(request.offset).unwrap_or(i64::MAX));
        let items = select
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let total = if request.count {
            let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) AS total FROM pats p");
            push_where(&mut count, query);
            let row = count.build().fetch_one(&self.pool).await?;
            Some(u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or_default())
        } else {
            None
        };
        Ok(PatPage { items, total })
    }

    async fn pats_by_ids(&self, ids: &[PatId]) -> Result<Vec<OwnedPat>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id IN ("
        ));
        let mut separated = select.separated(", ");
        for id in ids {
            separated.push_bind(id.as_str());
        }
        select.push(")");
        select
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect()
    }

    async fn update_pats(&self, pats: &[PatRecord]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for pat in pats {
            let result = update_statement(pat).execute(&mut *transaction).await;
            match result {
                Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
                Err(err) => return Err(err.into()),
                Ok(done) if done.rows_affected() == 0 => return Err(StoreError::NotFound),
                Ok(_) => {}
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn update_pat(&self, pat: &PatRecord) -> Result<(), StoreError> {
        let result = update_statement(pat).execute(&self.pool).await;
        match result {
            Err(err) if is_unique_violation(&err) => Err(StoreError::NameTaken),
            Err(err) => Err(err.into()),
            Ok(done) if done.rows_affected() == 0 => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
        }
    }

    async fn delete_pat(&self, id: &PatId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pats WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pat_for_exchange(&self, id: &PatId) -> Result<Option<ExchangeRecord>, StoreError> {
        let sql = format!(
            "SELECT {PAT_COLUMNS}, p.secret_digest, i.name AS owner_name, \
                 i.levels AS owner_levels, i.extra_rights AS owner_extra_rights \
             FROM pats p JOIN identities i ON i.id = p.owner_id WHERE p.id = ?"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let pat = pat_from_row(&row)?;
        let digest_bytes: Vec<u8> = row.try_get("secret_digest")?;
        let digest = SecretDigest::from_bytes(&digest_bytes)
            .ok_or_else(|| corrupt("secret_digest", "not 32 bytes"))?;
        let owner = identity_from_row(&row, "owner_")?;
        Ok(Some(ExchangeRecord { pat, digest, owner }))
    }

    async fn record_last_used(
        &self,
        id: &PatId,
        at: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pats SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used <= ?)",
        )
        .bind(millis(at))
        .bind(id.as_str())
        .bind(millis(not_after))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query("SELECT kid, private_pem, created FROM signing_keys ORDER BY created, kid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredSigningKey {
                    kid: row.try_get("kid")?,
                    private_pem: row.try_get("private_pem")?,
                    created: from_millis(row.try_get("created")?, "created")?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, created) VALUES (?, ?, ?) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.private_pem)
        .bind(millis(key.created))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}

fn update_statement(pat: &PatRecord) -> Query<'_, Sqlite, SqliteArguments<'_>> {
    sqlx::query(
        "UPDATE pats SET name = ?, scope = ?, expiration_date = ?, \
             never_expires_acknowledged = ? WHERE id = ?",
    )
    .bind(pat.name.as_str())
    .bind(to_json(pat.scope.entries()))
    .bind(pat.expiry.date().map(millis))
    .bind(pat.never_expires_acknowledged)
    .bind(pat.id.as_str())
}

/// The `WHERE` clause of a list: visibility, then the client's filter. Every value is bound.
fn push_where(builder: &mut QueryBuilder<'_, Sqlite>, query: &PatQuery) {
    builder.push(" WHERE 1 = 1");
    if let Some(owner) = &query.owner {
        builder.push(" AND p.owner_id = ");
        builder.push_bind(owner.as_str().to_owned());
    }
    if !query.include_managed {
        builder.push(" AND p.managed = 0");
    }
    if let Some(filter) = &query.request.filter {
        builder.push(" AND ");
        push_filter(builder, filter);
    }
}

fn time_column(field: TimeField) -> &'static str {
    match field {
        TimeField::Created => "p.created",
        TimeField::LastUsed => "p.last_used",
        TimeField::ExpirationDate => "p.expiration_date",
    }
}

/// Every comparison is two-valued (a missing date compares false, never NULL), so `not` is the
/// exact complement.
fn push_filter(builder: &mut QueryBuilder<'_, Sqlite>, filter: &Filter) {
    match filter {
        Filter::And(left, right) | Filter::Or(left, right) => {
            let joiner = if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            builder.push("(");
            push_filter(builder, left);
            builder.push(joiner);
            push_filter(builder, right);
            builder.push(")");
        }
        Filter::Not(inner) => {
            builder.push("(NOT ");
            push_filter(builder, inner);
            builder.push(")");
        }
        Filter::Compare(Comparison::Time { field, op, value }) => {
            let column = time_column(*field);
            let (sql_op, bound) = millis_comparison(*op, *value);
            builder.push(format!("({column} IS NOT NULL AND {column} {sql_op} "));
            builder.push_bind(bound);
            builder.push(")");
        }
        Filter::Compare(Comparison::Presence { field, present }) => {
            let test = if *present { "IS NOT NULL" } else { "IS NULL" };
            builder.push(format!("({} {test})", time_column(*field)));
        }
        Filter::Compare(Comparison::Name(NameMatch::Eq(value))) => {
            builder.push("(p.name = ");
            builder.push_bind(value.clone());
            builder.push(")");
        }
        Filter::Compare(Comparison::Name(NameMatch::Contains(value))) => {
            builder.push("(instr(p.name, ");
            builder.push_bind(value.clone());
            builder.push(") > 0)");
        }
        Filter::Compare(Comparison::Name(NameMatch::StartsWith(value))) => {
            builder.push("(substr(p.name, 1, length(");
            builder.push_bind(value.clone());
            builder.push(")) = ");
            builder.push_bind(value.clone());
            builder.push(")");
        }
        Filter::Compare(Comparison::Name(NameMatch::In(values))) => {
            builder.push("(p.name IN (");
            let mut separated = builder.separated(", ");
            for value in values {
                separated.push_bind(value.clone());
            }
            builder.push("))");
        }
        Filter::Compare(Comparison::Managed(value)) => {
            builder.push("(p.managed = ");
            builder.push_bind(*value);
            builder.push(")");
        }
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn millis(at: OffsetDateTime) -> i64 {
    // Milliseconds since the epoch fit an i64 for every date `time` can hold.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(value: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000_000)
        .map_err(|err| corrupt(column, err))
}

fn to_json(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn from_json(raw: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|err| corrupt(column, err))
}

fn corrupt(column: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {err}"))
}

fn pat_from_row(row: &SqliteRow) -> Result<PatRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let owner_id: String = row.try_get("owner_id")?;
    let name: String = row.try_get("name")?;
    let scope: String = row.try_get("scope")?;
    let validity: i64 = row.try_get("access_token_validity")?;
    let expiration: Option<i64> = row.try_get("expiration_date")?;
    let last_used: Option<i64> = row.try_get("last_used")?;
    Ok(PatRecord {
        id: PatId::parse(&id).ok_or_else(|| corrupt("id", &id))?,
        owner_id: IdentityId::parse(&owner_id).ok_or_else(|| corrupt("owner_id", &owner_id))?,
        name: PatName::parse(&name).map_err(|err| corrupt("name", err))?,
        scope: Scope::parse(Some(from_json(&scope, "scope")?))
            .map_err(|err| corrupt("scope", err))?,
        validity: Validity::parse(Some(validity))
            .map_err(|err| corrupt("access_token_validity", err))?,
        expiry: Expiry::from_date(
            expiration
                .map(|value| from_millis(value, "expiration_date"))
                .transpose()?,
        ),
        never_expires_acknowledged: row.try_get("never_expires_acknowledged")?,
        managed: row.try_get("managed")?,
        created: from_millis(row.try_get("created")?, "created")?,
        last_used: last_used
            .map(|value| from_millis(value, "last_used"))
            .transpose()?,
    })
}

fn owned_pat_from_row(row: &SqliteRow) -> Result<OwnedPat, StoreError> {
    Ok(OwnedPat {
        pat: pat_from_row(row)?,
        owner_name: row.try_get("owner_name")?,
    })
}

/// Reads an identity from columns named `{prefix}id`, `{prefix}name`, … ; the exchange query
/// prefixes them with `owner_` and takes the id from the PAT.
fn identity_from_row(row: &SqliteRow, prefix: &str) -> Result<Identity, StoreError> {
    let id: String = if prefix.is_empty() {
        row.try_get("id")?
    } else {
        row.try_get("owner_id")?
    };
    let name: String = row.try_get(format!("{prefix}name").as_str())?;
    let levels: String = row.try_get(format!("{prefix}levels").as_str())?;
    let extra: String = row.try_get(format!("{prefix}extra_rights").as_str())?;
    Ok(Identity {
        id: IdentityId::parse(&id).ok_or_else(|| corrupt("identity id", &id))?,
        name: IdentityName::parse(&name).map_err(|err| corrupt("identity name", err))?,
        levels: from_json(&levels, "levels")?
            .iter()
            .map(|level| Level::parse(level))
            .collect::<Result<_, _>>()
            .map_err(|err| corrupt("levels", err))?,
        extra_rights: from_json(&extra, "extra_rights")?
            .iter()
            .map(|right| Right::parse_known(right))
            .collect::<Result<Rights, _>>()
            .map_err(|err| corrupt("extra_rights", err))?,
    })
}
