//! `GET /patd/v1/audit-events` (EXTENSIONS E4): the audit trail, filtered and paged, each caller
//! seeing what its rights allow.

use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, QueryParams};
use crate::openapi::{Always, Bearer, TooMany};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::audit::{visibility, AuditQuery};
use patd_core::listing::ListParams;
use patd_core::rights::Right;
use patd_proto::AuditEventDto;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(list))
}

/// The audit query; each field is a parameter in the document.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// type (eq, in), actor.id (eq), target.id (eq), target.ownerId (eq), time (gt ge lt le),
    /// outcome (eq)
    filters: Option<String>,
    /// time or -time (the default: newest first)
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

/// List audit events
///
/// With `idn:audit-events:read`, every event; with `my-personal-access-tokens:read`, the events
/// the caller did or that were done to its PATs.
#[utoipa::path(
    get,
    path = "/patd/v1/audit-events",
    tag = "audit",
    operation_id = "listAuditEvents",
    params(AuditParams),
    responses(
        (status = 200, description = "The events", body = [AuditEventDto],
            headers(("X-Total-Count" = i64, description = "With count=true: how many match"))),
        Bearer, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Response, ApiError> {
    let page = list_as(
        &state,
        &caller,
        &ListParams {
            filters: params.filters.as_deref(),
            sorters: params.sorters.as_deref(),
            limit: params.limit.as_deref(),
            offset: params.offset.as_deref(),
            count: params.count.as_deref(),
        },
    )
    .await?;
    let body: Vec<AuditEventDto> = page.items.iter().map(convert::audit_event).collect();
    let mut response = Json(body).into_response();
    if let Some(total) = page.total {
        response
            .headers_mut()
            .insert("x-total-count", HeaderValue::from(total));
    }
    Ok(response)
}

/// The events `params` ask for among those the caller may read, as the API and the web page
/// list them.
pub(crate) async fn list_as(
    state: &AppState,
    caller: &patd_core::authz::Caller,
    params: &ListParams<'_>,
) -> Result<patd_store::AuditPage, ApiError> {
    let visible_to = visibility(&caller.identity_id, caller.rights)
        .ok_or(ApiError::Forbidden(&[Right::AuditRead, Right::MyRead]))?;
    let query = AuditQuery::parse(params, visible_to)?;
    Ok(state.store.audit_events(&query).await?)
}
