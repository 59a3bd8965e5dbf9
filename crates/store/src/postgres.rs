//! The PostgreSQL backend: a pool shared by many patd nodes, its own migrations, and
//! LISTEN/NOTIFY to tell every node about writes to PATs and keys.

use crate::creates::Creates;
use crate::queries::{store_by_queries, PatInsert, Queries};
use crate::sql::{row_access, rows_affected, Dialect, KEYS_CHANNEL, LISTS_CHANNEL, PATS_CHANNEL};
use crate::{StoreError, StoreEvent};
use patd_core::ids::PatId;
use patd_core::listing::SortField;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow, Postgres};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long the change feed may stay silent before it pings itself, and how long after a ping
/// with no answer it is taken for dead: a connection cut by a network partition never reports
/// an error on its own.
const FEED_PING_AFTER: Duration = Duration::from_secs(5);
const FEED_DEAD_AFTER: Duration = Duration::from_secs(10);

/// A PostgreSQL database behind a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    creates: Creates,
}

impl PostgresStore {
    pub(crate) fn queries(&self) -> Queries<'_, Postgres> {
        Queries {
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
            // A database out of reach fails requests in seconds, not after a long hang.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let creates = Creates::start(pool.clone(), None);
        Ok(PostgresStore { pool, creates })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Dialect for Postgres {
    rows_affected!();
    fn param(n: usize) -> String {
        format!("${n}")
    }
    // LIKE is case-sensitive here, and pats_name_trigrams (pg_trgm, migration 0012) serves it.
    const CONTAINS: [&'static str; 2] = ["(p.name LIKE ", " ESCAPE '\\')"];
    const CONTAINS_LIKE: bool = true;
    const STARTS_WITH: [&'static str; 3] = ["(left(p.name, char_length(", ")) = ", ")"];
    // The "C" collation compares bytes, as SQLite's BINARY does, whatever the database's locale.
    const PAT_NAME: &'static str = "p.name COLLATE \"C\"";
    const IDENTITY_NAME_ORDER: &'static str = "name COLLATE \"C\"";
    const NOTIFY: Option<&'static str> = Some("SELECT pg_notify($1, $2)");
    // Not FOR UPDATE: no locked row has its key changed, and FOR UPDATE would also block the
    // FOR KEY SHARE that a foreign key check takes. A lastUsed batch that updates a PAT's row
    // twice checks its owner's identity row that way, in PAT order, while a batch of creates
    // holds its owners' rows: with FOR UPDATE the two deadlocked (bench/run, PostgreSQL).
    const LOCK_ROW: &'static str = " FOR NO KEY UPDATE";
    const BEGIN_WRITE: &'static str = "BEGIN";
    // Batches of different owners commit side by side; a few keep the pool free for the rest.
    const WRITERS: usize = 4;
    const NOTIFY_EACH: Option<[&'static str; 2]> =
        Some(["SELECT pg_notify(", ", v.id) FROM (VALUES "]);
    const EXPLAIN: [&'static str; 2] = ["EXPLAIN ", "QUERY PLAN"];
    fn walk_index(_: SortField) -> &'static str {
        ""
    }
    // A subquery with an OFFSET is planned apart from the query around it.
    const FENCE: &'static str = " OFFSET 0";
    // Its estimate of the matches can be far off; a join back to the table it would then hash.
    const MATCHES_WITH_KEYS: bool = true;
    // -1 until the table is first analyzed.
    const ROWS: &'static str =
        "SELECT reltuples::bigint AS total FROM pg_class WHERE oid = 'pats'::regclass";
    // Autovacuum analyzes too, but only after enough of a table has changed.
    const ANALYZE: &'static str = "ANALYZE pats; ANALYZE audit_events";
}

row_access!(PgRow);

impl PostgresStore {
    /// A server has no file of its own to lose: its faults are `Unavailable`.
    fn intact(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Creates go through the group commit, which locks the owners' rows so that the count in
    /// the insert cannot be raced by another node.
    async fn insert_pat_here(&self, insert: PatInsert<'_>) -> Result<(), StoreError> {
        self.creates.insert(insert).await
    }

    /// Nothing follows a replacement: PostgreSQL keeps old row versions until `VACUUM`.
    async fn after_keys_replaced(&self) {}

    async fn subscribe_here(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError> {
        let feed = Feed::new(self.pool.clone());
        let listener = feed.connect().await?;
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(feed.run(listener, sender));
        Ok(Some(receiver))
    }
}

store_by_queries!(PostgresStore);

/// The change feed: a LISTEN connection that is rebuilt whenever it is lost, and that pings
/// itself when quiet so that a connection silently cut by the network is noticed too.
struct Feed {
    pool: PgPool,
    /// This feed's own channel for its pings, so that it hears only its own.
    ping_channel: String,
}

impl Feed {
    fn new(pool: PgPool) -> Feed {
        let ping_channel = format!("patd_ping_{}", uuid_like());
        Feed { pool, ping_channel }
    }

    async fn connect(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([
                PATS_CHANNEL,
                KEYS_CHANNEL,
                LISTS_CHANNEL,
                self.ping_channel.as_str(),
            ])
            .await?;
        Ok(listener)
    }

    async fn run(self, mut listener: PgListener, sender: mpsc::Sender<StoreEvent>) {
        let mut last_heard = Instant::now();
        let mut pinged = false;
        loop {
            let wait = if pinged {
                FEED_DEAD_AFTER
            } else {
                FEED_PING_AFTER
            };
            let event = match tokio::time::timeout(wait, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => {
                    last_heard = Instant::now();
                    pinged = false;
                    match notification.channel() {
                        KEYS_CHANNEL => StoreEvent::KeysChanged,
                        LISTS_CHANNEL => StoreEvent::ListsChanged,
                        PATS_CHANNEL => match PatId::parse(notification.payload()) {
                            Some(id) => StoreEvent::PatChanged(id),
                            None => continue,
                        },
                        _ => continue,
                    }
                }
                // sqlx noticed the loss and has already listened again on a new connection;
                // whatever was said in between is lost.
                Ok(Ok(None)) => StoreEvent::Resync,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "lost the database's change feed; reconnecting");
                    listener = self.reconnect().await;
                    StoreEvent::Resync
                }
                Err(_) if !pinged => {
                    // Quiet for a while: ask the database to say something on our channel.
                    let ping = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(&self.ping_channel)
                        .execute(&self.pool);
                    if let Err(err) = tokio::time::timeout(FEED_DEAD_AFTER, ping).await {
                        tracing::debug!(error = %err, "the change feed's ping timed out");
                    }
                    pinged = true;
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        silent_for = ?last_heard.elapsed(),
                        "the database's change feed went silent; reconnecting"
                    );
                    listener = self.reconnect().await;
                    StoreEvent::Resync
                }
            };
            if matches!(event, StoreEvent::Resync) {
                last_heard = Instant::now();
                pinged = false;
            }
            if sender.send(event).await.is_err() {
                return;
            }
        }
    }

    /// A new LISTEN connection, retried with backoff until the database answers.
    async fn reconnect(&self) -> PgListener {
        let mut delay = Duration::from_millis(200);
        loop {
            match tokio::time::timeout(FEED_DEAD_AFTER, self.connect()).await {
                Ok(Ok(listener)) => return listener,
                Ok(Err(err)) => tracing::debug!(error = %err, "change feed reconnect failed"),
                Err(_) => tracing::debug!("change feed reconnect timed out"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// 32 random hex characters.
fn uuid_like() -> String {
    patd_core::ids::random_hex_id(&mut rand::rng())
}
