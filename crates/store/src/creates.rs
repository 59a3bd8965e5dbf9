//! Group commit for creates, on both backends: `insert_pat` calls that arrive while the writers
//! are busy share one transaction, so the database pays one commit (SQLite's locks and WAL
//! frames; PostgreSQL's WAL flush) and a fixed number of round trips for many PATs, not a few
//! for each.

use crate::queries::{insert_within_limit, notify, write_events, PatInsert};
use crate::sql::{insert_values, Dialect, RowAccess, Statement, Value, PATS_CHANNEL};
use crate::StoreError;
use patd_core::audit::AuditEvent;
use patd_core::pat::NewPat;
use sqlx::database::HasStatementCache;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// At most this many creates share a transaction: enough to absorb a burst, small enough that
/// the first of them is not kept waiting long (and eleven parameters a row stay far below
/// either backend's limit).
const MAX_BATCH: usize = 128;

/// Asked before each batch; an error fails the batch's creates without touching the database
/// (SQLite: the file is no longer the tenant's).
pub(crate) type Precheck = Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

struct Job {
    new_pat: NewPat,
    limit: Option<u32>,
    event: AuditEvent,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue in front of the writer tasks.
#[derive(Debug, Clone)]
pub(crate) struct Creates {
    jobs: mpsc::Sender<Job>,
}

impl Creates {
    /// Starts `DB::WRITERS` tasks that commit creates on `pool`; they end when every `Creates`
    /// is gone.
    pub(crate) fn start<DB>(pool: Pool<DB>, precheck: Option<Precheck>) -> Creates
    where
        DB: Dialect + HasStatementCache,
        DB::Row: RowAccess,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
        for<'a> &'a str: Encode<'a, DB> + Type<DB>,
        for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
        for<'a> i64: Encode<'a, DB> + Type<DB>,
        for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
        for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
        for<'a> bool: Encode<'a, DB> + Type<DB>,
    {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..DB::WRITERS {
            let writer = Writer {
                pool: pool.clone(),
                precheck: precheck.clone(),
                queue: queue.clone(),
            };
            tokio::spawn(writer.run());
        }
        Creates { jobs }
    }

