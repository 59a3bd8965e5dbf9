//! The in-memory view of PATs that the hot paths read: exchange records by PAT id (including
//! "no such PAT"), read from the database in batches and invalidated on every write this node
//! makes or hears of, and the `lastUsed` marks that keep the exchange path to one database write
//! per PAT per 24 hours; identities by id; recent list answers.

use moka::ops::compute::{CompResult, Op};
use patd_core::exchange::{last_used_due, ExchangeRecord};
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_store::{DynStore, Health, Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// How many PATs the cache holds at most.
const CAPACITY: u64 = 200_000;

/// How long a request waits for the refresh of an entry past its lifetime before the entry in
/// hand answers.
const STALE_WAIT: Duration = Duration::from_millis(250);

type Record = Option<Arc<ExchangeRecord>>;

/// A cached answer and when it was read from the database.
#[derive(Clone)]
struct Entry {
    record: Record,
    loaded: Instant,
}

pub struct PatCache {
    records: moka::future::Cache<PatId, Entry>,
    /// Where misses are read, together.
    reads: BatchReader,
    /// How long an entry is trusted without a write seen by this node.
    lifetime: Duration,
    /// What this node knows of the database: while it is out of reach, entries older than
    /// `lifetime` keep answering until `lifetime + grace`, when moka drops them.
    health: Arc<Health>,
    /// Bumped for a PAT by each invalidation of it, so a load that overlapped one is not kept.
    generations: moka::sync::Cache<PatId, u64>,
    /// Bumped by `invalidate_all`.
    epoch: AtomicU64,
    last_used: moka::sync::Cache<PatId, OffsetDateTime>,
    /// Source addresses new to a PAT whose use this node has already queued for writing: the
    /// cached record shows them only once it is read again.
    new_ips: moka::sync::Cache<(PatId, IpAddr), ()>,
    /// Bumped by every write to any PAT: list answers cached under an older value are dead.
    lists_epoch: AtomicU64,
}

/// How long a queued new address is remembered: longer than a record stays cached, so the
/// record read again after the write has it.
const NEW_IP_MEMORY: Duration = Duration::from_secs(600);

impl PatCache {
    /// `lifetime` bounds how long an entry is trusted without a write seen by this node, and
    /// `grace` how much longer it still answers while the database is out of reach.
    pub fn new(
        store: DynStore,
        lifetime: Duration,
        grace: Duration,
        health: Arc<Health>,
    ) -> PatCache {
        PatCache {
            reads: BatchReader::start(store),
            records: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime + grace)
                .build(),
            lifetime,
            health,
            generations: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live((lifetime + grace) * 2)
                .build(),
            epoch: AtomicU64::new(0),
            last_used: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            new_ips: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(NEW_IP_MEMORY)
                .build(),
            lists_epoch: AtomicU64::new(0),
        }
    }

    /// Whether this exchange from `ip`, an address not among the PAT's last five, is the one
    /// that writes it: one caller per PAT and address gets `true` until the record is read again.
    pub fn claim_new_ip(&self, id: &PatId, ip: IpAddr) -> bool {
        self.new_ips
            .entry((id.clone(), ip))
            .or_insert_with(|| ())
            .is_fresh()
    }

    fn generation(&self, id: &PatId) -> (u64, u64) {
        (
            self.epoch.load(Ordering::Acquire),
            self.generations.get(id).unwrap_or(0),
        )
    }

    /// The PAT's exchange record, from memory when possible. `None`: no such PAT. Concurrent
    /// loads of one PAT share a single database read. While the database is out of reach, an
    /// entry past its lifetime still answers until its grace runs out.
    pub async fn get(self: &Arc<Self>, id: &PatId) -> Result<Record, StoreError> {
        let Some(entry) = self.records.get(id).await else {
            crate::metrics::pat_cache(false);
            return self.load(id).await;
        };
        crate::metrics::pat_cache(true);
        if entry.loaded.elapsed() < self.lifetime || self.health.is_down() {
            return Ok(entry.record);
        }
        // Past its lifetime: read it again. A database that does not answer at once must not
        // hold up a PAT that was good a moment ago, so the read goes on in the background (where
        // a failure tells the store's health) and the entry in hand answers meanwhile.
        let refresh = tokio::spawn({
            let (cache, id) = (self.clone(), id.clone());
            async move { cache.load(&id).await }
        });
        match tokio::time::timeout(STALE_WAIT, refresh).await {
            Ok(Ok(Ok(record))) => Ok(record),
            Ok(Ok(Err(err))) if !err.is_unavailable() => Err(err),
            _ => Ok(entry.record),
        }
    }

    /// Reads the PAT into the cache, unless another caller did while this one waited for the
    /// entry; an entry past its lifetime stays when the database is out of reach.
    async fn load(&self, id: &PatId) -> Result<Record, StoreError> {
        // A load that overlapped a write to the PAT is not kept; the next attempt loads again.
        for _ in 0..3 {
            let before = self.generation(id);
            let computed = self
                .records
                .entry(id.clone())
                .and_try_compute_with(|current| async move {
                    let current = current.map(|entry| entry.into_value());
                    // Another caller refreshed it while this one waited for the entry.
                    if current
                        .as_ref()
                        .is_some_and(|entry| entry.loaded.elapsed() < self.lifetime)
                    {
                        return Ok(Op::Nop);
                    }
                    match self.reads.read(id).await {
                        Ok(_) if self.generation(id) != before => Ok(Op::Remove),
                        Ok(record) => Ok(Op::Put(Entry {
                            record,
                            loaded: Instant::now(),
                        })),
                        // Out of reach: the entry in hand keeps answering within its grace.
                        Err(err) if err.is_unavailable() && current.is_some() => Ok(Op::Nop),
                        Err(err) => Err(err),
                    }
                })
                .await?;
            match computed {
                CompResult::Inserted(entry)
                | CompResult::ReplacedWith(entry)
                | CompResult::Unchanged(entry) => return Ok(entry.into_value().record),
                CompResult::Removed(_) | CompResult::StillNone(_) => continue,
            }
        }
        // Writes keep racing the loads: read once more, keep nothing.
        self.reads.read(id).await
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

/// How many reads of misses may be under way at once: a few connections' worth, so that a burst
/// of cold exchanges neither waits behind one read nor takes every connection.
const CONCURRENT_READS: usize = 2;

/// The most PATs one read asks for.
const READ_BATCH: usize = 128;

/// A miss waiting for its read: the PAT's id and where its answer goes.
type Pending = (PatId, oneshot::Sender<Result<Record, StoreError>>);

/// Reads the records of cache misses in batches. A read takes every miss queued when it starts
/// (up to `READ_BATCH`); misses that arrive while the reads are under way go out together in the
/// next one. A lone miss is read at once, so batching adds no wait: it only shares the queries
/// when misses come faster than one query a miss could serve them.
struct BatchReader {
    queue: mpsc::UnboundedSender<Pending>,
}

impl BatchReader {
    fn start(store: DynStore) -> BatchReader {
        let (queue, pending) = mpsc::unbounded_channel();
        let pending = Arc::new(tokio::sync::Mutex::new(pending));
        for _ in 0..CONCURRENT_READS {
            tokio::spawn(read_batches(store.clone(), pending.clone()));
        }
        BatchReader { queue }
    }

    /// The PAT's record, or `None` when there is no such PAT.
    async fn read(&self, id: &PatId) -> Result<Record, StoreError> {
        let stopped = || StoreError::Unavailable("the PAT reader has stopped".to_owned());
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((id.clone(), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One reader: takes what is queued, reads it in one call, answers each waiter. Ends when the
/// cache is gone.
async fn read_batches(
    store: DynStore,
    pending: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(READ_BATCH);
    loop {
        let received = pending.lock().await.recv_many(&mut batch, READ_BATCH).await;
        if received == 0 {
            return;
        }
        let mut ids: Vec<PatId> = batch.iter().map(|(id, _)| id.clone()).collect();
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        crate::metrics::pat_read();
        match store.pats_for_exchange(&ids).await {
            Ok(records) => {
                let found: HashMap<PatId, Arc<ExchangeRecord>> = records
                    .into_iter()
                    .map(|record| (record.pat.id.clone(), Arc::new(record)))
                    .collect();
                for (id, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(err) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(err.duplicate()));
                }
            }
        }
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
/// server runs) show after at most the lifetime. Every distinct query string is a new entry, so
/// clients decide how many there are: entries are weighed by their bytes, and the cache holds
/// at most its budget of them.
pub struct ListCache {
    entries: moka::sync::Cache<ListKey, Arc<ListAnswer>>,
}

/// What an entry costs besides its body and query: the key, the `Arc`, moka's own bookkeeping.
const LIST_ENTRY_OVERHEAD: usize = 256;

impl ListCache {
    pub fn new(lifetime: Duration, budget_bytes: u64) -> ListCache {
        ListCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|key: &ListKey, answer: &Arc<ListAnswer>| {
                    let bytes = answer.body.len() + key.query.len() + LIST_ENTRY_OVERHEAD;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(lifetime)
                .build(),
        }
    }

    /// The bytes the entries weigh now (moka settles its counts first).
    pub fn weighed_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
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

#[cfg(test)]
mod list_cache_tests {
    use super::*;

    #[test]
    fn a_flood_of_unique_queries_stays_within_the_byte_budget() {
        let budget = 1024 * 1024;
        let cache = ListCache::new(Duration::from_secs(60), budget);
        let body = axum::body::Bytes::from(vec![b'x'; 100 * 1024]);
        for n in 0..2_000 {
            let key = ListKey {
                owner: None,
                include_managed: false,
                family: patd_core::expiry::Family::Classic,
                query: format!("filters=name ne \"{n}\""),
                epoch: 0,
            };
            let answer = Arc::new(ListAnswer {
                body: body.clone(),
                total: None,
            });
            cache.insert(key, answer);
        }
        // 2,000 answers of 100 KiB would be 200 MiB by count alone.
        assert!(cache.weighed_bytes() <= budget, "{}", cache.weighed_bytes());
    }
}
