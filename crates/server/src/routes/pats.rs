//! The PAT operations: list, create, patch, delete, bulk update. Each handler authorizes through
//! `patd_core::authz`, applies the domain's rules and talks to the store.

use super::{under_prefix, PAT_PREFIXES};
use crate::cache::{ListAnswer, ListKey};
use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody, PatchBody, PathId, QueryParams};
use crate::openapi::{Always, Bearer, Missing, TooLarge, TooMany};
use crate::service;
use crate::state::AppState;
use crate::{audit, convert};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use patd_core::audit::EventType;
use patd_core::authz::OwnerParam;
use patd_core::bulk;
use patd_core::expiry::{ExpiryRequest, Family};
use patd_core::ids::PatId;
use patd_core::listing::{ListParams, ListRequest};
use patd_core::pat::CreateInput;
use patd_core::patch::apply_patch;
use patd_core::rights::Right;
use patd_core::scope::Scope;
use patd_core::Rule;
use patd_proto::{
    BulkUpdateRequest, CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse,
    GetPersonalAccessTokenResponse, JsonPatchOperation,
};
use patd_store::{OwnedPat, PatQuery, StoreError};
use serde::Deserialize;
use std::sync::Arc;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The PAT routes of every prefix, and the bulk update.
pub(super) fn routes(mut api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    for prefix in PAT_PREFIXES {
        api = under_prefix(api, prefix, routes!(list, create));
        api = under_prefix(api, prefix, routes!(patch_pat, delete_pat));
    }
    api.routes(routes!(bulk_update))
}

/// The list query; each field is a parameter in the document.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// 'me', an identity id, or absent for the whole tenant
    #[serde(rename = "owner-id")]
    owner_id: Option<String>,
    /// SailPoint filter grammar on lastUsed, created, expirationDate, name, managed
    filters: Option<String>,
    /// name, created, lastUsed, expirationDate; '-' for descending
    sorters: Option<String>,
    /// 0 to 250, default 250
    // Read as text so that a bad value gets the contract's 400, not the framework's.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 250)]
    limit: Option<String>,
    /// default 0
    #[param(value_type = Option<i64>, minimum = 0)]
    offset: Option<String>,
    /// true: the total in X-Total-Count
    #[param(value_type = Option<bool>)]
    count: Option<String>,
}

/// List personal access tokens
#[utoipa::path(
    get,
    path = "",
    operation_id = "listPersonalAccessTokens",
    params(ListQuery),
    responses(
        (status = 200, description = "The PATs", body = [GetPersonalAccessTokenResponse],
            headers(("X-Total-Count" = i64, description = "With count=true: how many match"))),
        Bearer, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    RawQuery(raw_query): RawQuery,
    QueryParams(params): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let owner = OwnerParam::parse(params.owner_id.as_deref())?;
    let (access, request) = authorize_list(
        &caller,
        owner,
        &ListParams {
            filters: params.filters.as_deref(),
            sorters: params.sorters.as_deref(),
            limit: params.limit.as_deref(),
            offset: params.offset.as_deref(),
            count: params.count.as_deref(),
        },
    )?;
    let deadline = settled(&state).await;
    // Authorized above; the key holds everything the answer depends on.
    let key = ListKey {
        owner: access.owner.clone(),
        include_managed: access.include_managed,
        family,
        query: raw_query.unwrap_or_default(),
        epoch: state.pats.lists_epoch(),
    };
    let answer = match state.lists.get(&key) {
        Some(answer) => answer,
        None => {
            let query = PatQuery {
                owner: access.owner,
                include_managed: access.include_managed,
                request,
            };
            let page = list_within(&state, &query, deadline).await?;
            let body: Vec<GetPersonalAccessTokenResponse> = page
                .items
                .iter()
                .map(|owned| convert::get_response(owned, family))
                .collect();
            let bytes = serde_json::to_vec(&body).map_err(|err| ApiError::Internal(err.into()))?;
            let answer = Arc::new(ListAnswer {
                body: bytes.into(),
                total: page.total,
            });
            state.lists.insert(key, answer.clone());
            answer
        }
    };
    let mut response = (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer.body.clone(),
    )
        .into_response();
    if let Some(total) = answer.total {
        response
            .headers_mut()
            .insert("x-total-count", HeaderValue::from(total));
    }
    Ok(response)
}

/// Who may list what, and the list asked for.
fn authorize_list(
    caller: &patd_core::authz::Caller,
    owner: OwnerParam,
    params: &ListParams<'_>,
) -> Result<(patd_core::authz::ListAccess, ListRequest), ApiError> {
    let access = caller.may_list(owner)?;
    Ok((access, ListRequest::parse(params)?))
}

/// Read-your-writes: a use this node answered before a list must show in it. Such writes are
/// rare (one per PAT per day), so the wait almost never happens. The wait and the read share the
/// deadline returned, so a database that does not answer costs one timeout, not two.
async fn settled(state: &AppState) -> tokio::time::Instant {
    let deadline = tokio::time::Instant::now() + state.config.database_timeout;
    state.last_used.settled(deadline).await;
    deadline
}

