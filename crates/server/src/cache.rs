//! The in-memory view of PATs that the hot paths read: exchange records by PAT id (including
//! "no such PAT"), invalidated on every write this node makes or hears of, and the `lastUsed`
//! marks that keep the exchange path to one database write per PAT per 24 hours; identities by
//! id; recent list answers.

use moka::ops::compute::{CompResult, Op};
use patd_core::exchange::{last_used_due, ExchangeRecord};
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_store::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How many PATs the cache holds at most.
const CAPACITY: u64 = 200_000;

type Record = Option<Arc<ExchangeRecord>>;

pub struct PatCache {
    records: moka::future::Cache<PatId, Record>,
    /// Bumped for a PAT by each invalidation of it, so a load that overlapped one is not kept.
    generations: moka::sync::Cache<PatId, u64>,
    /// Bumped by `invalidate_all`.
    epoch: AtomicU64,
    last_used: moka::sync::Cache<PatId, OffsetDateTime>,
    /// Bumped by every write to any PAT: list answers cached under an older value are dead.
    lists_epoch: AtomicU64,
}

/// Why a coalesced load gave no cacheable value.
#[derive(Debug)]
enum LoadError {
    Store(StoreError),
    /// The PAT was written while it was being read.
    Stale,
}

impl PatCache {
    /// `lifetime` bounds how long an entry is trusted without a write seen by this node.
    pub fn new(lifetime: Duration) -> PatCache {
        PatCache {
            records: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime)
                .build(),
            generations: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime * 2)
                .build(),
            epoch: AtomicU64::new(0),
            last_used: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            lists_epoch: AtomicU64::new(0),
        }
    }

    fn generation(&self, id: &PatId) -> (u64, u64) {
        (
            self.epoch.load(Ordering::Acquire),
            self.generations.get(id).unwrap_or(0),
        )
    }

    /// The PAT's exchange record, from memory when possible. `None`: no such PAT. Concurrent
    /// misses for one PAT share a single database read.
    pub async fn get(&self, store: &dyn Store, id: &PatId) -> Result<Record, StoreError> {
        if let Some(cached) = self.records.get(id).await {
            return Ok(cached);
        }
        // A load that overlapped a write to the PAT is not kept; the next attempt loads again,
        // still shared by every waiter.
        for _ in 0..3 {
            let load = async {
                let before = self.generation(id);
                let loaded = store.pat_for_exchange(id).await.map_err(LoadError::Store)?;
                if self.generation(id) != before {
                    return Err(LoadError::Stale);
                }
                Ok(loaded.map(Arc::new))
            };
            match self.records.try_get_with(id.clone(), load).await {
                Ok(record) => return Ok(record),
                Err(err) if matches!(*err, LoadError::Stale) => continue,
                Err(err) => {
                    if let Ok(LoadError::Store(store_error)) = Arc::try_unwrap(err) {
                        return Err(store_error);
                    }
                    break;
                }
            }
        }
        // Writes keep racing the loads (or the error was shared): read once more, keep nothing.
        Ok(store.pat_for_exchange(id).await?.map(Arc::new))
    }

    /// The current lists epoch, part of every cached list answer's key.
    pub fn lists_epoch(&self) -> u64 {
        self.lists_epoch.load(Ordering::Acquire)
    }

    /// Marks every cached list answer stale (after a `lastUsed` write, say).
    pub fn lists_changed(&self) {
        self.lists_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets a PAT after a write to it (patch, delete, bulk update, create).
    pub async fn invalidate(&self, id: &PatId) {
        self.lists_changed();
        self.generations
            .entry(id.clone())
            .and_upsert_with(|entry| entry.map_or(1, |entry| entry.into_value().wrapping_add(1)));
        self.records.invalidate(id).await;
    }

    /// Forgets every PAT, when announcements of other nodes' writes may have been missed.
    pub fn invalidate_all(&self) {
        self.lists_changed();
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
        // The common case, read without taking the entry's lock: recorded recently enough.
        let marked = self.last_used.get(id);
        if !last_used_due(marked.max(stored), now) {
            return false;
        }
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

/// What identifies one list answer: who may see what, in which family, with which parameters,
/// as of which lists epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    pub owner: Option<patd_core::ids::IdentityId>,
    pub include_managed: bool,
    pub family: patd_core::expiry::Family,
    pub query: String,
    pub epoch: u64,
}

/// A list answer ready to send: the JSON body and the total, if asked for.
#[derive(Debug, Clone)]
pub struct ListAnswer {
    pub body: axum::body::Bytes,
    pub total: Option<u64>,
}

/// Recent list answers. Writes through this node or announced by the database retire them at
/// once (the epoch in the key); writes that bypass both (`patd token create` on SQLite while the
/// server runs) show after at most the lifetime.
pub struct ListCache {
    entries: moka::sync::Cache<ListKey, Arc<ListAnswer>>,
}

impl ListCache {
    pub fn new(lifetime: Duration) -> ListCache {
        ListCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(lifetime)
                .build(),
        }
    }

    pub fn get(&self, key: &ListKey) -> Option<Arc<ListAnswer>> {
        self.entries.get(key)
    }

    pub fn insert(&self, key: ListKey, answer: Arc<ListAnswer>) {
        self.entries.insert(key, answer);
    }
}

/// Identities by id, for the create path. An identity is never changed or removed once stored,
/// so a found one stays true; only found ones are kept, so a new identity is seen at once.
pub struct IdentityCache {
    entries: moka::sync::Cache<IdentityId, Arc<Identity>>,
}

impl IdentityCache {
    pub fn new() -> IdentityCache {
        IdentityCache {
            entries: moka::sync::Cache::builder().max_capacity(CAPACITY).build(),
        }
    }

    pub async fn get(
        &self,
        store: &dyn Store,
        id: &IdentityId,
    ) -> Result<Option<Arc<Identity>>, StoreError> {
        if let Some(found) = self.entries.get(id) {
            return Ok(Some(found));
        }
        let Some(identity) = store.identity(id).await? else {
            return Ok(None);
        };
        let identity = Arc::new(identity);
        self.entries.insert(id.clone(), identity.clone());
        Ok(Some(identity))
    }
}

impl Default for IdentityCache {
    fn default() -> IdentityCache {
        IdentityCache::new()
    }
}
