//! Writes `lastUsed` off the request path: exchanges queue the (rare) due writes, and one task
//! drains the queue in batches.

use patd_core::exchange::LAST_USED_INTERVAL;
use patd_core::ids::PatId;
use patd_store::DynStore;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Most writes taken from the queue at once.
const BATCH: usize = 256;

/// The sending side, held by the app state.
#[derive(Clone)]
pub struct LastUsedWriter {
    queue: mpsc::UnboundedSender<(PatId, OffsetDateTime)>,
}

impl LastUsedWriter {
    /// Starts the writer task on `store`.
    pub fn start(store: DynStore, pats: std::sync::Arc<crate::cache::PatCache>) -> LastUsedWriter {
        let (queue, mut pending) = mpsc::unbounded_channel::<(PatId, OffsetDateTime)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            // Ends when every sender is gone, after writing what was queued.
            while pending.recv_many(&mut batch, BATCH).await > 0 {
                for (id, at) in batch.drain(..) {
                    if let Err(err) = store
                        .record_last_used(&id, at, at - LAST_USED_INTERVAL)
                        .await
                    {
                        tracing::warn!(error = %err, pat_id = %id, "could not record lastUsed");
                    }
                }
                // Lists show lastUsed.
                pats.lists_changed();
            }
        });
        LastUsedWriter { queue }
    }

    /// Queues a write; never waits.
    pub fn record(&self, id: PatId, at: OffsetDateTime) {
        if self.queue.send((id, at)).is_err() {
            tracing::warn!("the lastUsed writer has stopped");
        }
    }
}
