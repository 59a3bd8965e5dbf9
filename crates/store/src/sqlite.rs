//! The SQLite backend: WAL mode, migrations embedded in the binary, one file created on demand.

use crate::queries::{store_by_queries, Queries};
use crate::sql::{row_access, rows_affected, Dialect};
use crate::{StoreError, StoreEvent};
use creates::Creates;
use patd_core::audit::AuditEvent;
use patd_core::pat::NewPat;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
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

impl SqliteStore {
    /// One writer at a time: creates go through the group commit, which checks the per-owner
    /// limit in the same statement as the insert.
    async fn insert_pat_here(
        &self,
        new_pat: &NewPat,
        limit: Option<u32>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.creates.insert(new_pat, limit, event).await
    }

    /// `secure_delete` zeroed the old texts in the table's pages, but earlier copies of those
    /// pages remain in the WAL until a checkpoint: copy the new pages back into the file and
    /// empty the WAL. The replacement is committed whatever happens here.
    async fn after_keys_replaced(&self) {
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

    /// One SQLite file serves one process: every write is seen by the node that made it.
    async fn subscribe_here(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError> {
        Ok(None)
    }
}

store_by_queries!(SqliteStore);

impl Dialect for Sqlite {
    rows_affected!();
    fn param(_: usize) -> String {
        "?".to_owned()
    }
    const CONTAINS: [&'static str; 2] = ["(instr(p.name, ", ") > 0)"];
    const STARTS_WITH: [&'static str; 3] = ["(substr(p.name, 1, length(", ")) = ", ")"];
    // SQLite's default collation, BINARY, already compares bytes.
    const NAME_ORDER: &'static str = "p.name";
    // One SQLite file serves one process: every write is seen by the node that made it.
    const NOTIFY: Option<&'static str> = None;
}

row_access!(SqliteRow);
