//! `Guarded`: a store whose every call is bounded in time, and `Health`, what it has learnt of
//! whether the database answers. While the database is out of reach, calls fail at once instead
//! of each waiting out the bound, but one call a second still goes through to notice its return.

use crate::{
    AuditPage, DynStore, LastUse, OwnedPat, PatPage, PatQuery, Retirement, SigningKeyReplacement,
    Store, StoreError, StoreEvent, StoredSigningKey,
};
use async_trait::async_trait;
use patd_core::audit::{AuditEvent, AuditQuery};
use patd_core::exchange::{ExchangeRecord, TokenRevocation};
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::notify::Webhook;
use patd_core::pat::{NewPat, PatRecord};
use patd_core::rotation::Rotation;
use patd_core::secret::SecretDigest;
use patd_core::ssf::{Signal, Stream};
use patd_core::web::{Session, SignInLink, WebDigest};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// While the database is down, at most one call per this many milliseconds is let through as a
/// probe.
const PROBE_MILLIS: u64 = 1_000;

/// The bound of a refresh of the planner's statistics.
const OPTIMIZE_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether the database answered the last call that tried it.
#[derive(Debug)]
pub struct Health {
    down: AtomicBool,
    /// Milliseconds after `origin` when the next probe may go through.
    next_probe: AtomicU64,
    origin: Instant,
}

impl Health {
    pub fn new() -> Health {
        Health {
            down: AtomicBool::new(false),
            next_probe: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Whether the last call that reached for the database found it out of reach.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// The database answered (a call succeeded, or the change feed is back).
    pub fn mark_up(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("the database answers again");
        }
    }

    fn mark_down(&self) {
        // The call that found it down was the probe: the next one waits its turn.
        self.next_probe
            .store(self.millis_now() + PROBE_MILLIS, Ordering::Release);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!("the database is out of reach; failing fast until it answers");
        }
    }

    /// Whether a call may try the database now: always while it is up; while it is down, the
    /// first caller of each probe interval.
    fn admit(&self) -> bool {
        if !self.is_down() {
            return true;
        }
        let now = self.millis_now();
        let due = self.next_probe.load(Ordering::Acquire);
        let next = now + PROBE_MILLIS;
        now >= due
            && self
                .next_probe
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

impl Health {
    fn millis_now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

/// A store whose calls each end within `timeout`, answering `StoreError::Unavailable` when the
/// database does not.
pub struct Guarded {
    inner: DynStore,
    timeout: Duration,
    health: Arc<Health>,
}

impl Guarded {
    pub fn new(inner: DynStore, timeout: Duration) -> Guarded {
        Guarded {
            inner,
            timeout,
            health: Arc::new(Health::new()),
        }
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    async fn call<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if !self.health.admit() {
            return Err(StoreError::Unavailable(
                "the last attempt found it out of reach".to_owned(),
            ));
        }
        let result = match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        };
        match &result {
            Err(err) if err.is_unavailable() => self.health.mark_down(),
            _ => self.health.mark_up(),
        }
        result
    }
}

/// Implements `Store` for `Guarded` by passing each call, bounded, to the inner store.
macro_rules! guarded {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for Guarded {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                self.call(self.inner.$name($($arg),*)).await
            })*
            fn pool_stats(&self) -> crate::PoolStats {
                self.inner.pool_stats()
            }
            /// Housekeeping that may outlast the database timeout on a large tenant (SQLite's
            /// ANALYZE holds the one writer meanwhile): a bound of its own, and what it finds
            /// says nothing of the database's health, so it never fails the requests around it.
            async fn optimize(&self) -> Result<(), StoreError> {
                tokio::time::timeout(OPTIMIZE_TIMEOUT, self.inner.optimize())
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Unavailable(format!(
                            "no answer within {OPTIMIZE_TIMEOUT:?}"
                        )))
                    })
            }
        }
    };
}

