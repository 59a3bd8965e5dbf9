//! The state shared by every handler: the store, the keys and the configuration.

use crate::audit::AuthFailures;
use crate::cache::{IdentityCache, ListCache, PatCache};
use crate::kek::KeyEncryptionKey;
use crate::keys::Keys;
use crate::lastused::LastUsedWriter;
use crate::proxies::TrustedProxies;
use crate::ratelimit::{FailureLimits, Limit, RateLimits, SharedLimit};
use patd_store::{DynStore, Guarded, Health, StoreEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The upstream OpenID Connect provider the web page signs people in with (EXTENSIONS E12).
#[derive(Clone)]
pub struct OidcConfig {
    /// `--oidc-issuer`: its discovery document is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `--oidc-identity-claim` (default `email`): the claim whose value names the identity.
    pub identity_claim: String,
    /// `--oidc-auto-create`: an unknown person becomes a new `USER` identity.
    pub auto_create: bool,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret is a credential: never printed.
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("identity_claim", &self.identity_claim)
            .field("auto_create", &self.auto_create)
            .finish_non_exhaustive()
    }
}

/// Settings that do not change while the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's public URL: the JWT `iss`, and the base of `tokenEndpoint`.
    pub public_url: String,
    /// How many non-managed PATs one owner may have.
    pub max_tokens_per_owner: u32,
    /// Requests per client_id and API version.
    pub rate_limit: Limit,
    /// Failed token exchanges per (client id, client IP); `None`: the default (10/60), or off
    /// when `rate_limit` is off.
    pub exchange_failure_limit: Option<Limit>,
    /// Failed token exchanges per client IP with client ids that name no PAT; `None`: the
    /// default (100/60), or off when `rate_limit` is off.
    pub unknown_client_failure_limit: Option<Limit>,
    /// How long a cached PAT is trusted without a write seen by this node.
    pub cache_lifetime: Duration,
    /// How much longer a cached PAT keeps answering while the database is out of reach.
    pub outage_grace: Duration,
    /// Every database call ends within this, answering 500 if the database has not.
    pub database_timeout: Duration,
    /// A Redis URL: keep the per-client rate limit there, shared by every node.
    pub rate_limit_redis: Option<String>,
    /// The largest request body accepted, in bytes; longer ones get 413.
    pub max_body_size: usize,
    /// How long a connection may take to send a request's headers, counted from when the
    /// server starts waiting for them (a new connection, or an idle keep-alive one).
    pub header_read_timeout: Duration,
    /// How long one request may take, reading its body included; past it, 503.
    pub request_timeout: Duration,
    /// How long a request's body may take to arrive, from when its headers did; past it, 408
    /// and the connection is closed.
    pub body_read_timeout: Duration,
    /// Webhooks may call loopback, private and link-local addresses (`--webhook-allow-private`).
    pub webhook_allow_private: bool,
    /// How often each node looks for deliveries due.
    pub outbox_poll: Duration,
    /// The wait after a delivery's first failed attempt; it doubles with each failure.
    pub outbox_retry_base: Duration,
    /// How often expiry notices are looked for (at least once a minute).
    pub expiry_scan_interval: Duration,
    /// The time the expiry notices go by: the real clock, or a test's.
    pub clock: Clock,
    /// Owners' mail (`--smtp-url`, `--mail-from`); `None`: no mail from this node.
    pub mail: Option<MailConfig>,
    /// The longest lifetime a PAT may be given (`--max-pat-lifetime`).
    pub lifetime_policy: patd_core::expiry::LifetimePolicy,
    /// The most connections served at once (`--max-connections`); the CLI keeps it below the
    /// open-file limit.
    pub max_connections: usize,
    /// How long shutting down waits for in-flight requests before dropping them.
    pub shutdown_timeout: Duration,
    /// Seals the signing keys stored in the database; `None` stores them in the clear.
    pub key_encryption_key: Option<Arc<KeyEncryptionKey>>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Where `/metrics` is served instead of the main listener (`--metrics-listen`).
    pub metrics_listen: Option<String>,
    /// HTTPS on the main listener (`--tls-cert`, `--tls-key`).
    pub tls: Option<Arc<crate::tls::TlsFiles>>,
    /// Audit events older than this are pruned (`--audit-retention`).
    pub audit_retention: Duration,
    /// The most memory cached list answers may take, in bytes (`--list-cache-size`).
    pub list_cache_bytes: u64,
    /// The keys trusted to sign leaked-secret reports (`--secret-scanning-keys`); `None`: the
    /// reports route answers 404.
    pub secret_scanning_keys: Option<Arc<crate::scanning_keys::ScanningKeys>>,
    /// What signs Shared Signals SETs (`--ssf-signing-alg`): RS256 by default.
    pub ssf_signing_alg: crate::ssf::SigningAlg,
    /// How often revocations of expired access tokens are pruned.
    pub revocation_prune_interval: Duration,
    /// The `aud` of the access tokens minted here (`--audience`); left empty, the public URL.
    pub audiences: Vec<String>,
    /// OpenID Connect sign-in to the web page (`--oidc-issuer` and its companions), if on.
    pub oidc: Option<OidcConfig>,
    /// How long web page sessions live (`--session-idle-timeout`; EXTENSIONS E12).
    pub session_policy: patd_core::web::SessionPolicy,
}

