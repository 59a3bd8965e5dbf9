//! Group commit for creates: `insert_pat` calls that arrive while the writer is busy share one
//! transaction, so SQLite's single writer pays one commit (its locks and WAL frames) and a fixed
//! number of round trips to its connection for many PATs, not a few for each.

use super::file::DatabaseFile;
use crate::queries::{insert_within_limit, write_events, PatInsert};
use crate::sql::insert_values;
use crate::StoreError;
use patd_core::audit::AuditEvent;
use patd_core::pat::NewPat;
use sqlx::sqlite::{Sqlite, SqlitePool};
use sqlx::{QueryBuilder, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// At most this many creates share a transaction: enough to absorb a burst, small enough that
/// the first of them is not kept waiting long (and eleven parameters a row stay far below
/// SQLite's limit).
const MAX_BATCH: usize = 128;

struct Job {
    new_pat: NewPat,
    limit: Option<u32>,
    event: AuditEvent,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue in front of the writer task.
#[derive(Debug, Clone)]
pub(super) struct Creates {
    jobs: mpsc::Sender<Job>,
}

impl Creates {
    /// Starts the task that commits creates on `writer`; it ends when every `Creates` is gone.
    pub(super) fn start(writer: SqlitePool, file: Option<Arc<DatabaseFile>>) -> Creates {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, file, queue));
        Creates { jobs }
    }

    /// Answers once the PAT is committed, or with why it was not stored.
    pub(super) async fn insert(&self, insert: PatInsert<'_>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            new_pat: insert.new_pat.clone(),
            limit: insert.limit,
            event: insert.event.clone(),
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

async fn run(writer: SqlitePool, file: Option<Arc<DatabaseFile>>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Creates queued before the file went wrong are not written into it either.
        if let Some(Err(err)) = file.as_deref().map(DatabaseFile::check) {
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(StoreError::Gone(err.to_string())));
            }
            continue;
        }
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
            let result = alone(&writer, &job).await;
            let _ = job.reply.send(result);
        }
    }
}

/// One create in its own transaction, with its event.
async fn alone(writer: &SqlitePool, job: &Job) -> Result<(), StoreError> {
    let mut transaction = writer.begin().await?;
    let insert = PatInsert {
        new_pat: &job.new_pat,
        limit: job.limit,
        event: &job.event,
    };
    insert_within_limit::<Sqlite>(&mut transaction, insert).await?;
    transaction.commit().await?;
    Ok(())
}

/// Decides every create of `batch` from the owners' counts and taken names, read under the write
/// lock, then inserts the admitted ones with one statement: five round trips for the batch.
async fn in_one_transaction(
    writer: &SqlitePool,
    batch: &[Job],
) -> Result<Vec<Result<(), StoreError>>, sqlx::Error> {
    // IMMEDIATE takes the write lock first, so nothing changes between the reads and the insert.
    let mut transaction = writer.begin_with("BEGIN IMMEDIATE").await?;
    let limited: HashSet<&str> = batch
        .iter()
        .filter(|job| job.limit.is_some() && !job.new_pat.record.managed)
        .map(|job| job.new_pat.record.owner_id.as_str())
        .collect();
    let mut counts = HashMap::new();
    if !limited.is_empty() {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT owner_id, COUNT(*) FROM pats WHERE managed = 0 AND owner_id IN (",
        );
        let mut owners = query.separated(", ");
        for owner in &limited {
            owners.push_bind(*owner);
        }
        query.push(") GROUP BY owner_id");
        for row in query.build().fetch_all(&mut *transaction).await? {
            counts.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
    }
    let mut query =
        QueryBuilder::<Sqlite>::new("SELECT owner_id, name FROM pats WHERE (owner_id, name) IN (");
    query.push_values(batch, |mut pair, job| {
        pair.push_bind(job.new_pat.record.owner_id.as_str())
            .push_bind(job.new_pat.record.name.as_str());
    });
    query.push(")");
    let mut taken = HashSet::new();
    for row in query.build().fetch_all(&mut *transaction).await? {
        taken.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
    }
    let requests: Vec<(&NewPat, Option<u32>)> =
        batch.iter().map(|job| (&job.new_pat, job.limit)).collect();
    let results = decide(&requests, counts, taken);
    let admitted: Vec<&NewPat> = requests
        .iter()
        .zip(&results)
        .filter_map(|((new_pat, _), result)| result.is_ok().then_some(*new_pat))
        .collect();
    if !admitted.is_empty() {
        let statement = insert_values::<Sqlite>(admitted.iter().copied());
        let done = statement
            .query()
            .persistent(false)
            .execute(&mut *transaction)
            .await?;
        if usize::try_from(done.rows_affected()).ok() != Some(admitted.len()) {
            return Err(sqlx::Error::Protocol(
                "a grouped insert stored an unexpected number of rows".to_owned(),
            ));
        }
        let events: Vec<AuditEvent> = batch
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(job, _)| job.event.clone())
            .collect();
        if let Err(err) = write_events::<Sqlite>(&mut transaction, &events).await {
            return Err(sqlx::Error::Protocol(format!(
                "storing the creates' events: {err}"
            )));
        }
    }
    transaction.commit().await?;
    Ok(results)
}

