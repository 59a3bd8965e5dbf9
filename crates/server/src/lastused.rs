//! Writes `lastUsed` off the request path: exchanges queue the (rare) due writes, and one task
//! writes each batch in one statement, announced to the other nodes. Lists on this node wait for
//! the writes queued before them, so a list sent after an exchange's answer shows its use, and
//! shutdown waits for the queue to drain.

use crate::cache::PatCache;
use patd_core::audit::AuditEvent;
use patd_core::exchange::LAST_USED_INTERVAL;
use patd_core::ids::PatId;
use patd_store::{DynStore, LastUse, UseEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

/// Most writes in one statement.
const BATCH: usize = 256;

/// Retries of a failed batch back off up to this long between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The sending side, held by the app state.
#[derive(Clone)]
pub struct LastUsedWriter {
    queue: Arc<Mutex<Queue>>,
    /// The sequence number of the last write queued.
    queued: Arc<AtomicU64>,
    /// The sequence number up to which every queued write is stored (or given up).
    stored: watch::Receiver<u64>,
}

/// The channel and the numbering of its writes, kept under one lock so that sequence numbers
/// are in queue order.
struct Queue {
    sender: mpsc::UnboundedSender<(u64, Use)>,
    next: u64,
}

/// One use of a PAT that must be written: its daily `lastUsed`, a source address not among its
/// last five, or both, with its `pat.used` event.
#[derive(Debug, Clone)]
pub struct Use {
    pub id: PatId,
    pub at: OffsetDateTime,
    /// `lastUsed` is due (at most once a day per PAT).
    pub daily: bool,
    /// The address, when it is not among the PAT's last five.
    pub new_ip: Option<String>,
    pub event: AuditEvent,
}

impl LastUsedWriter {
    /// Starts the writer task on `store`.
    pub fn start(store: DynStore, pats: Arc<PatCache>) -> LastUsedWriter {
        let (sender, pending) = mpsc::unbounded_channel();
        let (stored_sender, stored) = watch::channel(0);
        tokio::spawn(write_batches(store, pats, pending, stored_sender));
        LastUsedWriter {
            queue: Arc::new(Mutex::new(Queue { sender, next: 0 })),
            queued: Arc::new(AtomicU64::new(0)),
            stored,
        }
    }

    /// Queues a write; never waits for the database.
    pub fn record(&self, used: Use) {
        let Ok(mut queue) = self.queue.lock() else {
            tracing::warn!("the lastUsed queue is poisoned");
            return;
        };
        queue.next += 1;
        let sequence = queue.next;
        if queue.sender.send((sequence, used)).is_err() {
            tracing::warn!("the lastUsed writer has stopped");
            return;
        }
        self.queued.store(sequence, Ordering::Release);
    }

    /// How many queued writes are not stored yet.
    pub fn pending(&self) -> u64 {
        self.queued
            .load(Ordering::Acquire)
            .saturating_sub(*self.stored.borrow())
    }

    /// Waits, until `deadline` at the latest, for every write queued before this call to be
    /// stored. Returns whether they all were.
    pub async fn settled(&self, deadline: tokio::time::Instant) -> bool {
        let target = self.queued.load(Ordering::Acquire);
        if *self.stored.borrow() >= target {
            return true;
        }
        let mut stored = self.stored.clone();
        tokio::time::timeout_at(deadline, stored.wait_for(|done| *done >= target))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

/// One write per PAT: the latest use's time, `lastUsed` if any use was due, the new addresses
/// (newest first; the store puts them in front of the stored ones), and every use's event with
/// what it found due (the store writes those that happened).
fn merge(uses: impl Iterator<Item = Use>) -> Vec<LastUse> {
    let mut merged: HashMap<PatId, LastUse> = HashMap::new();
    for used in uses {
        let last_use = merged.entry(used.id.clone()).or_insert_with(|| LastUse {
            id: used.id.clone(),
            at: used.at,
            not_after: used.at,
            daily: false,
            new_ips: Vec::new(),
            events: Vec::new(),
        });
        last_use.at = last_use.at.max(used.at);
        last_use.daily |= used.daily;
        if let Some(ip) = &used.new_ip {
            last_use.new_ips.retain(|seen| seen != ip);
            last_use.new_ips.insert(0, ip.clone());
        }
        last_use.events.push(UseEvent {
            daily: used.daily,
            new_ip: used.new_ip,
            event: used.event,
        });
    }
    merged
        .into_values()
        .map(|mut last_use| {
            last_use.not_after = last_use.at - LAST_USED_INTERVAL;
            last_use
        })
        .collect()
}

async fn write_batches(
    store: DynStore,
    pats: Arc<PatCache>,
    mut pending: mpsc::UnboundedReceiver<(u64, Use)>,
    stored: watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // Ends when every sender is gone, after writing what was queued.
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let last = batch
            .iter()
            .map(|(sequence, ..)| *sequence)
            .max()
            .unwrap_or(0);
        let uses = merge(batch.drain(..).map(|(_, used)| used));
        let mut delay = Duration::from_millis(100);
        loop {
            match store.record_last_used(&uses).await {
                Ok(written) => {
                    written.iter().for_each(crate::audit::committed);
                    break;
                }
                // The database is back soon, or this node stops: try again until then. Shutdown
                // bounds how long it waits for the queue.
                Err(err) if err.is_unavailable() => {
                    tracing::warn!(error = %err, pats = uses.len(), "lastUsed not written yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(err) => {
                    tracing::warn!(error = %err, pats = uses.len(), "could not record lastUsed");
                    break;
                }
            }
        }
        // Lists show lastUsed.
        pats.lists_changed();
        stored.send_replace(last);
    }
}