impl ServerConfig {
    /// The defaults of CLI.md for a server at `public_url`.
    pub fn new(public_url: impl Into<String>) -> ServerConfig {
        ServerConfig {
            public_url: public_url.into(),
            max_tokens_per_owner: 10,
            rate_limit: Limit::PerWindow {
                requests: 100,
                seconds: 10,
            },
            exchange_failure_limit: None,
            unknown_client_failure_limit: None,
            cache_lifetime: Duration::from_secs(60),
            outage_grace: Duration::from_secs(300),
            list_cache_bytes: 64 * 1024 * 1024,
            database_timeout: Duration::from_secs(5),
            rate_limit_redis: None,
            max_body_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            lifetime_policy: patd_core::expiry::LifetimePolicy(None),
            webhook_allow_private: false,
            outbox_poll: Duration::from_millis(250),
            outbox_retry_base: Duration::from_secs(5),
            expiry_scan_interval: Duration::from_secs(30),
            clock: Clock::default(),
            mail: None,
            shutdown_timeout: Duration::from_secs(10),
            key_encryption_key: None,
            trusted_proxies: TrustedProxies::default(),
            metrics_listen: None,
            tls: None,
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            secret_scanning_keys: None,
            ssf_signing_alg: crate::ssf::SigningAlg::default(),
            audiences: Vec::new(),
            revocation_prune_interval: crate::access::PRUNE_EVERY,
            session_policy: patd_core::web::SessionPolicy::default(),
            oidc: None,
        }
    }

    /// What `serve` needs: the limits that belong to connections rather than requests.
    pub fn serve_options(&self) -> crate::ServeOptions {
        crate::ServeOptions {
            header_read_timeout: self.header_read_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_connections: self.max_connections,
            tls: self.tls.clone(),
        }
    }
}

/// Where owners' mail goes out.
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://…` or `smtps://…`, credentials possibly inside.
    pub smtp_url: String,
    /// Replaces the URL's password (`PATD_SMTP_PASSWORD`).
    pub password: Option<String>,
    pub from: String,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp_url", &patd_store::redact_url(&self.smtp_url))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Where the background work reads the time: the system clock, shifted by `offset` (tests move
/// it days ahead instead of sleeping).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<std::sync::Mutex<time::Duration>>,
}

impl Clock {
    pub fn now(&self) -> time::OffsetDateTime {
        let offset = self
            .offset
            .lock()
            .map_or(time::Duration::ZERO, |offset| *offset);
        time::OffsetDateTime::now_utc() + offset
    }

    /// Moves this clock (and every clone of it) `by` further ahead.
    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut offset) = self.offset.lock() {
            *offset += by;
        }
    }
}

/// The tenant this server plays, as shown in tokens and `/oauth/info`.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub org: String,
    pub pod: String,
}

/// Cheap to clone: one shared pointer. Every request clones the state, so it is a single
/// atomic count rather than one per part, which the cores would otherwise contend on.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

