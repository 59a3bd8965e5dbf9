//! The SQLite backend: WAL mode, migrations embedded in the binary, one file created on demand.

use crate::creates::{Creates, Precheck};
use crate::queries::{store_by_queries, PatInsert, Queries};
use crate::sql::{row_access, rows_affected, Dialect};
use crate::{StoreError, StoreEvent};
use file::DatabaseFile;
use patd_core::listing::SortField;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Whether the opened file is still the one at its path, and writable.
mod file;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database: a pool of readers and a single writer. SQLite admits one writer at a
/// time; funnelling writes through one connection queues them in the pool instead of having
/// several connections spin on the file lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    creates: Creates,
    /// `None` for an in-memory database.
    file: Option<Arc<DatabaseFile>>,
}

impl SqliteStore {
    pub(crate) fn queries(&self) -> Queries<'_, Sqlite> {
        Queries {
            reader: &self.pool,
            writer: &self.writer,
        }
    }

    /// Opens (creating if missing) the file named by `sqlite://PATH` and migrates it.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::connect_with(url, true).await
    }

    /// Opens the file named by `sqlite://PATH`, creating it if missing only with `create`, and
    /// migrates it. From then on every call first checks that the path still names the opened
    /// file and that it can be written (`file.rs`), and a watcher looks every 250 ms.
    pub async fn connect_with(url: &str, create: bool) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_owned();
        let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
        if !create && !in_memory && !path.exists() {
            return Err(StoreError::NoSuchFile(path.display().to_string()));
        }
        let options = options
            .create_if_missing(create)
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
        // Looked at once the writer has the file open, before anything else touches it.
        let file = if in_memory {
            None
        } else {
            DatabaseFile::opened(&path)
        };
        if let Some(file) = &file {
            file.check()?;
            DatabaseFile::watch(file);
        }
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            pool,
            creates: Creates::start(writer.clone(), file.clone().map(precheck)),
            writer,
            file,
        })
    }

    /// The pool, for tests that inspect the file directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The group commit's check of the file before each batch.
fn precheck(file: Arc<DatabaseFile>) -> Precheck {
    Arc::new(move || file.check())
}

impl SqliteStore {
    /// Every call asks this first: nothing is read from or written to a file that is no longer
    /// the tenant's, and SQLite never touches the mappings of a file that cannot be written.
    fn intact(&self) -> Result<(), StoreError> {
        self.file.as_deref().map_or(Ok(()), DatabaseFile::check)
    }

