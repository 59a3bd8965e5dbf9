//! The PostgreSQL backend: a pool shared by many patd nodes, its own migrations, and
//! LISTEN/NOTIFY to tell every node about writes to PATs and keys.

use crate::sql::{
    dialect_binds, exchange_record, is_unique_violation, millis, notify, owned_pat_from_row,
    push_new_pat, push_order, push_where, row_access, to_json, Dialect, IdentityKey, Queries,
    INSERT_CHUNK, KEYS_CHANNEL, LISTS_CHANNEL, NEW_PAT_COLUMNS, PATS_CHANNEL, PAT_COLUMNS,
};
use crate::{
    LastUse, OwnedPat, PatPage, PatQuery, SigningKeyReplacement, Store, StoreError, StoreEvent,
    StoredSigningKey,
};
use async_trait::async_trait;
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{NewPat, PatRecord};
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::query::Query;
use sqlx::{QueryBuilder, Row};
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
}

impl PostgresStore {
    fn queries(&self) -> Queries<'_, Postgres> {
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
        Ok(PostgresStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Dialect for Postgres {
    dialect_binds!();
    fn param(n: usize) -> String {
        format!("${n}")
    }
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
    const NOTIFY: Option<&'static str> = Some("SELECT pg_notify($1, $2)");
}

row_access!(PgRow);

#[async_trait]
impl Store for PostgresStore {
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
        notify::<Postgres>(&mut transaction, PATS_CHANNEL, pat.id.as_str()).await?;
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
                Ok(_) => {
                    notify::<Postgres>(&mut transaction, PATS_CHANNEL, pat.id.as_str()).await?
                }
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
            notify::<Postgres>(&mut transaction, PATS_CHANNEL, id.as_str()).await?;
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
        // Old row versions stay in the table's files until VACUUM reclaims them (SECURITY.md).
        self.queries().replace_signing_keys(replacements).await
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
        let feed = Feed::new(self.pool.clone());
        let listener = feed.connect().await?;
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(feed.run(listener, sender));
        Ok(Some(receiver))
    }
}

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