async fn list_within(
    state: &AppState,
    query: &PatQuery,
    deadline: tokio::time::Instant,
) -> Result<patd_store::PatPage, StoreError> {
    tokio::time::timeout_at(deadline, state.store.list_pats(query))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "no answer within the database timeout".to_owned(),
            ))
        })
}

/// The page of PATs `params` ask for among those the caller may see, as the web page lists
/// them (the API's list answers from the list cache first).
pub(crate) async fn page_as(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    owner: OwnerParam,
    params: &ListParams<'_>,
) -> Result<patd_store::PatPage, ApiError> {
    let (access, request) = authorize_list(caller, owner, params)?;
    let deadline = settled(state).await;
    let query = PatQuery {
        owner: access.owner,
        include_managed: access.include_managed,
        request,
    };
    Ok(list_within(state, &query, deadline).await?)
}

/// Create a personal access token
#[utoipa::path(
    post,
    path = "",
    operation_id = "createPersonalAccessToken",
    request_body = CreatePersonalAccessTokenRequest,
    responses(
        (status = 200, description = "The new PAT, with its secret: shown this once",
            body = CreatePersonalAccessTokenResponse),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreatePersonalAccessTokenRequest>,
) -> Result<Response, ApiError> {
    let created = create_as(&state, &caller, family, request).await?;
    Ok(secret_answer(created))
}

/// Creates a PAT for the caller, as the API and the web page do.
pub(crate) async fn create_as(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    family: Family,
    request: CreatePersonalAccessTokenRequest,
) -> Result<CreatePersonalAccessTokenResponse, ApiError> {
    caller.may_create()?;
    let owner = state
        .identities
        .get(state.store.as_ref(), &caller.identity_id)
        .await?
        // Identities are never deleted, so only a database changed by hand gets here; no right
        // would help.
        .ok_or(ApiError::Forbidden(&[]))?;
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
    // Judged by the scope the PAT would get, the default included.
    caller.may_grant(&Scope::parse(input.scope.clone())?, owner.rights())?;
    let limit = Some(state.config.max_tokens_per_owner);
    let created = service::create_pat(
        state.store.as_ref(),
        &owner,
        input,
        limit,
        state.config.lifetime_policy,
        OffsetDateTime::now_utc(),
        audit::identity_actor(&owner),
    )
    .await?;
    // A lookup of this id before it existed may have cached "no such PAT".
    if let Some(id) = PatId::parse(&created.id) {
        state.pats.invalidate(&id).await;
    }
    Ok(created)
}

/// An answer that carries a secret (a create, a rotation): never stored by a cache (RFC 6749
/// §5.1's rule for the token response).
pub(super) fn secret_answer(created: CreatePersonalAccessTokenResponse) -> Response {
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::PRAGMA, "no-cache"),
        ],
        Json(created),
    )
        .into_response()
}

/// The caller as an audit event's actor.
pub(super) async fn acting(
    state: &AppState,
    caller: &patd_core::authz::Caller,
) -> Result<patd_core::audit::Actor, ApiError> {
    let identity = state
        .identities
        .get(state.store.as_ref(), &caller.identity_id)
        .await?
        .ok_or(ApiError::Forbidden(&[]))?;
    Ok(audit::identity_actor(&identity))
}

/// The `pat.updated` event of a patch: the paths it touched, never their values.
fn updated_event(
    actor: patd_core::audit::Actor,
    pat: &patd_core::pat::PatRecord,
    owner_name: &str,
    operations: &serde_json::Value,
) -> patd_core::audit::AuditEvent {
    let paths: Vec<serde_json::Value> = operations
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|operation| operation.get("path").cloned())
        .collect();
    audit::pat_event(EventType::PatUpdated, actor, pat, owner_name).detail("paths", paths)
}

