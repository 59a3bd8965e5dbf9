//! Group commit for creates: `insert_pat` calls that arrive while the writer is busy share one
//! transaction, so SQLite's single writer pays one commit (its locks and WAL frames) for many.

use super::insert_limited;
use crate::sql::is_unique_violation;
use crate::StoreError;
use patd_core::pat::NewPat;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

/// At most this many creates share a transaction: enough to absorb a burst, small enough that
/// the first of them is not kept waiting long.
const MAX_BATCH: usize = 128;

struct Job {
    new_pat: NewPat,
    limit: Option<u32>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue in front of the writer task.
#[derive(Debug, Clone)]
pub(super) struct Creates {
    jobs: mpsc::Sender<Job>,
}

impl Creates {
    /// Starts the task that commits creates on `writer`; it ends when every `Creates` is gone.
    pub(super) fn start(writer: SqlitePool) -> Creates {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, queue));
        Creates { jobs }
    }

    /// Answers once the PAT is committed, or with why it was not stored.
    pub(super) async fn insert(
        &self,
        new_pat: &NewPat,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            new_pat: new_pat.clone(),
            limit,
            reply,
        };
        // Both fail only when the task has stopped, which happens only as the runtime ends.
        if self.jobs.send(job).await.is_err() {
            return Err(StoreError::Backend(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(StoreError::Backend(sqlx::Error::PoolClosed)))
    }
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() > 1 {
            match in_one_transaction(&writer, &batch).await {
                Ok(results) => {
                    for (job, result) in batch.drain(..).zip(results) {
                        // The caller may have gone away (its request was dropped); the PAT stays.
                        let _ = job.reply.send(result);
                    }
                    continue;
                }
                // The transaction as a whole failed and was rolled back: nothing from it is
                // stored, so each create runs again on its own and gets its own answer.
                Err(err) => tracing::warn!(error = %err, "group commit failed; retrying singly"),
            }
        }
        for job in batch.drain(..) {
            let result = insert_limited(&job.new_pat, job.limit)
                .execute(&writer)
                .await
                .map_err(StoreError::from)
                .and_then(|done| outcome(done.rows_affected(), job.limit));
            let _ = job.reply.send(named(result));
        }
    }
}

/// Runs every create of `batch` in one transaction. A name conflict fails only its own statement
/// (SQLite keeps the transaction); any other error abandons the whole transaction.
async fn in_one_transaction(
    writer: &SqlitePool,
    batch: &[Job],
) -> Result<Vec<Result<(), StoreError>>, sqlx::Error> {
    let mut transaction = writer.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match insert_limited(&job.new_pat, job.limit)
            .execute(&mut *transaction)
            .await
        {
            Err(err) if is_unique_violation(&err) => Err(StoreError::NameTaken),
            Err(err) => return Err(err),
            Ok(done) => outcome(done.rows_affected(), job.limit),
        };
        results.push(result);
    }
    transaction.commit().await?;
    Ok(results)
}

/// No row inserted means the owner's limit stopped it.
fn outcome(rows_affected: u64, limit: Option<u32>) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::LimitReached {
            max: limit.unwrap_or_default(),
        });
    }
    Ok(())
}

/// A unique violation is a name conflict.
fn named(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::Backend(err)) if is_unique_violation(&err) => Err(StoreError::NameTaken),
        other => other,
    }
}
