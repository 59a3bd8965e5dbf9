//! `lastUsed`: at most one database write per PAT per 24 hours; otherwise the exchange path
//! writes nothing. Writes are counted through the `Store` trait.

use crate::helpers::*;
use async_trait::async_trait;
use futures::future::join_all;
use patd_core::audit::{AuditEvent, AuditQuery};
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{NewPat, PatRecord};
use patd_store::{
    DynStore, LastUse, OwnedPat, PatPage, PatQuery, Retirement, SigningKeyReplacement, Store,
    StoreError, StoreEvent, StoredSigningKey,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Delegates to a real store and counts every write and every exchange lookup.
struct CountingStore {
    inner: DynStore,
    writes: Arc<AtomicUsize>,
    last_used_writes: Arc<AtomicUsize>,
    exchange_reads: Arc<AtomicUsize>,
    /// How long the statistics' refresh takes beyond the real one, and how many have ended.
    optimize_delay: std::time::Duration,
    optimized: Arc<AtomicUsize>,
}

#[async_trait]
impl Store for CountingStore {
    async fn insert_identity(
        &self,
        identity: &Identity,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_identity(identity, event).await
    }
    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.inner.identity(id).await
    }
    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        self.inner.identity_by_name(name).await
    }
    async fn identities(&self) -> Result<Vec<Identity>, StoreError> {
        self.inner.identities().await
    }
    async fn has_no_identities(&self) -> Result<bool, StoreError> {
        self.inner.has_no_identities().await
    }
    async fn insert_pat(
        &self,
        pat: &NewPat,
        limit: Option<u32>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_pat(pat, limit, event).await
    }
    async fn rotate_pat(
        &self,
        rotation: &patd_core::rotation::Rotation,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.rotate_pat(rotation, event).await
    }
    async fn revoke_token(
        &self,
        revocation: &patd_core::exchange::TokenRevocation,
        event: &AuditEvent,
    ) -> Result<patd_store::TokenRevoked, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.revoke_token(revocation, event).await
    }
    async fn prune_revoked_tokens(&self, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.prune_revoked_tokens(before).await
    }
    async fn insert_sign_in_link(
        &self,
        link: &patd_core::web::SignInLink,
    ) -> Result<(), StoreError> {
        self.inner.insert_sign_in_link(link).await
    }
    async fn sign_in_link(
        &self,
        digest: &patd_core::web::WebDigest,
        now: time::OffsetDateTime,
    ) -> Result<Option<IdentityId>, StoreError> {
        self.inner.sign_in_link(digest, now).await
    }
    async fn redeem_sign_in_link(
        &self,
        link: &patd_core::web::WebDigest,
        session: &patd_core::web::Session,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.inner.redeem_sign_in_link(link, session, event).await
    }
    async fn insert_session(
        &self,
        session: &patd_core::web::Session,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.insert_session(session, event).await
    }
    async fn session(
        &self,
        digest: &patd_core::web::WebDigest,
    ) -> Result<Option<patd_core::web::Session>, StoreError> {
        self.inner.session(digest).await
    }
    async fn touch_session(
        &self,
        digest: &patd_core::web::WebDigest,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.touch_session(digest, at).await
    }
    async fn delete_session(
        &self,
        digest: &patd_core::web::WebDigest,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.inner.delete_session(digest, event).await
    }
    async fn prune_web(
        &self,
        a: time::OffsetDateTime,
        b: time::OffsetDateTime,
        c: time::OffsetDateTime,
        d: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.inner.prune_web(a, b, c, d).await
    }
    async fn identity_by_email(&self, email: &str) -> Result<Option<Identity>, StoreError> {
        self.inner.identity_by_email(email).await
    }
    async fn insert_oidc_login(&self, login: &patd_store::OidcLogin) -> Result<(), StoreError> {
        self.inner.insert_oidc_login(login).await
    }
    async fn take_oidc_login(
        &self,
        state: &patd_core::web::WebDigest,
    ) -> Result<Option<patd_store::OidcLogin>, StoreError> {
        self.inner.take_oidc_login(state).await
    }
    async fn insert_webhook(
        &self,
        hook: &patd_core::notify::Webhook,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.insert_webhook(hook, event).await
    }
    async fn webhooks(&self) -> Result<Vec<patd_core::notify::Webhook>, StoreError> {
        self.inner.webhooks().await
    }
    async fn webhook(&self, id: &str) -> Result<Option<patd_core::notify::Webhook>, StoreError> {
        self.inner.webhook(id).await
    }
    async fn update_webhook(&self, hook: &patd_core::notify::Webhook) -> Result<bool, StoreError> {
        self.inner.update_webhook(hook).await
    }
    async fn delete_webhook(&self, id: &str, event: &AuditEvent) -> Result<bool, StoreError> {
        self.inner.delete_webhook(id, event).await
    }
    async fn deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<patd_store::Delivery>, StoreError> {
        self.inner.deliveries(webhook_id, limit, offset).await
    }
    async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<patd_store::Delivery>, StoreError> {
        self.inner.redeliver(webhook_id, delivery_id, now).await
    }
    async fn due_deliveries(
        &self,
        now: time::OffsetDateTime,
        channels: &[&str],
        limit: i64,
    ) -> Result<Vec<patd_store::Delivery>, StoreError> {
        self.inner.due_deliveries(now, channels, limit).await
    }
    async fn claim_delivery(
        &self,
        id: &str,
        now: time::OffsetDateTime,
        lease_until: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.claim_delivery(id, now, lease_until).await
    }
    async fn finish_delivery(
        &self,
        id: &str,
        now: time::OffsetDateTime,
        outcome: &patd_store::DeliveryOutcome,
    ) -> Result<(), StoreError> {
        self.inner.finish_delivery(id, now, outcome).await
    }
    async fn expiring_pats(
        &self,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<OwnedPat>, StoreError> {
        self.inner.expiring_pats(from, to, limit, offset).await
    }
    async fn record_expiry_notice(
        &self,
        pat_id: &str,
        thresholds: &[&str],
        expiration: time::OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.inner
            .record_expiry_notice(pat_id, thresholds, expiration, event)
            .await
    }
    async fn set_identity_email(&self, id: &str, email: Option<&str>) -> Result<bool, StoreError> {
        self.inner.set_identity_email(id, email).await
    }
    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_setting(key, value).await
    }
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(key).await
    }
    async fn insert_stream(
        &self,
        stream: &patd_core::ssf::Stream,
    ) -> Result<patd_store::StreamInsert, StoreError> {
        self.inner.insert_stream(stream).await
    }
    async fn streams(&self) -> Result<Vec<patd_core::ssf::Stream>, StoreError> {
        self.inner.streams().await
    }
    async fn stream(&self, id: &str) -> Result<Option<patd_core::ssf::Stream>, StoreError> {
        self.inner.stream(id).await
    }
    async fn update_stream(&self, stream: &patd_core::ssf::Stream) -> Result<bool, StoreError> {
        self.inner.update_stream(stream).await
    }
    async fn delete_stream(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_stream(id).await
    }
    async fn queue_stream_set(
        &self,
        stream_id: &str,
        signal: &patd_core::ssf::Signal,
    ) -> Result<bool, StoreError> {
        self.inner.queue_stream_set(stream_id, signal).await
    }
    async fn poll_stream(
        &self,
        stream_id: &str,
        ack: &[String],
        errors: &[(String, String)],
        max: i64,
    ) -> Result<(Vec<patd_store::Delivery>, bool), StoreError> {
        self.inner.poll_stream(stream_id, ack, errors, max).await
    }
    async fn insert_pats(&self, pats: &[NewPat]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_pats(pats).await
    }
    async fn pat(&self, id: &PatId) -> Result<Option<OwnedPat>, StoreError> {
        self.inner.pat(id).await
    }
    async fn list_pats(&self, query: &PatQuery) -> Result<PatPage, StoreError> {
        self.inner.list_pats(query).await
    }
    async fn pats_by_ids(&self, ids: &[PatId]) -> Result<Vec<OwnedPat>, StoreError> {
        self.inner.pats_by_ids(ids).await
    }
    async fn update_pats(
        &self,
        pats: &[PatRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update_pats(pats, events).await
    }
    async fn update_pat(&self, pat: &PatRecord, event: &AuditEvent) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update_pat(pat, event).await
    }
    async fn delete_pat(&self, id: &PatId, event: &AuditEvent) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_pat(id, event).await
    }
    async fn pats_for_exchange(&self, ids: &[PatId]) -> Result<Vec<ExchangeRecord>, StoreError> {
        self.exchange_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.pats_for_exchange(ids).await
    }
    async fn pat_by_digest(
        &self,
        digest: &patd_core::secret::SecretDigest,
    ) -> Result<Option<ExchangeRecord>, StoreError> {
        self.inner.pat_by_digest(digest).await
    }
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<Vec<AuditEvent>, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.last_used_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_last_used(uses).await
    }
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.inner.signing_keys().await
    }
    async fn insert_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_signing_key(key, event).await
    }
    async fn replace_signing_keys(
        &self,
        replacements: &[SigningKeyReplacement],
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.replace_signing_keys(replacements).await
    }
    async fn insert_first_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_first_signing_key(key, event).await
    }
    async fn retire_signing_key(
        &self,
        kid: &str,
        at: time::OffsetDateTime,
    ) -> Result<Retirement, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.retire_signing_key(kid, at).await
    }
    async fn register_issuer(&self, url: &str) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.register_issuer(url).await
    }
    async fn issuers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.issuers().await
    }
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.inner.setting_or_insert(key, value).await
    }
    async fn record_auth_failures(
        &self,
        aggregates: &[(AuditEvent, i64, String)],
    ) -> Result<(), StoreError> {
        self.inner.record_auth_failures(aggregates).await
    }
    async fn audit_events(&self, query: &AuditQuery) -> Result<patd_store::AuditPage, StoreError> {
        self.inner.audit_events(query).await
    }
    async fn prune_audit_events(&self, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.prune_audit_events(before).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn optimize(&self) -> Result<(), StoreError> {
        tokio::time::sleep(self.optimize_delay).await;
        let result = self.inner.optimize().await;
        self.optimized.fetch_add(1, Ordering::SeqCst);
        result
    }
    fn pool_stats(&self) -> patd_store::PoolStats {
        self.inner.pool_stats()
    }
    async fn subscribe(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<StoreEvent>>, StoreError> {
        self.inner.subscribe().await
    }
}

struct Counters {
    writes: Arc<AtomicUsize>,
    last_used_writes: Arc<AtomicUsize>,
    exchange_reads: Arc<AtomicUsize>,
}

async fn counted_app() -> (TestApp, Counters) {
    let counters = Counters {
        writes: Arc::default(),
        last_used_writes: Arc::default(),
        exchange_reads: Arc::default(),
    };
    let (writes, last_used_writes, exchange_reads) = (
        counters.writes.clone(),
        counters.last_used_writes.clone(),
        counters.exchange_reads.clone(),
    );
    let app = spawn_app_wrapped(
        |_| {},
        move |inner| {
            Arc::new(CountingStore {
                inner,
                writes,
                last_used_writes,
                exchange_reads,
                optimize_delay: std::time::Duration::ZERO,
                optimized: Arc::default(),
            })
        },
    )
    .await;
    (app, counters)
}

#[tokio::test]
async fn a_thousand_exchanges_write_last_used_once() {
    let (app, counters) = counted_app().await;
    let pat = app
        .admin_pat(
            &app.bootstrap.owner.id,
            "busy",
            &[],
            AdminExpiry::Default,
            false,
        )
        .await;
    let writes_before = counters.writes.load(Ordering::SeqCst);
    let reads_before = counters.exchange_reads.load(Ordering::SeqCst);
    let last_used_before = counters.last_used_writes.load(Ordering::SeqCst);
    // Half at once, half one after another.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", pat.id.as_str()),
        ("client_secret", pat.secret.as_str()),
    ];
    let concurrent = join_all((0..500).map(|_| app.token_form(&form))).await;
    assert!(concurrent.iter().all(|response| response.status() == 200));
    for _ in 0..500 {
        assert_eq!(app.token_form(&form).await.status(), 200);
    }
    // The write happens off the request path: wait for it, then make sure no second one follows.
    let started = std::time::Instant::now();
    while counters.last_used_writes.load(Ordering::SeqCst) == last_used_before
        && started.elapsed() < std::time::Duration::from_secs(2)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        counters.last_used_writes.load(Ordering::SeqCst) - last_used_before,
        1,
        "one lastUsed write"
    );
    assert_eq!(
        counters.writes.load(Ordering::SeqCst) - writes_before,
        1,
        "and no other write"
    );
    // The PAT came from the database a handful of times at most, not per exchange.
    assert!(counters.exchange_reads.load(Ordering::SeqCst) - reads_before <= 5);
    let listed = app
        .list_ok(&app.admin_token, CLASSIC, "filters=name%20eq%20%22busy%22")
        .await;
    assert!(is_millis_timestamp(&listed[0]["lastUsed"]));
}

