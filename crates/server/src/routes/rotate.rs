//! `POST /patd/v1/personal-access-tokens/{id}/rotate` and `…/self/rotate` (EXTENSIONS E5): a new
//! secret for a PAT, the old one kept for a grace period, earlier access tokens optionally ended.

use super::pats::{acting, modifiable, secret_answer};
use crate::error::ApiError;
use crate::extract::{Authenticated, OptionalJsonBody, PathId};
use crate::openapi::{Always, Bearer, Missing, TooLarge, TooMany};
use crate::state::AppState;
use crate::{audit, convert};
use axum::extract::State;
use axum::response::Response;
use patd_core::audit::EventType;
use patd_core::authz::Caller;
use patd_core::rotation::{plan_rotation, RotateInput};
use patd_proto::{CreatePersonalAccessTokenResponse, RotatePersonalAccessTokenRequest};
use patd_store::OwnedPat;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(rotate)).routes(routes!(rotate_self))
}

/// Rotate a personal access token's secret
///
/// The id, name, scope, owner and validity stay; the expiry stays unless given. During
/// `gracePeriodSeconds` the old secret still exchanges. With `revokeIssuedTokens`, every access
/// token minted from the PAT before now stops working. Rights: those of patch.
#[utoipa::path(
    post,
    path = "/patd/v1/personal-access-tokens/{id}/rotate",
    tag = "rotation",
    operation_id = "rotatePersonalAccessToken",
    params(("id" = String, Path, description = "The PAT's id")),
    request_body(content = Option<RotatePersonalAccessTokenRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The PAT with its new secret: shown this once",
            body = CreatePersonalAccessTokenResponse),
        Bearer, Missing, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn rotate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    PathId(raw_id): PathId,
    OptionalJsonBody(request): OptionalJsonBody<RotatePersonalAccessTokenRequest>,
) -> Result<Response, ApiError> {
    Ok(secret_answer(
        rotate_as(&state, &caller, &raw_id, request).await?,
    ))
}

/// Rotates the secret of the PAT `raw_id` names, as the API and the web page do.
pub(crate) async fn rotate_as(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    request: RotatePersonalAccessTokenRequest,
) -> Result<CreatePersonalAccessTokenResponse, ApiError> {
    let owned = modifiable(state, caller, raw_id).await?;
    rotate_owned(state, caller, owned, request).await
}

/// Rotate the secret of the PAT the calling token was minted from
///
/// Needs `patd:self-rotate` in that PAT's scope (`sp:scopes:all` does not imply it), and no
/// other right.
#[utoipa::path(
    post,
    path = "/patd/v1/personal-access-tokens/self/rotate",
    tag = "rotation",
    operation_id = "rotateOwnPersonalAccessToken",
    request_body(content = Option<RotatePersonalAccessTokenRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The PAT with its new secret: shown this once",
            body = CreatePersonalAccessTokenResponse),
        Bearer, Missing, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn rotate_self(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    OptionalJsonBody(request): OptionalJsonBody<RotatePersonalAccessTokenRequest>,
) -> Result<Response, ApiError> {
    caller.may_self_rotate()?;
    let own = caller.pat_id.as_ref().ok_or(ApiError::NotFound)?;
    let owned = state.store.pat(own).await?.ok_or(ApiError::NotFound)?;
    Ok(secret_answer(
        rotate_owned(&state, &caller, owned, request).await?,
    ))
}

async fn rotate_owned(
    state: &AppState,
    caller: &Caller,
    owned: OwnedPat,
    request: RotatePersonalAccessTokenRequest,
) -> Result<CreatePersonalAccessTokenResponse, ApiError> {
    let input = RotateInput {
        grace_period_seconds: request.grace_period_seconds,
        expiration_date: request.expiration_date,
        revoke_issued_tokens: request.revoke_issued_tokens.unwrap_or(false),
    };
    let (rotation, secret) = plan_rotation(
        &owned.pat,
        input,
        state.config.lifetime_policy,
        OffsetDateTime::now_utc(),
        &mut rand::rng(),
    )?;
    let rotated = rotation.applied_to(&owned.pat);
    // What changed, never a secret or a digest.
    let event = audit::pat_event(
        EventType::PatRotated,
        acting(state, caller).await?,
        &rotated,
        &owned.owner_name,
    )
    .detail("gracePeriodSeconds", rotation.grace_period_seconds)
    .detail("revokeIssuedTokens", rotation.revoke_issued_tokens);
    let stored = state.store.rotate_pat(&rotation, &event).await;
    // The old secret's grace, or its end, is seen by the next exchange here; other nodes hear
    // of it through the store's change feed.
    state.pats.invalidate(&rotation.id).await;
    if !stored? {
        return Err(ApiError::NotFound);
    }
    audit::committed(&event);
    Ok(convert::secret_response(
        &rotated,
        &secret,
        &owned.owner_name,
    ))
}
