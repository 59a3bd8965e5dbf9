//! patd's storage: the `Store` trait the server talks to, and its backends. Owns all SQL, the
//! migrations and the mapping of database errors to `StoreError`; decides no rights.

/// Group commit for creates, on both backends.
mod creates;
/// A store decorator that bounds every call in time and tracks whether the database answers.
pub mod guard;
/// Lists over a whole tenant: the plan that finds a page, and its statements.
mod list;
/// Webhooks, the outbox of deliveries, and expiry-notice markers.
mod outbox;
/// The PostgreSQL backend.
pub mod postgres;
/// The queries written once for both backends, and the `Store` they make.
mod queries;
/// SQL and row decoding shared by the backends.
mod sql;
/// The SQLite backend.
pub mod sqlite;
/// Shared Signals streams and their SETs.
mod ssf;
/// The web page's sign-in links, sessions and OpenID Connect logins.
mod web;

use async_trait::async_trait;
use patd_core::audit::{AuditEvent, AuditQuery};
use patd_core::exchange::{ExchangeRecord, TokenRevocation};
use patd_core::filter::TimeOp;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::listing::ListRequest;
use patd_core::notify::Webhook;
use patd_core::pat::{NewPat, PatRecord};
use patd_core::rotation::Rotation;
use patd_core::secret::SecretDigest;
use patd_core::ssf::{Signal, Stream};
use patd_core::web::{Session, SignInLink, WebDigest};
use std::sync::Arc;
use thiserror::Error;
use time::OffsetDateTime;
use tokio::sync::mpsc;

pub use guard::{Guarded, Health};
pub use postgres::PostgresStore;
pub use web::OidcLogin;
/// The setting (`on`) under which owners are mailed: set by nodes started with `--smtp-url`.
pub const MAIL_SETTING: &str = outbox::MAIL_SETTING;
pub use sqlite::SqliteStore;

/// A change another node made, announced by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A PAT was created, patched or deleted.
    PatChanged(PatId),
    /// A signing key was added, or a node registered its issuer.
    KeysChanged,
    /// `lastUsed` was written for some PATs: list answers are stale.
    ListsChanged,
    /// The change feed was lost and is back: announcements may have been missed meanwhile, so
    /// everything cached must be forgotten and the keys read again.
    Resync,
}

/// What a token revocation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevoked {
    /// Revoked now.
    Revoked,
    /// Revoked now, and with it every earlier token of its PAT: the PAT had as many tokens
    /// revoked one by one as are kept (`MAX_REVOKED_PER_PAT`).
    WithEarlierTokens,
    /// It had been revoked already; nothing changed.
    Already,
    /// Its PAT is gone, and its tokens with it; nothing changed.
    NoPat,
}

/// What can go wrong in the store. Conflicts are named; everything else is `Backend`.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the owner already has a PAT with this name")]
    NameTaken,
    #[error("an identity with this name exists")]
    IdentityNameTaken,
    #[error("the owner already has {max} PATs")]
    LimitReached { max: u32 },
    #[error("no such PAT")]
    NotFound,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(sqlx::Error),
    /// The database did not answer: unreachable, or slower than the call's time bound.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The SQLite file is no longer the one opened (removed or replaced) or can no longer be
    /// written: no retry cures it, and patd must not write elsewhere or lose writes silently.
    #[error("{0}")]
    Gone(String),
    #[error("the database file {0} does not exist")]
    NoSuchFile(String),
    #[error("unsupported database URL '{0}': expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        if is_connectivity(&err) {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err)
        }
    }
}

impl StoreError {
    /// The same error for another caller that waited on the same call (one read serves many):
    /// the same kind and text. A backend error keeps its text, not its structure.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::NameTaken => StoreError::NameTaken,
            StoreError::IdentityNameTaken => StoreError::IdentityNameTaken,
            StoreError::LimitReached { max } => StoreError::LimitReached { max: *max },
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Corrupt(text) => StoreError::Corrupt(text.clone()),
            StoreError::Backend(err) => StoreError::Backend(sqlx::Error::Protocol(err.to_string())),
            StoreError::Unavailable(text) => StoreError::Unavailable(text.clone()),
            StoreError::Gone(text) => StoreError::Gone(text.clone()),
            StoreError::NoSuchFile(text) => StoreError::NoSuchFile(text.clone()),
            StoreError::UnsupportedUrl(text) => StoreError::UnsupportedUrl(text.clone()),
            StoreError::Migrate(err) => StoreError::Corrupt(err.to_string()),
        }
    }

    /// Whether the database could not be reached (as opposed to refusing or failing a statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Errors that mean the database is out of reach rather than that a statement failed.