/// `count` PATs of a new identity, with their secrets (the per-owner limit lifted).
async fn many_pats(app: &TestApp, owner: &str, count: usize) -> Vec<(String, String)> {
    let identity = app.identity(owner, "USER", &[]).await;
    let mut pats = Vec::new();
    for n in 0..count {
        let options = patd_server::admin::TokenOptions {
            name: format!("p{n}"),
            scope: Vec::new(),
            validity_seconds: None,
            expires: AdminExpiry::Default,
            managed: false,
            limit: 1_000,
        };
        let created = patd_server::admin::create_token(app.store.as_ref(), &identity.id, options)
            .await
            .unwrap();
        pats.push((created.id, created.secret));
    }
    pats
}

#[tokio::test]
async fn a_list_sent_right_after_exchanges_shows_every_new_last_used() {
    let app = spawn_app().await;
    let pats = many_pats(&app, "fleet", 150).await;
    let owner = app.store.identity_by_name("fleet").await.unwrap().unwrap();
    let forms: Vec<_> = pats
        .iter()
        .map(|(id, secret)| {
            [
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ]
        })
        .collect();
    let answers = join_all(forms.iter().map(|form| app.token_form(form))).await;
    assert!(answers.iter().all(|response| response.status() == 200));
    // Every exchange has been answered: the same node's list must show each use.
    let query = format!(
        "owner-id={}&filters=lastUsed%20isnull&count=true&limit=0",
        owner.id
    );
    let response = app.list(&app.admin_token, CLASSIC, &query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-total-count"],
        "0",
        "PATs still listed as never used"
    );
    let listed = app
        .list_ok(&app.admin_token, CLASSIC, &format!("owner-id={}", owner.id))
        .await;
    assert_eq!(listed.len(), 150);
    assert!(listed
        .iter()
        .all(|pat| is_millis_timestamp(&pat["lastUsed"])));
}

