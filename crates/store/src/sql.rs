//! SQL shared by the backends: the list query's `WHERE` and `ORDER BY` built from the typed
//! filter (every value bound, never pasted), and rows turned back into domain values. The few
//! places where SQLite and PostgreSQL differ go through [`Dialect`] and [`RowAccess`].

use crate::{
    millis_comparison, LastUse, OwnedPat, PatQuery, SigningKeyReplacement, StoreError,
    StoredSigningKey,
};
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
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, QueryBuilder, Type};
use time::OffsetDateTime;

/// The columns of a PAT, from `pats p`.
pub(crate) const PAT_COLUMNS: &str = "p.id, p.owner_id, p.name, p.scope, p.access_token_validity, \
     p.expiration_date, p.never_expires_acknowledged, p.managed, p.created, p.last_used";

/// What differs between the SQL of two backends.
pub(crate) trait Dialect: Database {
    fn bind_text(builder: &mut QueryBuilder<'_, Self>, value: String);
    fn bind_int(builder: &mut QueryBuilder<'_, Self>, value: i64);
    fn bind_bool(builder: &mut QueryBuilder<'_, Self>, value: bool);
    /// `name` contains `value`, case-sensitively.
    fn push_contains(builder: &mut QueryBuilder<'_, Self>, value: &str);
    /// `name` starts with `value`, case-sensitively.
    fn push_starts_with(builder: &mut QueryBuilder<'_, Self>, value: &str);
    /// `p.name` in an ORDER BY, compared byte-wise on every backend.
    const NAME_ORDER: &'static str;
    /// The first five positional parameters, for statements written once for both backends.
    const PARAMS: [&'static str; 5];
    /// The statement that announces a write to other nodes (channel, payload), delivered when
    /// the transaction commits; `None` where every writer is this process.
    const NOTIFY: Option<&'static str>;
    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// The `n`th positional parameter (from 1), for statements built as text.
    fn param(n: usize) -> String;
}

/// The channel that carries the id of every PAT written.
pub(crate) const PATS_CHANNEL: &str = "patd_pats";
/// The channel that says a signing key was added or a node registered its issuer.
pub(crate) const KEYS_CHANNEL: &str = "patd_keys";
/// The channel that says `lastUsed` was written for some PATs.
pub(crate) const LISTS_CHANNEL: &str = "patd_lists";

/// The setting that marks the first signing key as created, so that it is created once.
const FIRST_KEY_SETTING: &str = "first_signing_key";

/// The `WHERE` clause of a list: visibility, then the client's filter.
pub(crate) fn push_where<DB: Dialect>(builder: &mut QueryBuilder<'_, DB>, query: &PatQuery) {
    builder.push(" WHERE 1 = 1");
    if let Some(owner) = &query.owner {
        builder.push(" AND p.owner_id = ");
        DB::bind_text(builder, owner.as_str().to_owned());
    }
    if !query.include_managed {
        builder.push(" AND p.managed = ");
        DB::bind_bool(builder, false);
    }
    if let Some(filter) = &query.request.filter {
        builder.push(" AND ");
        push_filter(builder, filter);
    }
}

/// The `ORDER BY` of a list: the sorters, then `id` so that the order is total and pages never
/// overlap. A missing date sorts as later than any date.
pub(crate) fn push_order<DB: Dialect>(builder: &mut QueryBuilder<'_, DB>, query: &PatQuery) {
    builder.push(" ORDER BY ");
    for sorter in &query.request.sorters {
        let direction = if sorter.descending { "DESC" } else { "ASC" };
        match sorter.field {
            SortField::Name => builder.push(format!("{} {direction}, ", DB::NAME_ORDER)),
            SortField::Created => builder.push(format!("p.created {direction}, ")),
            SortField::LastUsed => builder.push(format!(
                "(p.last_used IS NULL) {direction}, p.last_used {direction}, "
            )),
            SortField::ExpirationDate => builder.push(format!(
                "(p.expiration_date IS NULL) {direction}, p.expiration_date {direction}, "
            )),
        };
    }
    builder.push("p.id ASC");
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
fn push_filter<DB: Dialect>(builder: &mut QueryBuilder<'_, DB>, filter: &Filter) {
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
            DB::bind_int(builder, bound);
            builder.push(")");
        }
        Filter::Compare(Comparison::Presence { field, present }) => {
            let test = if *present { "IS NOT NULL" } else { "IS NULL" };
            builder.push(format!("({} {test})", time_column(*field)));
        }
        Filter::Compare(Comparison::Name(NameMatch::Eq(value))) => {
            builder.push("(p.name = ");
            DB::bind_text(builder, value.clone());
            builder.push(")");
        }
        Filter::Compare(Comparison::Name(NameMatch::Contains(value))) => {
            DB::push_contains(builder, value)
        }
        Filter::Compare(Comparison::Name(NameMatch::StartsWith(value))) => {
            DB::push_starts_with(builder, value)
        }
        Filter::Compare(Comparison::Name(NameMatch::In(values))) => {
            builder.push("(p.name IN (");
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    builder.push(", ");
                }
                DB::bind_text(builder, value.clone());
            }
            builder.push("))");
        }
        Filter::Compare(Comparison::Managed(value)) => {
            builder.push("(p.managed = ");
            DB::bind_bool(builder, *value);
            builder.push(")");
        }
    }
}

/// Typed column reads, implemented by each backend's row type.
pub(crate) trait RowAccess {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
}

/// Implements [`RowAccess`] for a backend's row type: the same `try_get` calls, typed per backend.
macro_rules! row_access {
    ($row:ty) => {
        impl $crate::sql::RowAccess for $row {
            fn text(&self, column: &str) -> Result<String, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn boolean(&self, column: &str) -> Result<bool, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
pub(crate) use row_access;

/// Implements the binding half of [`Dialect`] for a backend: `push_bind` of each value type.
macro_rules! dialect_binds {
    () => {
        fn rows_affected(result: &Self::QueryResult) -> u64 {
            result.rows_affected()
        }
        fn bind_text(builder: &mut QueryBuilder<'_, Self>, value: String) {
            builder.push_bind(value);
        }
        fn bind_int(builder: &mut QueryBuilder<'_, Self>, value: i64) {
            builder.push_bind(value);
        }
        fn bind_bool(builder: &mut QueryBuilder<'_, Self>, value: bool) {
            builder.push_bind(value);
        }
    };
}
pub(crate) use dialect_binds;

/// The columns a new PAT's row fills, in the order `push_new_pat` binds them.
pub(crate) const NEW_PAT_COLUMNS: &str = "id, owner_id, name, secret_digest, scope, \
     access_token_validity, expiration_date, never_expires_acknowledged, managed, created, last_used";

/// How many rows one multi-row `INSERT` carries: eleven parameters a row stay well under both
/// backends' limits.
pub(crate) const INSERT_CHUNK: usize = 1_000;

/// Binds the columns of `NEW_PAT_COLUMNS` for one new PAT.
pub(crate) fn push_new_pat<'a, DB>(
    row: &mut Separated<'_, 'a, DB, &'static str>,
    new_pat: &'a NewPat,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    &'a [u8]: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
{
    let pat = &new_pat.record;
    row.push_bind(pat.id.as_str())
        .push_bind(pat.owner_id.as_str())
        .push_bind(pat.name.as_str())
        .push_bind(new_pat.digest.as_bytes().as_slice())
        .push_bind(to_json(pat.scope.entries()))
        .push_bind(i64::from(pat.validity.seconds()))
        .push_bind(pat.expiry.date().map(millis))
        .push_bind(pat.never_expires_acknowledged)
        .push_bind(pat.managed)
        .push_bind(millis(pat.created))
        .push_bind(pat.last_used.map(millis));
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    // Milliseconds since the epoch fit an i64 for every date `time` can hold.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_millis(value: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000_000)
        .map_err(|err| corrupt(column, err))
}

pub(crate) fn to_json(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn from_json(raw: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|err| corrupt(column, err))
}

pub(crate) fn corrupt(column: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {err}"))
}

pub(crate) fn pat_from_row(row: &impl RowAccess) -> Result<PatRecord, StoreError> {
    let id = row.text("id")?;
    let owner_id = row.text("owner_id")?;
    let name = row.text("name")?;
    let scope = row.text("scope")?;
    Ok(PatRecord {
        id: PatId::parse(&id).ok_or_else(|| corrupt("id", &id))?,
        owner_id: IdentityId::parse(&owner_id).ok_or_else(|| corrupt("owner_id", &owner_id))?,
        name: PatName::parse(&name).map_err(|err| corrupt("name", err))?,
        scope: Scope::parse(Some(from_json(&scope, "scope")?))
            .map_err(|err| corrupt("scope", err))?,
        validity: Validity::parse(Some(row.int("access_token_validity")?))
            .map_err(|err| corrupt("access_token_validity", err))?,
        expiry: Expiry::from_date(
            row.opt_int("expiration_date")?
                .map(|value| from_millis(value, "expiration_date"))
                .transpose()?,
        ),
        never_expires_acknowledged: row.boolean("never_expires_acknowledged")?,
        managed: row.boolean("managed")?,
        created: from_millis(row.int("created")?, "created")?,
        last_used: row
            .opt_int("last_used")?
            .map(|value| from_millis(value, "last_used"))
            .transpose()?,
    })
}

pub(crate) fn owned_pat_from_row(row: &impl RowAccess) -> Result<OwnedPat, StoreError> {
    Ok(OwnedPat {
        pat: pat_from_row(row)?,
        owner_name: row.text("owner_name")?,
    })
}

/// Reads an identity from `{prefix}id`-style columns; the exchange query prefixes them with
/// `owner_` and takes the id from the PAT's `owner_id`.
pub(crate) fn identity_from_row(
    row: &impl RowAccess,
    prefix: &str,
) -> Result<Identity, StoreError> {
    let id = if prefix.is_empty() {
        row.text("id")?
    } else {
        row.text("owner_id")?
    };
    let name = row.text(&format!("{prefix}name"))?;
    let levels = row.text(&format!("{prefix}levels"))?;
    let extra = row.text(&format!("{prefix}extra_rights"))?;
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

pub(crate) fn exchange_record(row: &impl RowAccess) -> Result<ExchangeRecord, StoreError> {
    let pat = pat_from_row(row)?;
    let digest = SecretDigest::from_bytes(&row.bytes("secret_digest")?)
        .ok_or_else(|| corrupt("secret_digest", "not 32 bytes"))?;
    let owner = identity_from_row(row, "owner_")?;
    Ok(ExchangeRecord { pat, digest, owner })
}

pub(crate) fn signing_key_from_row(row: &impl RowAccess) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        kid: row.text("kid")?,
        private_key: row.text("private_pem")?,
        created: from_millis(row.int("created")?, "created")?,
    })
}

/// The queries written once for both backends: identities, signing keys, settings, issuers and
/// `lastUsed`. `reader` serves the reads and `writer` the writes (SQLite has one writer).
pub(crate) struct Queries<'p, DB: Database> {
    pub reader: &'p Pool<DB>,
    pub writer: &'p Pool<DB>,
}

impl<DB> Queries<'_, DB>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    pub(crate) async fn insert(&self, identity: &Identity) -> Result<(), StoreError> {
        let [id, name, levels, rights, created] = DB::PARAMS;
        let sql = format!(
            "INSERT INTO identities (id, name, levels, extra_rights, created) \
             VALUES ({id}, {name}, {levels}, {rights}, {created})"
        );
        let result = sqlx::query::<DB>(&sql)
            .bind(identity.id.as_str())
            .bind(identity.name.as_str())
            .bind(to_json(&identity.level_names()))
            .bind(to_json(&identity.extra_rights.idn_names()))
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(self.writer)
            .await;
        match result {
            Err(err) if is_unique_violation(&err) => Err(StoreError::IdentityNameTaken),
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    /// The identity whose id, or whose name, is `value`.
    pub(crate) async fn find(
        &self,
        by: IdentityKey,
        value: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let column = match by {
            IdentityKey::Id => "id",
            IdentityKey::Name => "name",
        };
        let sql = format!(
            "SELECT id, name, levels, extra_rights FROM identities WHERE {column} = {}",
            DB::PARAMS[0]
        );
        sqlx::query::<DB>(&sql)
            .bind(value)
            .fetch_optional(self.reader)
            .await?
            .map(|row| identity_from_row(&row, ""))
            .transpose()
    }

    pub(crate) async fn none_exist(&self) -> Result<bool, StoreError> {
        let row = sqlx::query::<DB>("SELECT NOT EXISTS (SELECT 1 FROM identities) AS empty")
            .fetch_one(self.reader)
            .await?;
        row.boolean("empty")
    }

    pub(crate) async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query::<DB>(
            "SELECT kid, private_pem, created FROM signing_keys ORDER BY created, kid",
        )
        .fetch_all(self.reader)
        .await?
        .iter()
        .map(signing_key_from_row)
        .collect()
    }

    pub(crate) async fn insert_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        insert_key::<DB>(&mut *transaction, key).await?;
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, &key.kid).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Each row changes only if it still holds the text the caller read; if one does not, the
    /// transaction is rolled back and nothing is written.
    pub(crate) async fn replace_signing_keys(
        &self,
        replacements: &[SigningKeyReplacement],
    ) -> Result<bool, StoreError> {
        let [new, kid, old, ..] = DB::PARAMS;
        let sql = format!(
            "UPDATE signing_keys SET private_pem = {new} WHERE kid = {kid} AND private_pem = {old}"
        );
        let mut transaction = self.writer.begin().await?;
        for replacement in replacements {
            let done = sqlx::query::<DB>(&sql)
                .bind(replacement.new.as_str())
                .bind(replacement.kid.as_str())
                .bind(replacement.old.as_str())
                .execute(&mut *transaction)
                .await?;
            if DB::rows_affected(&done) != 1 {
                transaction.rollback().await?;
                return Ok(false);
            }
        }
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, "replaced").await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// The marker setting and the key go in one transaction: a node that starts at the same
    /// moment waits on the marker's unique key until this commits, then stores nothing.
    pub(crate) async fn insert_first_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let [setting, value, ..] = DB::PARAMS;
        let sql = format!(
            "INSERT INTO settings (key, value) VALUES ({setting}, {value}) \
             ON CONFLICT (key) DO NOTHING"
        );
        let won = sqlx::query::<DB>(&sql)
            .bind(FIRST_KEY_SETTING)
            .bind(key.kid.as_str())
            .execute(&mut *transaction)
            .await?;
        let won = DB::rows_affected(&won) == 1;
        if won {
            insert_key::<DB>(&mut *transaction, key).await?;
            notify::<DB>(&mut *transaction, KEYS_CHANNEL, &key.kid).await?;
        }
        transaction.commit().await?;
        Ok(won)
    }

