//! The router: every route of CONTRACT §1 on every prefix, the JSON 404 and 405, and the
//! one middleware around all of it (tracking ids, the request timeout, contract-shaped refusals,
//! the request log), with the body cap inside it.

/// `POST /oauth/token`, `/oauth/info`, `/.well-known/jwks.json`.
mod oauth;
/// Liveness, readiness and the metrics scrape.
mod ops;
/// The four PAT operations, for one version family.
mod pats;

pub use pats::BULK_UPDATE_PATH;

use crate::error::ApiError;
use crate::middleware::{track, Tracking};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use patd_core::expiry::Family;
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;

/// Every PAT prefix and its version family.
pub const PAT_PREFIXES: [(&str, Family); 5] = [
    ("/v3/personal-access-tokens", Family::Classic),
    ("/beta/personal-access-tokens", Family::Classic),
    ("/v2024/personal-access-tokens", Family::Classic),
    ("/v2025/personal-access-tokens", Family::NeverExpiresAware),
    ("/personal-access-tokens/v1", Family::NeverExpiresAware),
];

/// One served path and its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub path: String,
    pub methods: Vec<Method>,
}

/// The router under construction, and the table of what it serves. Routes are added only
/// through [`Routes::add`], so the table is complete; the OpenAPI test holds the document to it.
pub(crate) struct Routes {
    router: Router<AppState>,
    table: Vec<RouteEntry>,
}

impl Routes {
    pub(crate) fn add(
        mut self,
        path: &str,
        methods: &[Method],
        handler: MethodRouter<AppState>,
    ) -> Routes {
        self.router = self.router.route(path, handler);
        self.table.push(RouteEntry {
            path: path.to_owned(),
            methods: methods.to_vec(),
        });
        self
    }
}

fn all_routes(metrics_here: bool) -> Routes {
    let mut routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    for (prefix, family) in PAT_PREFIXES {
        routes = pats::routes(routes, prefix, family);
    }
    routes = pats::bulk_routes(routes);
    routes = oauth::routes(routes);
    routes = ops::routes(routes);
    if metrics_here {
        routes = ops::metrics_route(routes);
    }
    routes.add("/openapi.json", &[Method::GET], get(openapi_document))
}

/// Every path and method the router serves (with `/metrics` on the main listener).
pub fn route_table() -> Vec<RouteEntry> {
    all_routes(true).table
}

/// The router of `--metrics-listen`: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    let routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    ops::metrics_route(routes)
        .router
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn openapi_document() -> Response {
    let mut response = crate::openapi::document_json().into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The whole application. Every body is capped at `max_body_size` by `RequestBodyLimitLayer`: a
/// declared length over it is refused before reading, a chunked body once reading passes it.
/// axum's own default cap is turned off so that this one setting rules.
pub fn router(state: AppState) -> Router {
    let max_body_size = state.config.max_body_size;
    let tracking = Arc::new(Tracking {
        request_timeout: state.config.request_timeout,
        proxies: state.config.trusted_proxies.clone(),
    });
    // One `Router::layer` for all three: each one wraps every route once more, at the cost of a
    // service clone per request. The first listed is the outermost, so `track` sees (and puts in
    // the contract's shape) the 413 the body cap answers on its own.
    let layers = ServiceBuilder::new()
        .layer(from_fn_with_state(tracking, track))
        .layer(RequestBodyLimitLayer::new(max_body_size))
        .layer(DefaultBodyLimit::disable());
    all_routes(state.config.metrics_listen.is_none())
        .router
        .fallback(|| async { ApiError::NotFound })
        .layer(layers)
        .with_state(state)
}
