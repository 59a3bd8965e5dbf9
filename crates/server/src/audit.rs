//! The audit trail as the server keeps it: events stamped with the request they came from, the
//! line each committed one gets in the log (and on stdout with `--audit-log stdout`), failed
//! exchanges folded into one row per client, address and minute, and the pruning of old events.

use patd_core::audit::{Actor, ActorType, AuditEvent, EventType, Target};
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::PatId;
use patd_core::pat::PatRecord;
use patd_store::DynStore;
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Whether every committed event is also written to stdout as a JSON line (`--audit-log stdout`).
static TO_STDOUT: AtomicBool = AtomicBool::new(false);

/// Turns on `--audit-log stdout` for this process.
pub fn log_to_stdout(on: bool) {
    TO_STDOUT.store(on, Ordering::Release);
}

/// The actor of a request made with an access token: the identity it was minted for.
pub(crate) fn identity_actor(identity: &Identity) -> Actor {
    Actor {
        kind: ActorType::Identity,
        id: Some(identity.id.as_str().to_owned()),
        name: Some(identity.name.as_str().to_owned()),
    }
}

/// A PAT as an event's target.
pub(crate) fn pat_target(pat: &PatRecord) -> Target {
    Target {
        kind: Target::PAT,
        id: pat.id.as_str().to_owned(),
        name: Some(pat.name.as_str().to_owned()),
        owner_id: Some(pat.owner_id.as_str().to_owned()),
    }
}

/// An event of `kind` now, stamped with the current request (its client address, user agent and
/// tracking id) and, for an identity acting through an access token, the PAT it came from.
pub(crate) fn event(kind: EventType, actor: Actor, target: Option<Target>) -> AuditEvent {
    let acting_as_identity = actor.kind == ActorType::Identity;
    let mut event = AuditEvent::new(
        kind,
        actor,
        target,
        OffsetDateTime::now_utc(),
        &mut rand::rng(),
    );
    crate::context::with_request(|context| {
        event.source_ip = context.client_ip.map(|ip| ip.to_string());
        event.user_agent = context
            .user_agent
            .as_ref()
            .and_then(|agent| agent.to_str().ok())
            .map(AuditEvent::bounded_user_agent);
        event.tracking_id = Some(context.tracking_id.clone());
        if acting_as_identity && context.via_web.get().is_some() {
            event.details.insert("via".to_owned(), "web".into());
        }
        if let (true, Some(pat)) = (acting_as_identity, context.client_id.get()) {
            event
                .details
                .insert("viaPat".to_owned(), pat.clone().into());
        }
    });
    event
}

/// An event of `kind` on a PAT, carrying the PAT as the API shows it for its notifications.
pub(crate) fn pat_event(
    kind: EventType,
    actor: Actor,
    pat: &PatRecord,
    owner_name: &str,
) -> AuditEvent {
    let owned = patd_store::OwnedPat {
        pat: pat.clone(),
        owner_name: owner_name.to_owned(),
    };
    let shown = crate::convert::get_response(&owned, patd_core::expiry::Family::NeverExpiresAware);
    let subject = serde_json::to_value(shown).unwrap_or(serde_json::Value::Null);
    event(kind, actor, Some(pat_target(pat))).with_subject(subject)
}

/// After the event's change is committed: an info line (ids only: names are client input) and,
/// with `--audit-log stdout`, the event as one JSON line for a SIEM.
pub(crate) fn committed(event: &AuditEvent) {
    let target = event.target.as_ref();
    let (kind, actor_id) = (event.kind.as_str(), event.actor.id.as_deref());
    let via_pat = event.details.get("viaPat").and_then(|pat| pat.as_str());
    let target_id = target.map(|target| target.id.as_str());
    let tracking_id = event.tracking_id.as_deref();
    // Failed exchanges are the attacker's to multiply: their rows are the record, not the log.
    if event.kind == EventType::AuthFailed {
        tracing::debug!(event = kind, target_id, "{kind}");
    } else {
        tracing::info!(
            event = kind,
            actor_type = event.actor.kind.as_str(),
            actor_id,
            via_pat,
            target_id,
            tracking_id,
            "{kind}"
        );
    }
    if TO_STDOUT.load(Ordering::Acquire) {
        if let Ok(line) = serde_json::to_string(&crate::convert::audit_event(event)) {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    }
}

/// Most (client, address, minute) rows waiting for the next flush; past it, failures are
/// counted only in the log's warning, so a flood of made-up clients cannot grow memory.
const MAX_PENDING: usize = 10_000;

/// How often failed exchanges are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Failed exchanges, folded per client id, source address and minute until they are written:
/// a flood of bad secrets costs one row per client and address a minute, however long it goes on.
#[derive(Default)]
pub struct AuthFailures {
    pending: Mutex<HashMap<String, (AuditEvent, i64)>>,
    dropped: AtomicU64,
}

impl AuthFailures {
    /// Counts one failed exchange of `client` (its record, when the id names a PAT) from `ip`.
    /// Ids that name no PAT fold into one row per address and minute.
    pub fn record(&self, client: Option<(&PatId, &ExchangeRecord)>, ip: Option<IpAddr>) {
        let minute = OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
        let ip_text = ip.map(|ip| ip.to_string());
        let key = format!(
            "auth.failed/{}/{}/{minute}",
            client.map_or("-", |(id, _)| id.as_str()),
            ip_text.as_deref().unwrap_or("-")
        );
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some((_, count)) = pending.get_mut(&key) {
            *count += 1;
            return;
        }
        if pending.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let target = client.map(|(_, record)| pat_target(&record.pat));
        let mut event = event(EventType::AuthFailed, Actor::anonymous(), target);
        event.outcome = patd_core::audit::Outcome::Failure;
        // The row keeps the time of its minute's first failure.
        event.source_ip = ip_text;
        if client.is_none() {
            event = event.detail("unknownClient", true);
        }
        pending.insert(key, (event, 1));
    }

    /// Writes what has been counted. On failure the counts are kept for the next attempt.
    pub async fn flush(&self, store: &DynStore) {
        let taken: Vec<(String, (AuditEvent, i64))> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return,
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "failed exchanges not audited: too many clients failing at once"
            );
        }
        if taken.is_empty() {
            return;
        }
        let aggregates: Vec<(AuditEvent, i64, String)> = taken
            .iter()
            .map(|(key, (event, count))| (event.clone(), *count, key.clone()))
            .collect();
        match store.record_auth_failures(&aggregates).await {
            Ok(()) => {
                for (event, count, _) in &aggregates {
                    let shown = event.clone().detail("count", *count);
                    committed(&shown);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed exchanges not audited yet; retrying");
                if let Ok(mut pending) = self.pending.lock() {
                    for (key, (event, count)) in taken {
                        let slot = pending.entry(key).or_insert((event, 0));
                        slot.1 += count;
                    }
                }
            }
        }
    }
}

/// Deletes, soon after start and every hour, the events older than `retention`.
pub(crate) fn prune_forever(store: DynStore, retention: Duration) {
    tokio::spawn(async move {
        let mut every_hour = crate::state::housekeeping(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            let before = OffsetDateTime::now_utc() - retention;
            match store.prune_audit_events(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old audit events pruned"),
                Err(err) => tracing::warn!(error = %err, "could not prune old audit events"),
            }
        }
    });
}
