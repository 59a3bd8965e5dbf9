//! The operator's routes of E3: liveness, readiness and the Prometheus scrape. No
//! authentication and no rate limit: load balancers and scrapers call them.

use crate::middleware::OwnAnswer;
use crate::openapi::Always;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_store::StoreError;
use serde_json::json;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A Redis that does not answer a PING in this long is not ready.
const REDIS_PING_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(alive)).routes(routes!(ready))
}

/// `/metrics`, on the main listener or on `--metrics-listen`'s.
pub(super) fn metrics_route(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(metrics))
}

/// Liveness: the process runs
#[utoipa::path(
    get,
    path = "/health/alive",
    tag = "operations",
    operation_id = "healthAlive",
    responses((status = 200, description = "`{\"status\":\"ok\"}`", body = Object), Always)
)]
async fn alive() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database, the signing keys and the shared rate limit's Redis
///
/// 200 when the database answers, the signing keys are loaded and, with a shared rate limit,
/// Redis answers; otherwise 503 naming what is not ready. The reasons are the server's own
/// words: no URL, no password; a SQLite file removed, replaced or made unwritable while patd
/// runs is named by its path.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "healthReady",
    responses(
        (status = 200, description = "`{\"status\":\"ok\"}`", body = Object),
        (status = 503, description = "`{\"status\":\"unavailable\",\"reason\":\"…\"}`",
            body = Object),
        Always
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    match state.store.ping().await {
        Ok(()) => {}
        // Names the SQLite file: the operator's own configuration, never a URL or a password.
        Err(StoreError::Gone(reason)) => problems.push(reason),
        Err(err) => {
            let reason = if err.is_unavailable() {
                "the database does not answer"
            } else {
                "the database answered with an error"
            };
            tracing::warn!(error = %err, "readiness: {reason}");
            problems.push(reason.to_owned());
        }
    }
    if state.keys.current().jwks()["keys"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        problems.push("no signing key is loaded".to_owned());
    }
    if let Some(shared) = state.limits.shared() {
        let answered = tokio::time::timeout(REDIS_PING_TIMEOUT, shared.ping()).await;
        if let Err(kind) = answered.unwrap_or_else(|_| Err("no answer in time".to_owned())) {
            tracing::warn!(error = kind, "readiness: Redis does not answer");
            problems.push("Redis (the shared rate limit) does not answer".to_owned());
        }
    }
    if problems.is_empty() {
        return Json(json!({ "status": "ok" })).into_response();
    }
    let body = json!({ "status": "unavailable", "reason": problems.join("; ") });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.extensions_mut().insert(OwnAnswer);
    response
}

/// Prometheus metrics
///
/// The text exposition format; on `--metrics-listen`'s address instead when that is given.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4"), Always)
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = crate::metrics::render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