    pub(crate) async fn setting_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        let [first, second, ..] = DB::PARAMS;
        let insert = format!(
            "INSERT INTO settings (key, value) VALUES ({first}, {second}) \
             ON CONFLICT (key) DO NOTHING"
        );
        sqlx::query::<DB>(&insert)
            .bind(key)
            .bind(value)
            .execute(self.writer)
            .await?;
        let select = format!("SELECT value FROM settings WHERE key = {first}");
        let row = sqlx::query::<DB>(&select)
            .bind(key)
            .fetch_one(self.writer)
            .await?;
        row.text("value")
    }

    pub(crate) async fn register_issuer(&self, url: &str) -> Result<(), StoreError> {
        let [issuer, started, ..] = DB::PARAMS;
        let sql = format!(
            "INSERT INTO issuers (url, last_started) VALUES ({issuer}, {started}) \
             ON CONFLICT (url) DO UPDATE SET last_started = excluded.last_started"
        );
        let mut transaction = self.writer.begin().await?;
        sqlx::query::<DB>(&sql)
            .bind(url)
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&mut *transaction)
            .await?;
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, "issuer").await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn issuers(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query::<DB>("SELECT url FROM issuers ORDER BY url")
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(|row| row.text("url"))
            .collect()
    }

    /// One statement for the whole batch: the values travel as a table that the `UPDATE` joins,
    /// and the write stays conditional per PAT so that concurrent nodes write once.
    pub(crate) async fn record_last_used(&self, uses: &[LastUse]) -> Result<u64, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        let rows: Vec<String> = (0..uses.len())
            .map(|row| {
                let first = 3 * row + 1;
                format!(
                    "({}, {}, {})",
                    DB::param(first),
                    DB::param(first + 1),
                    DB::param(first + 2)
                )
            })
            .collect();
        let sql = format!(
            "WITH v (id, at, not_after) AS (VALUES {}) \
             UPDATE pats SET last_used = (SELECT v.at FROM v WHERE v.id = pats.id) \
             WHERE pats.id IN (SELECT v.id FROM v) AND (pats.last_used IS NULL \
             OR pats.last_used <= (SELECT v.not_after FROM v WHERE v.id = pats.id))",
            rows.join(", ")
        );
        let mut statement = sqlx::query::<DB>(&sql);
        for last_use in uses {
            statement = statement
                .bind(last_use.id.as_str())
                .bind(millis(last_use.at))
                .bind(millis(last_use.not_after));
        }
        let mut transaction = self.writer.begin().await?;
        let done = statement.execute(&mut *transaction).await?;
        let written = DB::rows_affected(&done);
        if written > 0 {
            notify::<DB>(&mut *transaction, LISTS_CHANNEL, &written.to_string()).await?;
        }
        transaction.commit().await?;
        Ok(written)
    }
}

async fn insert_key<DB>(
    connection: &mut DB::Connection,
    key: &StoredSigningKey,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let [kid, pem, created, ..] = DB::PARAMS;
    let sql = format!(
        "INSERT INTO signing_keys (kid, private_pem, created) VALUES ({kid}, {pem}, {created}) \
         ON CONFLICT (kid) DO NOTHING"
    );
    sqlx::query::<DB>(&sql)
        .bind(key.kid.as_str())
        .bind(key.private_key.as_str())
        .bind(millis(key.created))
        .execute(connection)
        .await?;
    Ok(())
}

/// Announces a write on `channel`, where the backend has other nodes to tell.
pub(crate) async fn notify<DB>(
    connection: &mut DB::Connection,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
{
    if let Some(sql) = DB::NOTIFY {
        sqlx::query::<DB>(sql)
            .bind(channel)
            .bind(payload)
            .execute(connection)
            .await?;
    }
    Ok(())
}

/// Which column an identity is looked up by.
pub(crate) enum IdentityKey {
    Id,
    Name,
}