    /// Answers once the PAT is committed, or with why it was not stored.
    pub(crate) async fn insert(&self, insert: PatInsert<'_>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            new_pat: insert.new_pat.clone(),
            limit: insert.limit,
            event: insert.event.clone(),
            reply,
        };
        // Both fail only when the tasks have stopped, which happens only as the runtime ends.
        if self.jobs.send(job).await.is_err() {
            return Err(StoreError::Backend(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(StoreError::Backend(sqlx::Error::PoolClosed)))
    }
}

/// One of the tasks that commit creates, and what it commits with.
struct Writer<DB: Database> {
    pool: Pool<DB>,
    precheck: Option<Precheck>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
}

impl<DB> Writer<DB>
where
    DB: Dialect + HasStatementCache,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    async fn run(self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // One writer waits on the queue at a time; the others are busy with their batches.
            let mut queue = self.queue.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            drop(queue);
            // Creates queued before the file went wrong are not written into it either.
            if let Some(Err(err)) = self.precheck.as_deref().map(|check| check()) {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Gone(err.to_string())));
                }
                continue;
            }
            if batch.len() > 1 {
                match self.in_one_transaction(&batch).await {
                    Ok(results) => {
                        for (job, result) in batch.drain(..).zip(results) {
                            // The caller may have gone away (its request was dropped); the
                            // PAT stays.
                            let _ = job.reply.send(result);
                        }
                        continue;
                    }
                    // The transaction as a whole failed and was rolled back: nothing from it is
                    // stored, so each create runs again on its own and gets its own answer.
                    Err(err) => {
                        tracing::warn!(error = %err, "group commit failed; retrying singly")
                    }
                }
            }
            for job in batch.drain(..) {
                let result = self.alone(&job).await;
                let _ = job.reply.send(result);
            }
        }
    }

    /// Begins a writing transaction that keeps every other writer of `owners`' PATs out until
    /// it ends: SQLite's `BEGIN IMMEDIATE` takes the one write lock; on PostgreSQL the owners'
    /// identity rows are locked, in id order so that two batches never wait on each other.
    /// `owners` is distinct and in order.
    async fn begin_for(
        &self,
        owners: &[&str],
    ) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        let mut transaction = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if !DB::LOCK_ROW.is_empty() && !owners.is_empty() {
            let mut statement = Statement::<DB>::new("SELECT id FROM identities WHERE id IN ");
            statement.bind_tuple(owners.iter().map(|owner| Value::Text((*owner).to_owned())));
            statement.push(" ORDER BY id").push(DB::LOCK_ROW);
            statement.query().execute(&mut *transaction).await?;
        }
        Ok(transaction)
    }

    /// One create in its own transaction, with its event and its announcement.
    async fn alone(&self, job: &Job) -> Result<(), StoreError> {
        let pat = &job.new_pat.record;
        let mut transaction = self.begin_for(&[pat.owner_id.as_str()]).await?;
        let insert = PatInsert {
            new_pat: &job.new_pat,
            limit: job.limit,
            event: &job.event,
        };
        insert_within_limit::<DB>(&mut transaction, insert).await?;
        notify::<DB>(&mut transaction, PATS_CHANNEL, pat.id.as_str()).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Decides every create of `batch` from the owners' counts and taken names, read under the
    /// owners' locks, then inserts the admitted ones with one statement: a fixed number of round
    /// trips for the batch.
    async fn in_one_transaction(
        &self,
        batch: &[Job],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let owners: Vec<&str> = batch
            .iter()
            .map(|job| job.new_pat.record.owner_id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut transaction = self.begin_for(&owners).await?;
        let limited: HashSet<&str> = batch
            .iter()
            .filter(|job| job.limit.is_some() && !job.new_pat.record.managed)
            .map(|job| job.new_pat.record.owner_id.as_str())
            .collect();
        let mut counts = HashMap::new();
        if !limited.is_empty() {
            let mut statement = Statement::<DB>::new(
                "SELECT owner_id, COUNT(*) AS n FROM pats WHERE managed = FALSE AND owner_id IN ",
            );
            statement.bind_tuple(limited.iter().map(|owner| Value::Text((*owner).to_owned())));
            statement.push(" GROUP BY owner_id");
            for row in statement.query().fetch_all(&mut *transaction).await? {
                counts.insert(row.text("owner_id")?, row.int("n")?);
            }
        }
        // Owners and names apart, which both backends answer from the (owner_id, name) index; the
        // pairs it returns beyond the batch's own are never asked about.
        let names: HashSet<&str> = batch
            .iter()
            .map(|job| job.new_pat.record.name.as_str())
            .collect();
        let mut statement =
            Statement::<DB>::new("SELECT owner_id, name FROM pats WHERE owner_id IN ");
        statement.bind_tuple(owners.iter().map(|owner| Value::Text((*owner).to_owned())));
        statement.push(" AND name IN ");
        statement.bind_tuple(names.iter().map(|name| Value::Text((*name).to_owned())));
        let mut taken = HashSet::new();
        for row in statement.query().fetch_all(&mut *transaction).await? {
            taken.insert((row.text("owner_id")?, row.text("name")?));
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
            let statement = insert_values::<DB>(admitted.iter().copied());
            // Not prepared for keeps: each size of batch is a statement of its own.
            let done = statement
                .query()
                .persistent(false)
                .execute(&mut *transaction)
                .await?;
            if usize::try_from(DB::rows_affected(&done)).ok() != Some(admitted.len()) {
                return Err(StoreError::Backend(sqlx::Error::Protocol(
                    "a grouped insert stored an unexpected number of rows".to_owned(),
                )));
            }
            let events: Vec<AuditEvent> = batch
                .iter()
                .zip(&results)
                .filter(|(_, result)| result.is_ok())
                .map(|(job, _)| job.event.clone())
                .collect();
            write_events::<DB>(&mut transaction, &events).await?;
            Self::announce(&mut transaction, &admitted).await?;
        }
        transaction.commit().await?;
        Ok(results)
    }

    /// Tells the other nodes of every PAT stored, in one statement, delivered at commit.
    async fn announce(
        connection: &mut DB::Connection,
        admitted: &[&NewPat],
    ) -> Result<(), StoreError> {
        let Some([before, after]) = DB::NOTIFY_EACH else {
            return Ok(());
        };
        let mut statement = Statement::<DB>::new(before);
        statement.bind_text(PATS_CHANNEL).push(after);
        for (index, new_pat) in admitted.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.bind_tuple([Value::Text(new_pat.record.id.as_str().to_owned())]);
        }
        statement.push(") AS v (id)");
        statement.query().execute(connection).await?;
        Ok(())
    }
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