    /// One writer at a time: creates go through the group commit, which checks the per-owner
    /// limit in the same statement as the insert.
    async fn insert_pat_here(&self, insert: PatInsert<'_>) -> Result<(), StoreError> {
        self.creates.insert(insert).await
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

    /// SQLite has no LISTEN/NOTIFY, but the `patd` commands write to the file while the server
    /// runs (`patd key rotate`, `key retire`, `token create`). A connection of its own asks
    /// SQLite every `WATCH_INTERVAL` whether anyone else committed since it last asked
    /// (`PRAGMA data_version`, answered from the WAL index in shared memory: no page is read);
    /// only then does it compare the signing keys' summary, so a key change made by another
    /// process is seen within the interval.
    async fn subscribe_here(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError> {
        // Detached: the watcher keeps it for good, and the pool opens another in its place.
        let mut connection = self.pool.acquire().await?.detach();
        let mut seen = Seen {
            data_version: data_version(&mut connection).await?,
            keys: keys_summary(&mut connection).await?,
        };
        let (sender, receiver) = mpsc::channel(64);
        let file = self.file.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(WATCH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !sender.is_closed() {
                ticks.tick().await;
                // A faulty file is asked nothing more; the connection stays open, so that no
                // other connection's close is the last one (which would checkpoint into it).
                if file.as_deref().is_some_and(|file| file.check().is_err()) {
                    continue;
                }
                match seen.changes(&mut connection).await {
                    Ok(events) => {
                        for event in events {
                            if sender.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(err) => tracing::debug!(error = %err, "watching the SQLite file failed"),
                }
            }
        });
        Ok(Some(receiver))
    }
}

/// How often the SQLite watcher asks whether another connection committed.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// What the SQLite watcher saw last.
struct Seen {
    data_version: i64,
    keys: String,
}

impl Seen {
    /// The events since the last look: none if nothing was committed; `ListsChanged` for any
    /// commit (lists may show it), and `KeysChanged` when the keys or issuers differ.
    async fn changes(
        &mut self,
        connection: &mut sqlx::SqliteConnection,
    ) -> Result<Vec<StoreEvent>, StoreError> {
        let data_version = data_version(connection).await?;
        if data_version == self.data_version {
            return Ok(Vec::new());
        }
        self.data_version = data_version;
        let mut events = vec![StoreEvent::ListsChanged];
        let keys = keys_summary(connection).await?;
        if keys != self.keys {
            self.keys = keys;
            events.push(StoreEvent::KeysChanged);
        }
        Ok(events)
    }
}

/// Changes whenever another connection commits to the file.
async fn data_version(connection: &mut sqlx::SqliteConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("PRAGMA data_version")
        .fetch_one(connection)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// A summary that changes when a key is added or retired, or an issuer registered.
async fn keys_summary(connection: &mut sqlx::SqliteConnection) -> Result<String, StoreError> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM signing_keys) || '/' || \
                (SELECT COUNT(retired) FROM signing_keys) || '/' || \
                (SELECT COALESCE(MAX(created), 0) FROM signing_keys) || '/' || \
                (SELECT COUNT(*) FROM issuers)",
    )
    .fetch_one(connection)
    .await?;
    Ok(row.try_get::<String, _>(0)?)
}

store_by_queries!(SqliteStore);

impl Dialect for Sqlite {
    rows_affected!();
    fn param(_: usize) -> String {
        "?".to_owned()
    }
    const CONTAINS: [&'static str; 2] = ["(instr(p.name, ", ") > 0)"];
    // SQLite's LIKE ignores ASCII case.
    const CONTAINS_LIKE: bool = false;
    const STARTS_WITH: [&'static str; 3] = ["(substr(p.name, 1, length(", ")) = ", ")"];
    // SQLite's default collation, BINARY, already compares bytes.
    const PAT_NAME: &'static str = "p.name";
    const IDENTITY_NAME_ORDER: &'static str = "name";
    // One SQLite file serves one process: every write is seen by the node that made it.
    const NOTIFY: Option<&'static str> = None;
    // One writer connection: its transaction is the only one writing.
    const LOCK_ROW: &'static str = "";
    // The write lock first, so that nothing changes between a batch's reads and its insert.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const WRITERS: usize = 1;
    const NOTIFY_EACH: Option<[&'static str; 2]> = None;
    const EXPLAIN: [&'static str; 2] = ["EXPLAIN QUERY PLAN ", "detail"];
    fn walk_index(field: SortField) -> &'static str {
        match field {
            SortField::Created => " INDEXED BY pats_created_id",
            SortField::Name => " INDEXED BY pats_name_id",
            SortField::LastUsed => " INDEXED BY pats_last_used_id",
            SortField::ExpirationDate => " INDEXED BY pats_expiration_id",
        }
    }
    // A subquery with an OFFSET is never merged into the query around it.
    const FENCE: &'static str = " LIMIT -1 OFFSET 0";
    // A scan of the name's index (id and name) is half a scan of the table.
    const MATCHES_WITH_KEYS: bool = false;
    // ANALYZE's row count of each of the table's indexes leads its `stat`; the table has none
    // until ANALYZE first runs.
    const ROWS: &'static str = "SELECT MAX(CAST(stat AS INTEGER)) AS total FROM sqlite_stat1 \
                                WHERE tbl = 'pats'";
    // Sampled (at most 1,000 rows an index), so that it takes milliseconds on any size of file;
    // with STAT4 the samples give the ranges of each index's first column.
    const ANALYZE: &'static str =
        "PRAGMA analysis_limit = 1000; ANALYZE pats; ANALYZE audit_events";
}

row_access!(SqliteRow);
