//! The PostgreSQL backend: a pool shared by many patd nodes, its own migrations, and
//! LISTEN/NOTIFY to tell every node about writes to PATs and keys.

use crate::sql::{
    dialect_binds, exchange_record, is_unique_violation, millis, owned_pat_from_row, push_new_pat,
    push_order, push_where, row_access, signing_key_from_row, to_json, Dialect, Identities,
    IdentityKey, INSERT_CHUNK, NEW_PAT_COLUMNS, PAT_COLUMNS,
};
use crate::{OwnedPat, PatPage, PatQuery, Store, StoreError, StoreEvent, StoredSigningKey};
use async_trait::async_trait;
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{NewPat, PatRecord};
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::query::Query;
use sqlx::{PgConnection, QueryBuilder, Row};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel that carries the id of every PAT written.
const PATS_CHANNEL: &str = "patd_pats";
/// The channel that says a signing key was added.
const KEYS_CHANNEL: &str = "patd_keys";

/// A PostgreSQL database behind a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    fn identities(&self) -> Identities<'_, Postgres> {
        Identities {
            reader: &self.pool,
            writer: &self.pool,
        }
    }

    /// Connects to `postgres://…` and migrates the database (or the schema named by the URL's
    /// `search_path` option).
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Dialect for Postgres {
    dialect_binds!();
    fn push_contains(builder: &mut QueryBuilder<'_, Self>, value: &str) {
        builder.push("(strpos(p.name, ");
        builder.push_bind(value.to_owned());
        builder.push(") > 0)");
    }
    fn push_starts_with(builder: &mut QueryBuilder<'_, Self>, value: &str) {
        builder.push("(left(p.name, char_length(");
        builder.push_bind(value.to_owned());
        builder.push(")) = ");
        builder.push_bind(value.to_owned());
        builder.push(")");
    }
    // The "C" collation compares bytes, as SQLite's BINARY does, whatever the database's locale.
    const PARAMS: [&'static str; 5] = ["$1", "$2", "$3", "$4", "$5"];
    const NAME_ORDER: &'static str = "p.name COLLATE \"C\"";
}

row_access!(PgRow);

/// Announces a write to every node; delivered when the transaction commits.
async fn notify(
    connection: &mut PgConnection,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(connection)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        self.identities().insert(identity).await
    }

    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.identities().find(IdentityKey::Id, id.as_str()).await
    }

    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        self.identities().find(IdentityKey::Name, name).await
    }

    async fn has_no_identities(&self) -> Result<bool, StoreError> {
        self.identities().none_exist().await
    }

    async fn insert_pat(&self, new_pat: &NewPat, limit: Option<u32>) -> Result<(), StoreError> {
        let pat = &new_pat.record;
        let mut transaction = self.pool.begin().await?;
        // Locking the owner serializes its creates, so the count below cannot be raced.
        sqlx::query("SELECT id FROM identities WHERE id = $1 FOR UPDATE")
            .bind(pat.owner_id.as_str())
            .execute(&mut *transaction)
            .await?;
        let mut statement =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) SELECT "));
        push_new_pat(&mut statement.separated(", "), new_pat);
        statement.push(" WHERE ");
        statement.push_bind(limit.map(i64::from));
        statement.push("::BIGINT IS NULL OR ");
        statement.push_bind(pat.managed);
        statement.push(" OR (SELECT COUNT(*) FROM pats WHERE owner_id = ");
        statement.push_bind(pat.owner_id.as_str());
        statement.push(" AND NOT managed) < ");
        statement.push_bind(limit.map(i64::from));
        statement.push("::BIGINT");
        let result = statement.build().execute(&mut *transaction).await;
        match result {
            Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
            Err(err) => return Err(err.into()),
            Ok(done) if done.rows_affected() == 0 => {
                return Err(StoreError::LimitReached {
                    max: limit.unwrap_or_default(),
                })
            }
            Ok(_) => {}
        }
        notify(&mut transaction, PATS_CHANNEL, pat.id.as_str()).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn insert_pats(&self, pats: &[NewPat]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for chunk in pats.chunks(INSERT_CHUNK) {
            let mut statement =
                QueryBuilder::<Postgres>::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) "));
            statement.push_values(chunk, |mut row, new_pat| push_new_pat(&mut row, new_pat));
            match statement.build().execute(&mut *transaction).await {
                Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
                other => {
                    other?;
                }
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn pat(&self, id: &PatId) -> Result<Option<OwnedPat>, StoreError> {
        let sql = format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id = $1"
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
        let mut select = QueryBuilder::<Postgres>::new(format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id"
        ));
        push_where(&mut select, query);
        push_order(&mut select, query);
        select.push(" LIMIT ");
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
            let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) AS total FROM pats p");
            push_where(&mut count, query);
            let row = count.build().fetch_one(&self.pool).await?;
            Some(u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or_default())
        } else {
            None
        };
        Ok(PatPage { items, total })
    }

    async fn pats_by_ids(&self, ids: &[PatId]) -> Result<Vec<OwnedPat>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        let sql = format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id = ANY($1)"
        );
        sqlx::query(&sql)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect()
    }

    async fn update_pats(&self, pats: &[PatRecord]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for pat in pats {
            match update_statement(pat).execute(&mut *transaction).await {
                Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
                Err(err) => return Err(err.into()),
                Ok(done) if done.rows_affected() == 0 => return Err(StoreError::NotFound),
                Ok(_) => notify(&mut transaction, PATS_CHANNEL, pat.id.as_str()).await?,
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn update_pat(&self, pat: &PatRecord) -> Result<(), StoreError> {
        self.update_pats(std::slice::from_ref(pat)).await
    }

    async fn delete_pat(&self, id: &PatId) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM pats WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *transaction)
            .await?;
        if done.rows_affected() > 0 {
            notify(&mut transaction, PATS_CHANNEL, id.as_str()).await?;
        }
        transaction.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pat_for_exchange(&self, id: &PatId) -> Result<Option<ExchangeRecord>, StoreError> {
        let sql = format!(
            "SELECT {PAT_COLUMNS}, p.secret_digest, i.name AS owner_name, \
                 i.levels AS owner_levels, i.extra_rights AS owner_extra_rights \
             FROM pats p JOIN identities i ON i.id = p.owner_id WHERE p.id = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        exchange_record(&row).map(Some)
    }

    async fn record_last_used(
        &self,
        id: &PatId,
        at: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pats SET last_used = $1 WHERE id = $2 AND (last_used IS NULL OR last_used <= $3)",
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
            .map(signing_key_from_row)
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, created) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.private_pem)
        .bind(millis(key.created))
        .execute(&mut *transaction)
        .await?;
        notify(&mut transaction, KEYS_CHANNEL, &key.kid).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([PATS_CHANNEL, KEYS_CHANNEL]).await?;
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let event = match listener.try_recv().await {
                    Ok(Some(notification)) if notification.channel() == KEYS_CHANNEL => {
                        StoreEvent::KeysChanged
                    }
                    Ok(Some(notification)) => match PatId::parse(notification.payload()) {
                        Some(id) => StoreEvent::PatChanged(id),
                        None => continue,
                    },
                    // The connection dropped and will be re-established: anything said meanwhile
                    // is lost, so everything cached must be forgotten.
                    Ok(None) => StoreEvent::Resync,
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the database's change feed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        StoreEvent::Resync
                    }
                };
                if sender.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(Some(receiver))
    }
}

fn update_statement(pat: &PatRecord) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(
        "UPDATE pats SET name = $1, scope = $2, expiration_date = $3, \
             never_expires_acknowledged = $4 WHERE id = $5",
    )
    .bind(pat.name.as_str())
    .bind(to_json(pat.scope.entries()))
    .bind(pat.expiry.date().map(millis))
    .bind(pat.never_expires_acknowledged)
    .bind(pat.id.as_str())
}
