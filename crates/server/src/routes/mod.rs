//! The router and the OpenAPI document, built together: every route is a handler annotated with
//! `#[utoipa::path]`, added with `utoipa_axum`'s `routes!`, so the router serves what the document
//! describes. Around the routes: the JSON 404 and the one middleware (tracking ids, the request
//! timeout, contract-shaped refusals, the request log), with the body cap inside it.

/// `GET /patd/v1/audit-events`.
pub(crate) mod audit;
/// `POST /oauth/introspect` and the RFC 8414 discovery documents.
pub(crate) mod introspect;
/// `POST /oauth/token`, `/oauth/info`, `/.well-known/jwks.json`.
mod oauth;
/// Liveness, readiness and the metrics scrape.
mod ops;
/// The four PAT operations on every prefix, and the bulk update.
pub(crate) mod pats;
/// `POST /oauth/revoke`: a PAT revoked by whoever holds its secret (RFC 7009).
mod revoke;
/// `POST /patd/v1/personal-access-tokens/{id}/rotate` and `…/self/rotate`.
pub(crate) mod rotate;
/// `POST /patd/v1/secret-scanning/reports`: leaked-secret reports.
mod scanning;
/// The Shared Signals transmitter: metadata, JWK set, streams, status, verify, poll.
mod ssf;
/// `/patd/v1/webhooks`: webhooks and their deliveries.
pub(crate) mod webhooks;

use crate::error::ApiError;
use crate::middleware::{track, Tracking};
use crate::openapi::{operations, Always};
use crate::state::{AppState, ServerConfig};
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use patd_core::expiry::Family;
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::path::Paths;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Every PAT prefix and its version family.
pub const PAT_PREFIXES: [(&str, Family); 5] = [
    ("/v3/personal-access-tokens", Family::Classic),
    ("/beta/personal-access-tokens", Family::Classic),
    ("/v2024/personal-access-tokens", Family::Classic),
    ("/v2025/personal-access-tokens", Family::NeverExpiresAware),
    ("/personal-access-tokens/v1", Family::NeverExpiresAware),
];

/// Every route with its documentation: the router and the OpenAPI document are its two halves.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    api_serving_metrics(true)
}

/// The routes, with `/metrics` among them unless it has a listener of its own.
fn api_serving_metrics(metrics_here: bool) -> OpenApiRouter<AppState> {
    let api = pats::routes(OpenApiRouter::with_openapi(crate::openapi::base()));
    let api = introspect::routes(scanning::routes(revoke::routes(webhooks::routes(api))));
    let api = ssf::routes(api);
    let api = ops::routes(audit::routes(oauth::routes(rotate::routes(api))))
        .routes(routes!(openapi_document));
    if metrics_here {
        ops::metrics_route(api)
    } else {
        api
    }
}

/// The router of `--metrics-listen`: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    let (routes, _) = ops::metrics_route(OpenApiRouter::new()).split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Adds `handlers` (the `routes!` of one path, annotated relative to the prefix) under `prefix`:
/// served and documented at `prefix` + path, with the prefix's family as an extension (the same
/// handlers serve every prefix), tagged with the prefix, each operation id followed by the
/// prefix's version (`listPersonalAccessTokensV2025`) so that ids stay unique.
fn under_prefix(
    api: OpenApiRouter<AppState>,
    (prefix, family): (&str, Family),
    (schemas, paths, handlers): UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let family_name = match family {
        Family::Classic => "classic",
        Family::NeverExpiresAware => "never-expires-aware",
    };
    let tag = prefix.trim_start_matches('/').replace('/', "-");
    let version: String = prefix
        .split('/')
        .filter(|segment| !segment.is_empty() && *segment != "personal-access-tokens")
        .flat_map(|segment| {
            let (first, rest) = segment.split_at(1);
            [first.to_ascii_uppercase(), rest.to_owned()]
        })
        .collect();
    let mut prefixed = Paths::new();
    for (path, mut item) in paths.paths {
        for (_, operation) in operations(&mut item) {
            if let Some(operation) = operation {
                operation.tags = Some(vec![tag.clone()]);
                if let Some(summary) = operation.summary.as_mut() {
                    summary.push_str(&format!(" ({family_name} family)"));
                }
                if let Some(id) = operation.operation_id.as_mut() {
                    id.push_str(&version);
                }
            }
        }
        prefixed.paths.insert(format!("{prefix}{path}"), item);
    }
    api.routes((schemas, prefixed, handlers.layer(Extension(family))))
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1", body = Object), Always)
)]
async fn openapi_document() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        crate::openapi::document_json(),
    )
}