fn is_connectivity(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // PostgreSQL's connection exceptions (08…) and shutdown notices (57P01–57P03).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    }
}

/// A PAT with its owner's display name, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPat {
    pub pat: PatRecord,
    pub owner_name: String,
}

/// Which PATs a list returns, in what order, and which page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatQuery {
    /// `None`: every owner.
    pub owner: Option<IdentityId>,
    pub include_managed: bool,
    pub request: ListRequest,
}

/// One page of a list, and the total number matching when it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatPage {
    pub items: Vec<OwnedPat>,
    pub total: Option<u64>,
}

/// One use of a PAT to record: with `daily`, `lastUsed` becomes `at` unless it is already later
/// than `not_after`; `new_ips` (newest first) go in front of the PAT's stored last addresses, of
/// which five are kept; `events` are its `pat.used` events.
#[derive(Debug, Clone, PartialEq)]
pub struct LastUse {
    pub id: PatId,
    pub at: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub daily: bool,
    pub new_ips: Vec<String>,
    pub events: Vec<UseEvent>,
}

/// A `pat.used` event and what its use found due. It is written only if what it reports
/// happened in the database: this write set `lastUsed` (`daily`), or its address was not among
/// the PAT's stored ones. Nodes decide from what they have cached, and two nodes can both find
/// one PAT's first use of the day, or one new address: the database settles which one it was.
#[derive(Debug, Clone, PartialEq)]
pub struct UseEvent {
    pub daily: bool,
    pub new_ip: Option<String>,
    pub event: AuditEvent,
}

/// One delivery in the outbox: a webhook call or a mail, and how its attempts went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    /// The `webhook-id` header: the same for every delivery of one message.
    pub message_id: String,
    pub webhook_id: Option<String>,
    /// The Shared Signals stream of a SET (channels `ssf_push`, `ssf_poll`); its `id` is the
    /// SET's `jti`.
    pub stream_id: Option<String>,
    /// `webhook`, `email`, `ssf_push` or `ssf_poll`.
    pub channel: String,
    /// A mail's address.
    pub recipient: Option<String>,
    pub event_type: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub created: OffsetDateTime,
    pub next_attempt: OffsetDateTime,
    pub last_attempt: Option<OffsetDateTime>,
    /// The HTTP status of the last attempt (webhooks).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered: Option<OffsetDateTime>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        status: Option<u16>,
    },
    /// Try again at `next`.
    Retry {
        next: OffsetDateTime,
        status: Option<u16>,
        error: String,
    },
    /// Given up: past its day of retries.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// What `Store::insert_stream` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamInsert {
    Inserted,
    /// The client id has a stream already: one each.
    ClientHasOne,
    /// The tenant has its ten streams.
    TenantFull,
}

/// One page of audit events, and the total matching when it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    pub total: Option<u64>,
}

/// A signing key as kept in the database: its id and its private key, a PKCS#8 PEM or that PEM
/// sealed with a key-encryption key (the server's `kek` module). The column is `private_pem`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub private_key: String,
    pub created: OffsetDateTime,
    /// When it was retired (`patd key retire`): it no longer signs or verifies. A new key is
    /// never stored retired.
    pub retired: Option<OffsetDateTime>,
}

/// What `Store::retire_signing_key` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Retired now, and announced.
    Retired(OffsetDateTime),
    /// It had been retired already, at this time; nothing changed.
    AlreadyRetired(OffsetDateTime),
    /// It is the newest key, the one that signs: never retired.
    Current,
    /// No key has this `kid`.
    NotFound,
}

/// A new stored text for signing key `kid` (its key sealed, or sealed again), written only while
/// the stored text is still `old`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyReplacement {
    pub kid: String,
    pub old: String,
    pub new: String,
}

