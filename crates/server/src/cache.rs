//! The in-memory view of PATs that the hot paths read: exchange records by PAT id (including
//! "no such PAT"), invalidated on every write this node makes, and the `lastUsed` marks that keep
//! the exchange path to one database write per PAT per 24 hours.

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use patd_core::exchange::{last_used_due, ExchangeRecord};
use patd_core::ids::PatId;
use patd_store::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How many PATs the cache holds at most.
const CAPACITY: u64 = 200_000;

pub struct PatCache {
    records: Cache<PatId, Option<Arc<ExchangeRecord>>>,
    last_used: Cache<PatId, OffsetDateTime>,
    /// Bumped by every invalidation; a load that raced one is not cached.
    epoch: AtomicU64,
}

impl PatCache {
    /// `lifetime` bounds how long an entry is trusted without a write seen by this node.
    pub fn new(lifetime: Duration) -> PatCache {
        PatCache {
            records: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime)
                .build(),
            last_used: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The PAT's exchange record, from memory when possible. `None`: no such PAT.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &PatId,
    ) -> Result<Option<Arc<ExchangeRecord>>, StoreError> {
        if let Some(cached) = self.records.get(id) {
            return Ok(cached);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let loaded = store.pat_for_exchange(id).await?.map(Arc::new);
        // If a write was seen while loading, what we read may already be stale.
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.records.insert(id.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Forgets a PAT after a write to it (patch, delete, bulk update, create).
    pub fn invalidate(&self, id: &PatId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.records.invalidate(id);
    }

    /// Forgets every PAT, when announcements of other nodes' writes may have been missed.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.records.invalidate_all();
    }

    /// Whether this exchange must write `lastUsed`. At most one caller per PAT per 24 hours gets
    /// `true`, however many exchange at once.
    pub fn claim_last_used(
        &self,
        id: &PatId,
        stored: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> bool {
        let result = self.last_used.entry(id.clone()).and_compute_with(|entry| {
            let marked = entry.map(|entry| entry.into_value());
            let previous = marked.max(stored);
            if last_used_due(previous, now) {
                Op::Put(now)
            } else {
                Op::Nop
            }
        });
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }
}
