//! The PAT operations: list, create, patch, delete. Each handler authorizes through
//! `patd_core::authz`, applies the domain's rules and talks to the store.

use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody, PatchBody, PathId, QueryParams};
use crate::service;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Extension, Json, Router};
use patd_core::authz::OwnerParam;
use patd_core::expiry::{ExpiryRequest, Family};
use patd_core::ids::PatId;
use patd_core::pat::CreateInput;
use patd_core::patch::apply_patch;
use patd_core::Rule;
use patd_proto::{
    CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse,
    GetPersonalAccessTokenResponse,
};
use patd_store::{OwnedPat, PatQuery, StoreError};
use serde::Deserialize;
use time::OffsetDateTime;

/// The routes of one prefix; the family rides along as an extension.
pub(super) fn routes(prefix: &str, family: Family) -> Router<AppState> {
    Router::new()
        .route(prefix, get(list).post(create))
        .route(
            &format!("{prefix}/{{id}}"),
            patch(patch_pat).delete(delete_pat),
        )
        .layer(Extension(family))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(rename = "owner-id")]
    owner_id: Option<String>,
    filters: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<Vec<GetPersonalAccessTokenResponse>>, ApiError> {
    let owner = OwnerParam::parse(params.owner_id.as_deref())?;
    let access = caller.may_list(owner)?;
    if params.filters.is_some() {
        return Err(ApiError::Syntax("filters are not supported yet".to_owned()));
    }
    let query = PatQuery {
        owner: access.owner,
        include_managed: access.include_managed,
    };
    let pats = state.store.list_pats(&query).await?;
    Ok(Json(
        pats.iter()
            .map(|owned| convert::get_response(owned, family))
            .collect(),
    ))
}

async fn create(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreatePersonalAccessTokenRequest>,
) -> Result<Json<CreatePersonalAccessTokenResponse>, ApiError> {
    caller.may_create()?;
    let owner = state
        .store
        .identity(&caller.identity_id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let input = CreateInput {
        name: request.name,
        scope: request.scope,
        validity_seconds: request.access_token_validity_seconds,
        expiry: ExpiryRequest::Api {
            family,
            date: request.expiration_date,
            never_expires_acknowledged: request.user_aware_token_never_expires,
        },
        managed: false,
    };
    let limit = Some(state.config.max_tokens_per_owner);
    let created = service::create_pat(
        state.store.as_ref(),
        &owner,
        input,
        limit,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(created))
}

/// Finds a PAT the caller may change: 403 without any manage right, 404 if it cannot be seen.
async fn modifiable(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    raw_id: &str,
) -> Result<OwnedPat, ApiError> {
    caller.may_manage()?;
    let id = PatId::parse(raw_id).ok_or(ApiError::NotFound)?;
    let owned = state.store.pat(&id).await?.ok_or(ApiError::NotFound)?;
    caller.may_modify(&owned.pat)?;
    Ok(owned)
}

async fn patch_pat(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    PathId(raw_id): PathId,
    PatchBody(operations): PatchBody,
) -> Result<Json<GetPersonalAccessTokenResponse>, ApiError> {
    let owned = modifiable(&state, &caller, &raw_id).await?;
    let updated = apply_patch(&owned.pat, family, &operations, OffsetDateTime::now_utc())?;
    match state.store.update_pat(&updated).await {
        Err(StoreError::NameTaken) => {
            return Err(Rule::NameTaken(updated.name.as_str().to_owned()).into())
        }
        other => other?,
    }
    let owned = OwnedPat {
        pat: updated,
        owner_name: owned.owner_name,
    };
    Ok(Json(convert::get_response(&owned, family)))
}

async fn delete_pat(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    PathId(raw_id): PathId,
) -> Result<StatusCode, ApiError> {
    let owned = modifiable(&state, &caller, &raw_id).await?;
    if state.store.delete_pat(&owned.pat.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