/// Finds a PAT the caller may change: 403 without any manage right, 404 if it cannot be seen.
pub(crate) async fn modifiable(
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

/// Patches the PAT `raw_id` names with `operations`, as the API and the web page do.
pub(crate) async fn patch_as(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    raw_id: &str,
    family: Family,
    operations: &serde_json::Value,
) -> Result<OwnedPat, ApiError> {
    let owned = modifiable(state, caller, raw_id).await?;
    let updated = apply_patch(&owned.pat, family, operations, OffsetDateTime::now_utc())?;
    state
        .config
        .lifetime_policy
        .check_patched(&owned.pat, &updated)?;
    if updated.scope != owned.pat.scope {
        let owner = state
            .identities
            .get(state.store.as_ref(), &updated.owner_id)
            .await?
            .ok_or(ApiError::Forbidden(&[]))?;
        caller.may_grant(&updated.scope, owner.rights())?;
    }
    let event = updated_event(
        acting(state, caller).await?,
        &updated,
        &owned.owner_name,
        operations,
    );
    let result = state.store.update_pat(&updated, &event).await;
    state.pats.invalidate(&updated.id).await;
    match result {
        Err(StoreError::NameTaken) => {
            return Err(Rule::NameTaken(updated.name.as_str().to_owned()).into())
        }
        other => other?,
    }
    audit::committed(&event);
    let owned = OwnedPat {
        pat: updated,
        owner_name: owned.owner_name,
    };
    Ok(owned)
}

/// Patch a personal access token with RFC 6902 operations
#[utoipa::path(
    patch,
    path = "/{id}",
    operation_id = "patchPersonalAccessToken",
    params(("id" = String, Path, description = "The PAT's id")),
    request_body(content(
        (Vec<JsonPatchOperation> = "application/json-patch+json"),
        (Vec<JsonPatchOperation> = "application/json")
    )),
    responses(
        (status = 200, description = "The patched PAT", body = GetPersonalAccessTokenResponse),
        Bearer, Missing, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn patch_pat(
    State(state): State<AppState>,
    Extension(family): Extension<Family>,
    Authenticated(caller): Authenticated,
    PathId(raw_id): PathId,
    PatchBody(operations): PatchBody,
) -> Result<Json<GetPersonalAccessTokenResponse>, ApiError> {
    let owned = patch_as(&state, &caller, &raw_id, family, &operations).await?;
    Ok(Json(convert::get_response(&owned, family)))
}

/// Deletes the PAT `raw_id` names, as the API and the web page do; its tokens stop working at
/// once.
pub(crate) async fn delete_as(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    raw_id: &str,
) -> Result<(), ApiError> {
    let owned = modifiable(state, caller, raw_id).await?;
    let event = audit::pat_event(
        EventType::PatDeleted,
        acting(state, caller).await?,
        &owned.pat,
        &owned.owner_name,
    );
    let deleted = state.store.delete_pat(&owned.pat.id, &event).await;
    // Every token minted from it fails from now on.
    state.pats.invalidate(&owned.pat.id).await;
    if deleted? {
        audit::committed(&event);
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Delete a personal access token; its access tokens stop working at once
#[utoipa::path(
    delete,
    path = "/{id}",
    operation_id = "deletePersonalAccessToken",
    params(("id" = String, Path, description = "The PAT's id")),
    responses((status = 204, description = "Deleted"), Bearer, Missing, TooMany, Always),
    security(("bearer" = []))
)]
async fn delete_pat(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    PathId(raw_id): PathId,
) -> Result<StatusCode, ApiError> {
    delete_as(&state, &caller, &raw_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply one patch to up to 25 PATs, all or nothing
#[utoipa::path(
    method(patch, post),
    path = "/personal-access-tokens/v1/bulk-update",
    tag = "personal-access-tokens-v1",
    operation_id = "bulkUpdatePersonalAccessTokens",
    request_body = BulkUpdateRequest,
    responses(
        (status = 200, description = "The updated PATs", body = [GetPersonalAccessTokenResponse]),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn bulk_update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<BulkUpdateRequest>,
) -> Result<Json<Vec<GetPersonalAccessTokenResponse>>, ApiError> {
    caller.may_bulk_update()?;
    let operations = serde_json::Value::Array(request.patch);
    let plan = bulk::plan(&request.ids, &operations)?;
    let found = state.store.pats_by_ids(&plan.ids).await?;
    // A managed PAT the caller may not see is as unknown as a missing one.
    let visible =
        |owned: &&OwnedPat| !owned.pat.managed || caller.rights.contains(Right::ManagedRead);
    let mut unknown = Vec::new();
    let mut ordered = Vec::with_capacity(plan.ids.len());
    for raw in &request.ids {
        let owned = PatId::parse(raw).and_then(|id| {
            found
                .iter()
                .filter(visible)
                .find(|owned| owned.pat.id == id)
        });
        match owned {
            Some(owned) => ordered.push(owned),
            None => unknown.push(raw.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(Rule::UnknownIds(unknown.join(", ")).into());
    }
    let now = OffsetDateTime::now_utc();
    let updated = ordered
        .iter()
        .map(|owned| {
            apply_patch(&owned.pat, Family::NeverExpiresAware, &operations, now).map(|pat| {
                OwnedPat {
                    pat,
                    owner_name: owned.owner_name.clone(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A bulk update changes only expiries (CONTRACT §7), so only the lifetime policy judges it.
    for (before, after) in ordered.iter().zip(&updated) {
        state
            .config
            .lifetime_policy
            .check_patched(&before.pat, &after.pat)?;
    }
    let records: Vec<_> = updated.iter().map(|owned| owned.pat.clone()).collect();
    let actor = acting(&state, &caller).await?;
    let events: Vec<_> = updated
        .iter()
        .map(|owned| updated_event(actor.clone(), &owned.pat, &owned.owner_name, &operations))
        .collect();
    let result = state.store.update_pats(&records, &events).await;
    for record in &records {
        state.pats.invalidate(&record.id).await;
    }
    result?;
    events.iter().for_each(audit::committed);
    Ok(Json(
        updated
            .iter()
            .map(|owned| convert::get_response(owned, Family::NeverExpiresAware))
            .collect(),
    ))
}
