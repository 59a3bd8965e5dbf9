//! The SQLite backend: WAL mode, migrations embedded in the binary, one file created on demand.

use crate::sql::{
    dialect_binds, exchange_record, is_unique_violation, millis, owned_pat_from_row, push_new_pat,
    push_order, push_where, row_access, to_json, Dialect, IdentityKey, Queries, INSERT_CHUNK,
    NEW_PAT_COLUMNS, PAT_COLUMNS,
};
use crate::{
    LastUse, OwnedPat, PatPage, PatQuery, SigningKeyReplacement, Store, StoreError, StoreEvent,
    StoredSigningKey,
};
use async_trait::async_trait;
use creates::Creates;
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{NewPat, PatRecord};
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc;

/// Group commit for creates.
mod creates;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database: a pool of readers and a single writer. SQLite admits one writer at a
/// time; funnelling writes through one connection queues them in the pool instead of having
/// several connections spin on the file lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    creates: Creates,
}

impl SqliteStore {
    fn queries(&self) -> Queries<'_, Sqlite> {
        Queries {
            reader: &self.pool,
            writer: &self.writer,
        }
    }

    /// Opens (creating if missing) the file named by `sqlite://PATH` and migrates it.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction when the process dies; only a
            // power cut can drop the last ones. See ARCHITECTURE.md, "Durability".
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Checkpoints (and their fsync of the database file) every ~40 MiB of WAL rather than
            // every 4 MiB; a 16 MiB page cache per connection; temporary tables in memory.
            .pragma("wal_autocheckpoint", "10000")
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory");
        // The connections live in this process: pinging one before each use (sqlx's default)
        // only adds a round trip to its worker thread.
        // The writer overwrites freed space with zeros, so that a replaced signing key (sealed in
        // place of its PEM) leaves no copy in the file's free space.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("secure_delete", "ON"))
            .await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            pool,
            creates: Creates::start(writer.clone()),
            writer,
        })
    }

    /// The pool, for tests that inspect the file directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Dialect for Sqlite {
    dialect_binds!();
    fn param(_: usize) -> String {
        "?".to_owned()
    }
    fn push_contains(builder: &mut QueryBuilder<'_, Self>, value: &str) {
        builder.push("(instr(p.name, ");
        builder.push_bind(value.to_owned());
        builder.push(") > 0)");
    }
    fn push_starts_with(builder: &mut QueryBuilder<'_, Self>, value: &str) {
        builder.push("(substr(p.name, 1, length(");
        builder.push_bind(value.to_owned());
        builder.push(")) = ");
        builder.push_bind(value.to_owned());
        builder.push(")");
    }
    // SQLite's default collation, BINARY, already compares bytes.
    const PARAMS: [&'static str; 5] = ["?", "?", "?", "?", "?"];
    const NAME_ORDER: &'static str = "p.name";
    // One SQLite file serves one process: every write is seen by the node that made it.
    const NOTIFY: Option<&'static str> = None;
}

row_access!(SqliteRow);

#[async_trait]
impl Store for SqliteStore {
    async fn insert_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        self.queries().insert(identity).await
    }

    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.queries().find(IdentityKey::Id, id.as_str()).await
    }

    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        self.queries().find(IdentityKey::Name, name).await
    }

    async fn has_no_identities(&self) -> Result<bool, StoreError> {
        self.queries().none_exist().await
    }

    async fn insert_pat(&self, new_pat: &NewPat, limit: Option<u32>) -> Result<(), StoreError> {
        self.creates.insert(new_pat, limit).await
    }

    async fn insert_pats(&self, pats: &[NewPat]) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        for chunk in pats.chunks(INSERT_CHUNK) {
            match insert_values(chunk)
                .build()
                .execute(&mut *transaction)
                .await
            {
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
        let mut transaction = self.writer.begin().await?;
        for pat in pats {
            match update_statement(pat).execute(&mut *transaction).await {
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
        match update_statement(pat).execute(&self.writer).await {
            Err(err) if is_unique_violation(&err) => Err(StoreError::NameTaken),
            Err(err) => Err(err.into()),
            Ok(done) if done.rows_affected() == 0 => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
        }
    }

    async fn delete_pat(&self, id: &PatId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pats WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.writer)
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
        exchange_record(&row).map(Some)
    }

    async fn record_last_used(&self, uses: &[LastUse]) -> Result<u64, StoreError> {
        self.queries().record_last_used(uses).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.queries().signing_keys().await
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        self.queries().insert_signing_key(key).await
    }

    async fn replace_signing_keys(
        &self,
        replacements: &[SigningKeyReplacement],
    ) -> Result<bool, StoreError> {
        let replaced = self.queries().replace_signing_keys(replacements).await?;
        if replaced {
            // `secure_delete` zeroed the old texts in the table's pages, but earlier copies of
            // those pages remain in the WAL until a checkpoint: copy the new pages back into the
            // file and empty the WAL.
            // The replacement is committed whatever happens here.
            let checkpoint = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await
                .and_then(|row| row.try_get::<i64, _>(0));
            if !matches!(checkpoint, Ok(0)) {
                tracing::warn!(
                    "the write-ahead log could not be emptied after the signing keys were \
                     replaced; the old texts leave it at the next checkpoint"
                );
            }
        }
        Ok(replaced)
    }

    async fn insert_first_signing_key(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        self.queries().insert_first_signing_key(key).await
    }

    async fn register_issuer(&self, url: &str) -> Result<(), StoreError> {
        self.queries().register_issuer(url).await
    }

    async fn issuers(&self) -> Result<Vec<String>, StoreError> {
        self.queries().issuers().await
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.queries().setting_or_insert(key, value).await
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError> {
        // One SQLite file serves one process: every write is seen by the node that made it.
        Ok(None)
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

/// One `INSERT` of many new PATs, with no per-owner limit (the caller has checked it or lifts
/// it).
fn insert_values<'a>(pats: impl IntoIterator<Item = &'a NewPat>) -> QueryBuilder<'a, Sqlite> {
    let mut builder = QueryBuilder::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) "));
    builder.push_values(pats, |mut row, new_pat| push_new_pat(&mut row, new_pat));
    builder
}

/// The insert of a new PAT that, with `limit`, stores nothing when the owner already has that
/// many non-managed PATs. One statement: SQLite runs one writer at a time, so the count and the
/// insert cannot be split by another writer.
fn insert_limited(new_pat: &NewPat, limit: Option<u32>) -> QueryBuilder<'_, Sqlite> {
    let mut builder = QueryBuilder::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) SELECT "));
    push_new_pat(&mut builder.separated(", "), new_pat);
    builder.push(" WHERE ");
    builder.push_bind(limit.map(i64::from));
    builder.push(" IS NULL OR ");
    builder.push_bind(new_pat.record.managed);
    builder.push(" = 1 OR (SELECT COUNT(*) FROM pats WHERE owner_id = ");
    builder.push_bind(new_pat.record.owner_id.as_str());
    builder.push(" AND managed = 0) < ");
    builder.push_bind(limit.map(i64::from));
    builder
}