/// The answer each create would get if the creates ran one after another in `requests` order,
/// as `insert_limited` decides one: the owner's limit first (managed PATs and creates without a
/// limit pass), then the name. `counts` holds each limited owner's non-managed PATs, `taken`
/// the (owner, name) pairs already stored; names compare byte for byte, as the column does.
fn decide(
    requests: &[(&NewPat, Option<u32>)],
    mut counts: HashMap<String, i64>,
    mut taken: HashSet<(String, String)>,
) -> Vec<Result<(), StoreError>> {
    requests
        .iter()
        .map(|(new_pat, limit)| {
            let pat = &new_pat.record;
            let owner = pat.owner_id.as_str();
            let count = counts.get(owner).copied().unwrap_or(0);
            if let (Some(max), false) = (limit, pat.managed) {
                if count >= i64::from(*max) {
                    return Err(StoreError::LimitReached { max: *max });
                }
            }
            if !taken.insert((owner.to_owned(), pat.name.as_str().to_owned())) {
                return Err(StoreError::NameTaken);
            }
            if !pat.managed {
                *counts.entry(owner.to_owned()).or_insert(0) += 1;
            }
            Ok(())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use patd_core::expiry::ExpiryRequest;
    use patd_core::ids::IdentityId;
    use patd_core::pat::{plan_create, CreateInput};
    use time::macros::datetime;

    fn new_pat(owner: &IdentityId, name: &str, managed: bool) -> NewPat {
        let input = CreateInput {
            name: Some(name.to_owned()),
            scope: None,
            validity_seconds: None,
            expiry: ExpiryRequest::Admin(patd_core::expiry::AdminExpiry::Never),
            managed,
        };
        let mut rng = rand::rng();
        plan_create(
            owner.clone(),
            input,
            datetime!(2026-01-01 0:00 UTC),
            &mut rng,
        )
        .unwrap()
        .0
    }

    fn outcome(result: &Result<(), StoreError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(StoreError::NameTaken) => "name",
            Err(StoreError::LimitReached { .. }) => "limit",
            Err(_) => "other",
        }
    }

    #[test]
    fn a_batch_is_decided_as_if_its_creates_ran_in_order() {
        let mut rng = rand::rng();
        let a = IdentityId::generate(&mut rng);
        let b = IdentityId::generate(&mut rng);
        let pats = [
            new_pat(&a, "one", false),    // a has 1 of 3: ok (2)
            new_pat(&a, "one", false),    // same name in the batch
            new_pat(&a, "stored", false), // name already stored
            new_pat(&a, "two", false),    // ok (3)
            new_pat(&a, "three", false),  // the limit
            new_pat(&a, "one", false),    // the limit comes before the name
            new_pat(&a, "managed", true), // managed PATs pass the limit
            new_pat(&b, "one", false),    // another owner, no limit given
            new_pat(&b, "two", false),    // b with a limit of 2: b now has 2
        ];
        let limits = [
            Some(3),
            Some(3),
            Some(3),
            Some(3),
            Some(3),
            Some(3),
            Some(3),
            None,
            Some(2),
        ];
        let requests: Vec<_> = pats.iter().zip(limits).collect();
        let counts = HashMap::from([(a.as_str().to_owned(), 1), (b.as_str().to_owned(), 1)]);
        let taken = HashSet::from([(a.as_str().to_owned(), "stored".to_owned())]);
        let results = decide(&requests, counts, taken);
        let got: Vec<_> = results.iter().map(outcome).collect();
        assert_eq!(
            got,
            ["ok", "name", "name", "ok", "limit", "limit", "ok", "ok", "limit"]
        );
    }
}
