//! Use cases that both the HTTP routes and the administration commands run.

use crate::{audit, convert};
use patd_core::audit::{Actor, EventType};
use patd_core::expiry::{LifetimePolicy, LifetimeStart};
use patd_core::identity::Identity;
use patd_core::pat::{plan_create, CreateInput};
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