#[tokio::test]
async fn sigterm_writes_every_queued_last_used_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let flags = ["--rate-limit", "off", "--max-tokens-per-owner", "1000"];
    let server = crate::cli::ServerProcess::start(&db, &flags, "info");
    let (id, secret) = server.bootstrap().unwrap();
    let client = reqwest::Client::new();
    let body: serde_json::Value = crate::cli::exchange(&server.base, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let mut pats = Vec::new();
    for n in 0..50 {
        let created: serde_json::Value = client
            .post(format!("{}{CLASSIC}", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": format!("job {n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pats.push((
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        ));
    }
    let answers = join_all(
        pats.iter()
            .map(|(id, secret)| crate::cli::exchange(&server.base, id, secret)),
    )
    .await;
    assert!(answers.iter().all(|response| response.status() == 200));
    // SIGTERM at once: the writes are still queued.
    let (exited_cleanly, _, stderr) = server.stop();
    assert!(exited_cleanly, "{stderr}");
    let store = patd_store::connect(&db).await.unwrap();
    let mut kept = 0;
    for (id, _) in &pats {
        let pat = store
            .pat(&PatId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        kept += usize::from(pat.pat.last_used.is_some());
    }
    assert_eq!(kept, pats.len(), "lastUsed writes lost at shutdown");
}

/// The planner's statistics are refreshed 10 s after a node starts, and on a large tenant that
/// can take longer than the database timeout: it is housekeeping with a bound of its own, so it
/// neither fails at the timeout nor marks the database out of reach (which would fail every
/// request for a second). Lists that each reach the database keep answering 200 throughout.
#[tokio::test]
async fn a_statistics_refresh_longer_than_the_database_timeout_fails_no_request() {
    let optimized = Arc::new(AtomicUsize::new(0));
    let counted = optimized.clone();
    let app = spawn_app_wrapped(
        |config| config.database_timeout = std::time::Duration::from_millis(300),
        move |inner| {
            Arc::new(CountingStore {
                inner,
                writes: Arc::default(),
                last_used_writes: Arc::default(),
                exchange_reads: Arc::default(),
                optimize_delay: std::time::Duration::from_millis(1_000),
                optimized: counted,
            })
        },
    )
    .await;
    let started = std::time::Instant::now();
    let mut offset = 0;
    while optimized.load(Ordering::SeqCst) == 0 || started.elapsed().as_secs() < 12 {
        assert!(
            started.elapsed().as_secs() < 20,
            "the statistics were never refreshed"
        );
        // A new query each time: the list cache answers none of them.
        offset += 1;
        let response = app
            .list(
                &app.admin_token,
                CLASSIC,
                &format!("limit=1&offset={offset}"),
            )
            .await;
        assert_eq!(
            response.status(),
            200,
            "a list {:?} after the start",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