guarded! {
    insert_identity(identity: &Identity, event: &AuditEvent) -> ();
    identity(id: &IdentityId) -> Option<Identity>;
    identity_by_name(name: &str) -> Option<Identity>;
    identities() -> Vec<Identity>;
    has_no_identities() -> bool;
    insert_pat(pat: &NewPat, limit: Option<u32>, event: &AuditEvent) -> ();
    insert_pats(pats: &[NewPat]) -> ();
    pat(id: &PatId) -> Option<OwnedPat>;
    list_pats(query: &PatQuery) -> PatPage;
    pats_by_ids(ids: &[PatId]) -> Vec<OwnedPat>;
    update_pats(pats: &[PatRecord], events: &[AuditEvent]) -> ();
    update_pat(pat: &PatRecord, event: &AuditEvent) -> ();
    rotate_pat(rotation: &Rotation, event: &AuditEvent) -> bool;
    revoke_token(revocation: &TokenRevocation, event: &AuditEvent) -> crate::TokenRevoked;
    prune_revoked_tokens(before: OffsetDateTime) -> u64;
    insert_sign_in_link(link: &SignInLink) -> ();
    sign_in_link(digest: &WebDigest, now: OffsetDateTime) -> Option<IdentityId>;
    redeem_sign_in_link(link: &WebDigest, session: &Session, event: &AuditEvent) -> bool;
    insert_session(session: &Session, event: &AuditEvent) -> ();
    session(digest: &WebDigest) -> Option<Session>;
    touch_session(digest: &WebDigest, at: OffsetDateTime) -> ();
    delete_session(digest: &WebDigest, event: &AuditEvent) -> bool;
    prune_web(sessions_idle_before: OffsetDateTime, sessions_begun_before: OffsetDateTime, links_before: OffsetDateTime, logins_before: OffsetDateTime) -> u64;
    identity_by_email(email: &str) -> Option<Identity>;
    insert_oidc_login(login: &crate::OidcLogin) -> ();
    take_oidc_login(state_digest: &WebDigest) -> Option<crate::OidcLogin>;
    insert_webhook(hook: &Webhook, event: &AuditEvent) -> ();
    webhooks() -> Vec<Webhook>;
    webhook(id: &str) -> Option<Webhook>;
    update_webhook(hook: &Webhook) -> bool;
    delete_webhook(id: &str, event: &AuditEvent) -> bool;
    deliveries(webhook_id: &str, limit: i64, offset: i64) -> Vec<crate::Delivery>;
    redeliver(webhook_id: &str, delivery_id: &str, now: OffsetDateTime) -> Option<crate::Delivery>;
    due_deliveries(now: OffsetDateTime, channels: &[&str], limit: i64) -> Vec<crate::Delivery>;
    claim_delivery(id: &str, now: OffsetDateTime, lease_until: OffsetDateTime) -> bool;
    finish_delivery(id: &str, now: OffsetDateTime, outcome: &crate::DeliveryOutcome) -> ();
    expiring_pats(from: OffsetDateTime, to: OffsetDateTime, limit: i64, offset: i64) -> Vec<OwnedPat>;
    record_expiry_notice(pat_id: &str, thresholds: &[&str], expiration: OffsetDateTime, event: &AuditEvent) -> bool;
    set_identity_email(id: &str, email: Option<&str>) -> bool;
    set_setting(key: &str, value: &str) -> ();
    setting(key: &str) -> Option<String>;
    insert_stream(stream: &Stream) -> crate::StreamInsert;
    streams() -> Vec<Stream>;
    stream(id: &str) -> Option<Stream>;
    update_stream(stream: &Stream) -> bool;
    delete_stream(id: &str) -> bool;
    queue_stream_set(stream_id: &str, signal: &Signal) -> bool;
    poll_stream(stream_id: &str, ack: &[String], errors: &[(String, String)], max: i64) -> (Vec<crate::Delivery>, bool);
    delete_pat(id: &PatId, event: &AuditEvent) -> bool;
    pats_for_exchange(ids: &[PatId]) -> Vec<ExchangeRecord>;
    pat_by_digest(digest: &SecretDigest) -> Option<ExchangeRecord>;
    record_last_used(uses: &[LastUse]) -> Vec<AuditEvent>;
    record_auth_failures(aggregates: &[(AuditEvent, i64, String)]) -> ();
    audit_events(query: &AuditQuery) -> AuditPage;
    prune_audit_events(before: OffsetDateTime) -> u64;
    signing_keys() -> Vec<StoredSigningKey>;
    insert_signing_key(key: &StoredSigningKey, event: &AuditEvent) -> ();
    replace_signing_keys(replacements: &[SigningKeyReplacement]) -> bool;
    insert_first_signing_key(key: &StoredSigningKey, event: &AuditEvent) -> bool;
    retire_signing_key(kid: &str, at: OffsetDateTime) -> Retirement;
    register_issuer(url: &str) -> ();
    issuers() -> Vec<String>;
    setting_or_insert(key: &str, value: &str) -> String;
    subscribe() -> Option<mpsc::Receiver<StoreEvent>>;
    ping() -> ();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_database_admits_one_probe_per_interval() {
        let health = Health::new();
        assert!(
            health.admit() && health.admit(),
            "up: every call goes through"
        );
        health.mark_down();
        assert!(!health.admit(), "the call that found it down was the probe");
        health.next_probe.store(0, Ordering::Release);
        assert!(health.admit(), "the next probe, once due");
        assert!(
            !health.admit(),
            "then nothing until the interval has passed"
        );
        health.mark_up();
        assert!(health.admit());
    }
}
