//! `lastUsed`: at most one database write per PAT per 24 hours; otherwise the exchange path
//! writes nothing. Writes are counted through the `Store` trait.

use crate::helpers::*;
use async_trait::async_trait;
use futures::future::join_all;
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{NewPat, PatRecord};
use patd_store::{
    DynStore, OwnedPat, PatPage, PatQuery, Store, StoreError, StoreEvent, StoredSigningKey,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;

/// Delegates to a real store and counts every write and every exchange lookup.
struct CountingStore {
    inner: DynStore,
    writes: Arc<AtomicUsize>,
    last_used_writes: Arc<AtomicUsize>,
    exchange_reads: Arc<AtomicUsize>,
}

#[async_trait]
impl Store for CountingStore {
    async fn insert_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_identity(identity).await
    }
    async fn identity(&self, id: &IdentityId) -> Result<Option<Identity>, StoreError> {
        self.inner.identity(id).await
    }
    async fn identity_by_name(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        self.inner.identity_by_name(name).await
    }
    async fn has_no_identities(&self) -> Result<bool, StoreError> {
        self.inner.has_no_identities().await
    }
    async fn insert_pat(&self, pat: &NewPat, limit: Option<u32>) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_pat(pat, limit).await
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
    async fn update_pats(&self, pats: &[PatRecord]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update_pats(pats).await
    }
    async fn update_pat(&self, pat: &PatRecord) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update_pat(pat).await
    }
    async fn delete_pat(&self, id: &PatId) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_pat(id).await
    }
    async fn pat_for_exchange(&self, id: &PatId) -> Result<Option<ExchangeRecord>, StoreError> {
        self.exchange_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.pat_for_exchange(id).await
    }
    async fn record_last_used(
        &self,
        id: &PatId,
        at: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.last_used_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_last_used(id, at, not_after).await
    }
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.inner.signing_keys().await
    }
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_signing_key(key).await
    }
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.inner.setting_or_insert(key, value).await
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