/// The whole application. Every body is capped at `max_body_size` by `RequestBodyLimitLayer`: a
/// declared length over it is refused before reading, a chunked body once reading passes it.
/// axum's own default cap is turned off so that this one setting rules.
pub fn router(state: AppState) -> Router {
    stateless(&state.config).with_state(state)
}

/// The router before it is given its state.
fn stateless(config: &ServerConfig) -> Router<AppState> {
    // One `Router::layer` for all three: each one wraps every route once more, at the cost of a
    // service clone per request. The first listed is the outermost, so `track` sees (and puts in
    // the contract's shape) the 413 the body cap answers on its own.
    let tracking = Arc::new(Tracking {
        request_timeout: config.request_timeout,
        body_read_timeout: config.body_read_timeout,
        proxies: config.trusted_proxies.clone(),
    });
    let layers = ServiceBuilder::new()
        .layer(from_fn_with_state(tracking, track))
        .layer(RequestBodyLimitLayer::new(config.max_body_size))
        .layer(DefaultBodyLimit::disable());
    let (routes, _) = api_serving_metrics(config.metrics_listen.is_none()).split_for_parts();
    // The web page is no part of the API, so not of its document either.
    routes
        .merge(crate::ui::router())
        .fallback(|| async { ApiError::NotFound })
        .layer(layers)
}

/// One served path and its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub path: String,
    pub methods: Vec<Method>,
}

/// Every path and method the router really serves, for tests to hold the document to. axum shows
/// its routes only in its `Debug` form (`routes: {RouteId(0): MethodRouter(MethodRouter { get:
/// BoxedHandler, head: None, …}), …}, node: Node { paths: {RouteId(0): "/path", …} }`), so they
/// are read from there; a form this cannot read gives an empty table, which fails those tests.
pub fn route_table() -> Vec<RouteEntry> {
    let text = format!("{:?}", stateless(&ServerConfig::new(String::new())));
    // The fallback router that follows has routes of its own: its catch-all paths.
    let text = text.split("fallback_router:").next().unwrap_or_default();
    let Some((routes, node)) = text.split_once("node: Node") else {
        return Vec::new();
    };
    let methods_of = |id: &str| -> Vec<Method> {
        let Some(fields) = routes
            .split("RouteId(")
            .find_map(|route| route.strip_prefix(id)?.strip_prefix("): "))
        else {
            return Vec::new();
        };
        [
            Method::GET,
            Method::HEAD,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
            Method::POST,
            Method::PUT,
            Method::TRACE,
        ]
        .into_iter()
        .filter(|method| {
            let field = format!("{}: ", method.as_str().to_ascii_lowercase());
            fields
                .split_once(&field)
                .is_some_and(|(_, endpoint)| !endpoint.starts_with("None"))
        })
        .collect()
    };
    node.split("RouteId(")
        .filter_map(|entry| {
            let (id, rest) = entry.split_once("): \"")?;
            let path = rest.split('"').next()?;
            // The web page's routes are not the API's (`ui::router`).
            if path == "/ui" || path.starts_with("/ui/") {
                return None;
            }
            Some(RouteEntry {
                path: path.to_owned(),
                methods: methods_of(id),
            })
        })
        .collect()
}
