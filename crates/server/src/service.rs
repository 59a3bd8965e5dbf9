//! Use cases that both the HTTP routes and the administration commands run.

use crate::state::AppState;
use crate::{audit, convert};
use patd_core::audit::{Actor, AuditEvent, EventType};
use patd_core::exchange::is_live;
use patd_core::expiry::{LifetimePolicy, LifetimeStart};
use patd_core::identity::Identity;
use patd_core::ids::PatId;
use patd_core::pat::{plan_create, CreateInput, PatRecord};
use patd_core::secret::Secret;
use patd_core::Rule;
use patd_proto::CreatePersonalAccessTokenResponse;
use patd_store::{Store, StoreError};
use time::OffsetDateTime;

/// A use case failed: a rule was broken, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Rule(#[from] Rule),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> ServiceError {
        match err {
            StoreError::LimitReached { max } => ServiceError::Rule(Rule::TooManyTokens { max }),
            other => ServiceError::Store(other),
        }
    }
}

/// Creates a PAT for `owner`, with its `pat.created` event by `actor`, and returns the one
/// response that shows its secret.
pub(crate) async fn create_pat(
    store: &dyn Store,
    owner: &Identity,
    input: CreateInput,
    limit: Option<u32>,
    policy: LifetimePolicy,
    now: OffsetDateTime,
    actor: Actor,
) -> Result<CreatePersonalAccessTokenResponse, ServiceError> {
    let input = input.within(policy, now);
    let (new_pat, secret) = plan_create(owner.id.clone(), input, now, &mut rand::rng())?;
    policy.check(
        LifetimeStart::Created(new_pat.record.created),
        new_pat.record.expiry,
    )?;
    let event = audit::pat_event(
        EventType::PatCreated,
        actor,
        &new_pat.record,
        owner.name.as_str(),
    );
    match store.insert_pat(&new_pat, limit, &event).await {
        Err(StoreError::NameTaken) => {
            Err(Rule::NameTaken(new_pat.record.name.as_str().to_owned()).into())
        }
        Err(other) => Err(other.into()),
        Ok(()) => {
            audit::committed(&event);
            Ok(convert::create_response(
                &new_pat,
                &secret,
                owner.name.as_str(),
            ))
        }
    }
}

/// What presenting a string as a PAT secret to be revoked came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// Not a patd secret (prefix, length, alphabet or checksum): nothing was looked up.
    NotASecret,
    /// A well-formed secret of no live PAT (unknown, deleted, expired, rotated out): nothing
    /// changed.
    NotLive,
    /// The live PAT it belongs to was deleted now.
    Revoked(PatId),
}

/// Deletes the PAT whose live secret `raw` is (its current secret, or its replaced one during
/// a grace period: whatever would still exchange), storing the event `event` builds for it (from
/// the PAT and its owner's name) in
/// the same transaction, and drops it from this node's cache (other nodes hear of it through
/// the store's change feed), so that its tokens fail at once everywhere. The PAT is found by
/// the secret's digest: a secret names no id.
pub(crate) async fn revoke_secret(
    state: &AppState,
    raw: &str,
    event: impl FnOnce(&PatRecord, &str) -> AuditEvent,
) -> Result<Revocation, StoreError> {
    let Ok(secret) = Secret::parse(raw) else {
        return Ok(Revocation::NotASecret);
    };
    // One indexed read by digest. Its timing says at most whether some PAT has this digest,
    // which only the holder of the secret, who can exchange it, could make use of.
    let Some(record) = state.store.pat_by_digest(&secret.digest()).await? else {
        return Ok(Revocation::NotLive);
    };
    if !is_live(&record, &secret, OffsetDateTime::now_utc()) {
        return Ok(Revocation::NotLive);
    }
    let id = record.pat.id.clone();
    let event = event(&record.pat, record.owner.name.as_str());
    let deleted = state.store.delete_pat(&id, &event).await;
    // Every token minted from it fails from now on, as after a delete through the API.
    state.pats.invalidate(&id).await;
    if !deleted? {
        // Deleted by someone else since it was read.
        return Ok(Revocation::NotLive);
    }
    audit::committed(&event);
    Ok(Revocation::Revoked(id))
}