/// What the state holds.
pub struct Parts {
    pub store: DynStore,
    pub keys: Arc<Keys>,
    pub config: Arc<ServerConfig>,
    pub tenant: Arc<Tenant>,
    pub pats: Arc<PatCache>,
    pub identities: IdentityCache,
    pub lists: Arc<ListCache>,
    pub last_used: LastUsedWriter,
    pub limits: Arc<RateLimits>,
    /// Whether the database answers, as the store's calls find it.
    pub health: Arc<Health>,
    /// Failed exchanges waiting to be written to the audit trail.
    pub auth_failures: Arc<AuthFailures>,
    /// The key Shared Signals SETs are signed with.
    pub ssf: Arc<crate::ssf::SsfKeys>,
    /// The OpenID Connect provider as discovered, when `config.oidc` is set.
    pub(crate) oidc: Option<Arc<crate::ui::oidc::Oidc>>,
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

const TENANT_ID_SETTING: &str = "tenant_id";

impl AppState {
    /// Subscribes to other nodes' writes, registers this node's issuer, loads (or on a new
    /// database creates, once) the tenant id and the signing keys. Subscribing comes first so
    /// that nothing announced while the rest loads is missed.
    pub async fn prepare(
        store: DynStore,
        config: ServerConfig,
        signing_key_pem: Option<&str>,
    ) -> anyhow::Result<AppState> {
        let mut config = config;
        if config.audiences.is_empty() {
            config.audiences = vec![config.public_url.clone()];
        }
        crate::metrics::install();
        let guarded = Guarded::new(store, config.database_timeout);
        let health = guarded.health();
        let store: DynStore = Arc::new(guarded);
        let events = store.subscribe().await?;
        let tenant_id = store
            .setting_or_insert(TENANT_ID_SETTING, &uuid::Uuid::new_v4().to_string())
            .await?;
        store.register_issuer(&config.public_url).await?;
        let keys = Keys::load(
            store.as_ref(),
            signing_key_pem,
            config.key_encryption_key.clone(),
            &config.public_url,
            &config.audiences,
        )
        .await?;
        let shared = match &config.rate_limit_redis {
            Some(url) => SharedLimit::connect(url, &tenant_id, config.rate_limit).await?,
            None => None,
        };
        let pats = Arc::new(PatCache::new(
            store.clone(),
            config.cache_lifetime,
            config.outage_grace,
            health.clone(),
        ));
        let config_ssf_alg = config.ssf_signing_alg;
        let oidc = match config.oidc {
            Some(_) => Some(Arc::new(crate::ui::oidc::Oidc::new()?)),
            None => None,
        };
        let state = AppState(Arc::new(Parts {
            last_used: LastUsedWriter::start(store.clone(), pats.clone()),
            store,
            keys: Arc::new(keys),
            pats: pats.clone(),
            identities: IdentityCache::new(),
            lists: Arc::new(ListCache::new(
                Duration::from_secs(5),
                config.list_cache_bytes,
            )),

            limits: Arc::new(
                RateLimits::new(
                    config.rate_limit,
                    FailureLimits::resolve(
                        config.rate_limit,
                        config.exchange_failure_limit,
                        config.unknown_client_failure_limit,
                    ),
                )
                .with_shared(shared),
            ),
            config: Arc::new(config),
            tenant: Arc::new(Tenant {
                id: tenant_id,
                name: "patd".to_owned(),
                org: "patd".to_owned(),
                pod: "local".to_owned(),
            }),
            health,
            auth_failures: Arc::new(AuthFailures::default()),
            ssf: Arc::new(crate::ssf::SsfKeys::new(config_ssf_alg)),
            oidc,
        }));
        state.flush_auth_failures_forever();
        if state.config.mail.is_some() {
            // Mail is written to the outbox for this database from now on.
            state
                .store
                .set_setting(patd_store::MAIL_SETTING, "on")
                .await?;
        }
        crate::outbox::deliver_forever(state.clone())?;
        crate::notices::notify_forever(state.clone());
        crate::audit::prune_forever(state.store.clone(), state.config.audit_retention);
        crate::access::prune_forever(state.clone(), state.config.revocation_prune_interval);
        crate::ui::session::prune_forever(state.clone());
        optimize_forever(state.store.clone());
        if let Some(events) = events {
            state.follow_changes(events);
        }
        Ok(state)
    }

    /// Writes the failed exchanges counted so far every couple of seconds.
    fn flush_auth_failures_forever(&self) {
        let (failures, store) = (self.auth_failures.clone(), self.store.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::audit::FLUSH_EVERY);
            loop {
                every.tick().await;
                failures.flush(&store).await;
            }
        });
    }

    /// Applies other nodes' writes, as the database announces them, to this node's caches.
    fn follow_changes(&self, mut events: mpsc::Receiver<StoreEvent>) {
        let state = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    StoreEvent::PatChanged(id) => state.pats.invalidate(&id).await,
                    StoreEvent::ListsChanged => state.pats.lists_changed(),
                    StoreEvent::KeysChanged => state.reload_keys().await,
                    StoreEvent::Resync => {
                        // The feed is back, so the database is; what it said meanwhile is lost.
                        state.health.mark_up();
                        state.pats.invalidate_all();
                        state.reload_keys().await;
                    }
                }
            }
        });
    }

    async fn reload_keys(&self) {
        if let Err(err) = self.keys.reload(self.store.as_ref()).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "could not reload signing keys; keeping the current ones"
            );
        }
    }
}

/// How long a node waits after it starts before its first housekeeping pass (pruning): a node's
/// first moments are busy, and nodes started together would otherwise each open a connection
/// for it at once.
const HOUSEKEEPING_QUIET: Duration = Duration::from_secs(10);

/// A housekeeping schedule: every `period`, the first pass after `period` or the quiet start,
/// whichever is sooner (so a node restarted often still prunes).
pub(crate) fn housekeeping(period: Duration) -> tokio::time::Interval {
    let first = tokio::time::Instant::now() + period.min(HOUSEKEEPING_QUIET);
    tokio::time::interval_at(first, period)
}

/// Refreshes the query planner's statistics soon after start (a migration may have added
/// indexes that have none) and every hour, as the tenant grows: the admin lists' plans depend
/// on them.
fn optimize_forever(store: DynStore) {
    tokio::spawn(async move {
        let mut every_hour = housekeeping(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            if let Err(err) = store.optimize().await {
                tracing::warn!(error = %err, "could not refresh the planner's statistics");
            }
        }
    });
}