impl std::fmt::Debug for SigningKeyReplacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyReplacement")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// Everything the server needs from a database. Backends implement it in full.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new identity with its `identity.created` event, in one transaction.
    async fn insert_identity(
        &self,
        identity: &Identity,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError>;
    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError>;
    /// Every identity, by name.
    async fn identities(&self) -> Result<Vec<Identity>, StoreError>;
    /// Whether no identity exists yet (the database is new).
    async fn has_no_identities(&self) -> Result<bool, StoreError>;

    /// Stores a new PAT. With `limit`, refuses with `LimitReached` when the owner already has
    /// that many non-managed PATs; the check and the insert are one atomic step. `event` is
    /// stored with the PAT, or not at all.
    async fn insert_pat(
        &self,
        pat: &NewPat,
        limit: Option<u32>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Stores many PATs in one transaction, all or none, with no per-owner limit and no audit
    /// events: for seeding benchmarks and tests only.
    async fn insert_pats(&self, pats: &[NewPat]) -> Result<(), StoreError>;
    async fn pat(&self, id: &PatId) -> Result<Option<OwnedPat>, StoreError>;
    /// A page of PATs in the requested order, `id` breaking ties, with the total if asked.
    async fn list_pats(&self, query: &PatQuery) -> Result<PatPage, StoreError>;
    /// The PATs with these ids that exist, in no particular order.
    async fn pats_by_ids(&self, ids: &[PatId]) -> Result<Vec<OwnedPat>, StoreError>;
    /// Writes the patchable fields of every PAT in one transaction: all or none. `NotFound` if
    /// any is missing. The events are stored in the same transaction.
    async fn update_pats(
        &self,
        pats: &[PatRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Writes the patchable fields (name, scope, expiry, acknowledgement) of `pat`, and `event`.
    async fn update_pat(&self, pat: &PatRecord, event: &AuditEvent) -> Result<(), StoreError>;
    /// Gives a PAT the new secret of `rotation` (the replaced one kept for its grace period),
    /// with `event`, and announces it; `false` if there is no such PAT.
    async fn rotate_pat(&self, rotation: &Rotation, event: &AuditEvent)
        -> Result<bool, StoreError>;
    /// Returns whether a PAT was deleted; `event` is stored if it was.
    async fn delete_pat(&self, id: &PatId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Revokes one access token by its `jti` until its `exp`, with `event` (`token.revoked`),
    /// and announces it as a change of its PAT.
    async fn revoke_token(
        &self,
        revocation: &TokenRevocation,
        event: &AuditEvent,
    ) -> Result<TokenRevoked, StoreError>;
    /// Forgets revocations of tokens that expired before `before`; returns how many.
    async fn prune_revoked_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Stores a webhook with its `webhook.created` event.
    async fn insert_webhook(&self, hook: &Webhook, event: &AuditEvent) -> Result<(), StoreError>;
    /// Every webhook, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError>;
    /// Writes a webhook's url, events and description; `false` if there is no such webhook.
    async fn update_webhook(&self, hook: &Webhook) -> Result<bool, StoreError>;
    /// Deletes a webhook and its pending deliveries, with `event`; `false` if there was none.
    async fn delete_webhook(&self, id: &str, event: &AuditEvent) -> Result<bool, StoreError>;
    /// A webhook's deliveries, newest first.
    async fn deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Queues the message of a delivery again, due now; `None` if there is no such delivery.
    async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Deliveries due on `channels` and not leased, each webhook's oldest pending one only.
    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        channels: &[&str],
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Leases a delivery for one attempt; `false` if another node holds it or it is done.
    async fn claim_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records an attempt's outcome and frees the lease.
    async fn finish_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError>;
    /// A page of the PATs expiring within `[from, to]`, soonest first.
    async fn expiring_pats(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<OwnedPat>, StoreError>;
    /// Marks an expiry notice sent and stores its event, once per PAT, threshold and expiry
    /// across every node; returns whether this call was the one.
    async fn record_expiry_notice(
        &self,
        pat_id: &str,
        thresholds: &[&str],
        expiration: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Sets (or, with `None`, clears) the address an identity's mail goes to; `false` if there
    /// is no such identity.
    async fn set_identity_email(&self, id: &str, email: Option<&str>) -> Result<bool, StoreError>;
    /// Stores `value` under `key`, replacing what was there.
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Stores a sign-in link (EXTENSIONS E12).
    async fn insert_sign_in_link(&self, link: &SignInLink) -> Result<(), StoreError>;
    /// Whom the link with this digest signs in at `now`, if it is unused and unexpired.
    async fn sign_in_link(
        &self,
        digest: &WebDigest,
        now: OffsetDateTime,
    ) -> Result<Option<IdentityId>, StoreError>;
    /// Uses up a link and stores the session it opens, with its event, in one transaction;
    /// false (nothing written) if the link is used, expired, unknown or another identity's.
    async fn redeem_sign_in_link(
        &self,
        link: &WebDigest,
        session: &Session,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Stores a session opened through OpenID Connect, with its event.
    async fn insert_session(&self, session: &Session, event: &AuditEvent)
        -> Result<(), StoreError>;
    async fn session(&self, digest: &WebDigest) -> Result<Option<Session>, StoreError>;
    /// Records a use of a session at `at`.
    async fn touch_session(&self, digest: &WebDigest, at: OffsetDateTime)
        -> Result<(), StoreError>;
    /// Ends a session with its event; false if it was not there.
    async fn delete_session(
        &self,
        digest: &WebDigest,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Deletes sessions idle or begun before the given times, expired links and stale logins.
    async fn prune_web(
        &self,
        sessions_idle_before: OffsetDateTime,
        sessions_begun_before: OffsetDateTime,
        links_before: OffsetDateTime,
        logins_before: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// The one identity whose mail address is `email`, ignoring case; `None` when no identity,
    /// or more than one, has it.
    async fn identity_by_email(&self, email: &str) -> Result<Option<Identity>, StoreError>;
    async fn insert_oidc_login(&self, login: &OidcLogin) -> Result<(), StoreError>;
    /// Takes (reads and deletes) the login whose state has this digest.
    async fn take_oidc_login(
        &self,
        state_digest: &WebDigest,
    ) -> Result<Option<OidcLogin>, StoreError>;

    /// Stores a new Shared Signals stream, unless its client id has one or the tenant is full;
    /// of concurrent creates, on any backend, at most ten succeed and one per client id.
    async fn insert_stream(&self, stream: &Stream) -> Result<StreamInsert, StoreError>;
    /// Every stream, oldest first.
    async fn streams(&self) -> Result<Vec<Stream>, StoreError>;
    async fn stream(&self, id: &str) -> Result<Option<Stream>, StoreError>;
    /// Writes a stream's delivery, events, description, status and reason (disabled: its held
    /// SETs are dropped); `false` if there is no such stream.
    async fn update_stream(&self, stream: &Stream) -> Result<bool, StoreError>;
    /// Deletes a stream and its undelivered SETs; `false` if there was none.
    async fn delete_stream(&self, id: &str) -> Result<bool, StoreError>;
    /// Queues a SET for one stream (a verification); `false` if the stream is gone or disabled.
    async fn queue_stream_set(&self, stream_id: &str, signal: &Signal) -> Result<bool, StoreError>;
    /// An RFC 8936 poll: acknowledges `ack` and refuses `errors` (`jti`, error) for good, then
    /// returns at most `max` pending SETs, oldest first, and whether more are pending.
    async fn poll_stream(
        &self,
        stream_id: &str,
        ack: &[String],
        errors: &[(String, String)],
        max: i64,
    ) -> Result<(Vec<Delivery>, bool), StoreError>;

    /// The PATs, their digests and their owners, for token exchanges: the records of those of
    /// `ids` that exist, in any order, read together (cold exchanges arrive together).
    async fn pats_for_exchange(&self, ids: &[PatId]) -> Result<Vec<ExchangeRecord>, StoreError>;
    /// The same record for the PAT whose secret has `digest`, or whose replaced secret had it
    /// (whether its grace still lasts is the caller's to decide): a leaked or revoked secret
    /// names no id.
    async fn pat_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<ExchangeRecord>, StoreError>;
    /// Records many uses in one transaction (`lastUsed` in one statement, the new address lists,
    /// the `pat.used` events of what happened, `UseEvent`), and announces them to other nodes;
    /// returns the events written. Each PAT appears at most once.
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<Vec<AuditEvent>, StoreError>;
    /// Adds failed exchanges to their per-minute rows: `(event, count, aggregate key)`.
    async fn record_auth_failures(
        &self,
        aggregates: &[(AuditEvent, i64, String)],
    ) -> Result<(), StoreError>;
    /// A page of audit events, with the total if asked.
    async fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Deletes the events older than `before`; returns how many.
    async fn prune_audit_events(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Every stored signing key, retired ones included, oldest first (by `created`, then
    /// `kid`): the last one is the newest, which signs.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Adds a key (rotation) with its `key.created` event, and announces it.
    async fn insert_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Replaces the stored text of the given keys in one transaction, and announces it. Writes
    /// nothing and returns `false` if any key's text is no longer the `old` one (another process
    /// changed it meanwhile). On SQLite the replaced texts are also wiped from the file and its
    /// write-ahead log.
    async fn replace_signing_keys(
        &self,
        replacements: &[SigningKeyReplacement],
    ) -> Result<bool, StoreError>;
    /// Retires the key `kid` at `at`, and announces it, unless it is the newest key (which
    /// signs) or already retired; in one transaction, so a rotation at the same moment cannot
    /// leave the deployment without a key to sign with.
    async fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
    ) -> Result<Retirement, StoreError>;
    /// Stores `key` only if no first key was ever stored: of nodes starting together on a new
    /// database exactly one wins. Returns whether this one did.
    async fn insert_first_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Records that a node issues tokens under `url` (its JWT `iss`), and announces it.
    async fn register_issuer(&self, url: &str) -> Result<(), StoreError>;
    /// Every issuer a node of this database has registered.
    async fn issuers(&self) -> Result<Vec<String>, StoreError>;
    /// Returns the stored value of `key`, storing `value` first if there is none.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Whether the database answers a trivial query (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Refreshes the statistics the query planner picks indexes by: after a bulk load, at start
    /// and now and then as the tenant grows (the admin lists' plans depend on them).
    async fn optimize(&self) -> Result<(), StoreError>;
    /// How many of the pools' connections are in use and idle (metrics).
    fn pool_stats(&self) -> PoolStats;
    /// Changes other processes make to the same database, for backends that announce them
    /// (PostgreSQL's LISTEN/NOTIFY); `None` where every writer is this process.
    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<StoreEvent>>, StoreError>;
}

/// Connections of a backend's pools, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
}

/// A URL fit for a message: its password, if any, replaced by `***`. Database and Redis URLs
/// carry credentials, and errors and logs are read by more people than the server's owner.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The last `@` ends the user information: a password may itself contain `@`.
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let user = match user_info.find(':') {
        Some(colon) => &user_info[..colon],
        None => return url.to_owned(),
    };
    format!(
        "{}{user}:***{}",
        &url[..authority_start],
        &url[authority_start + at..]
    )
}

/// The store as the server holds it.
pub type DynStore = Arc<dyn Store>;

/// Opens the backend named by a database URL and applies its migrations; a SQLite file is
/// created if missing.
pub async fn connect(url: &str) -> Result<DynStore, StoreError> {
    connect_with(url, true).await
}

/// As `connect`, but a missing SQLite file is `NoSuchFile`, not created: for a server that must
/// not start a new tenant by accident (`serve --no-bootstrap`).
pub async fn connect_existing(url: &str) -> Result<DynStore, StoreError> {
    connect_with(url, false).await
}

/// The plans the database at `url` would follow for a list's statements (the page, then the
/// count when asked for), as it prints them: for the benchmark and ARCHITECTURE.md.
pub async fn explain_list(url: &str, query: &PatQuery) -> Result<Vec<String>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect_with(url, false).await?;
        store.queries().explain_list(query).await
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PostgresStore::connect(url).await?;
        store.queries().explain_list(query).await
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

async fn connect_with(url: &str, create: bool) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect_with(url, create).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// A time comparison against a value stored in whole milliseconds: the SQL operator and the
/// bound. A value with a fraction of a millisecond moves to the equivalent whole-millisecond
/// comparison (`> 1.5` is `> 1`, `< 1.5` is `<= 1`), so results match the exact comparison.
pub(crate) fn millis_comparison(op: TimeOp, value: OffsetDateTime) -> (&'static str, i64) {
    let nanos = value.unix_timestamp_nanos();
    let floor = i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX);
    let exact = nanos.rem_euclid(1_000_000) == 0;
    let sql = match (op, exact) {
        (TimeOp::Gt, _) | (TimeOp::Ge, false) => ">",
        (TimeOp::Ge, true) => ">=",
        (TimeOp::Lt, true) => "<",
        (TimeOp::Lt, false) | (TimeOp::Le, _) => "<=",
    };
    (sql, floor)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_passwords_only() {
        assert_eq!(
            redact_url("postgres://patd:s3cr@t@db:5432/patd?sslmode=require"),
            "postgres://patd:***@db:5432/patd?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("postgres://patd@db/patd"),
            "postgres://patd@db/patd"
        );
        assert_eq!(redact_url("sqlite://patd.db"), "sqlite://patd.db");
        assert_eq!(
            redact_url("sqlite://data/a:b@c.db"),
            "sqlite://data/a:b@c.db"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
