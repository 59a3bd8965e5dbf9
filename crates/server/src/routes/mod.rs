//! The router: every route of CONTRACT §1 on every prefix, the JSON 404 and 405, and the
//! one middleware around all of it (tracking ids, contract-shaped refusals, the request log).

/// `POST /oauth/token`, `/oauth/info`, `/.well-known/jwks.json`.
mod oauth;
/// The four PAT operations, for one version family.
mod pats;

pub use pats::BULK_UPDATE_PATH;

use crate::error::ApiError;
use crate::middleware::track;
use crate::state::AppState;
use axum::http::Method;
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use patd_core::expiry::Family;

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

fn all_routes() -> Routes {
    let mut routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    for (prefix, family) in PAT_PREFIXES {
        routes = pats::routes(routes, prefix, family);
    }
    routes = pats::bulk_routes(routes);
    routes = oauth::routes(routes);
    routes.add("/openapi.json", &[Method::GET], get(openapi_document))
}

/// Every path and method the router serves.
pub fn route_table() -> Vec<RouteEntry> {
    all_routes().table
}

async fn openapi_document() -> Response {
    let mut response = crate::openapi::document_json().into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    all_routes()
        .router
        .fallback(|| async { ApiError::NotFound })
        .layer(from_fn(track))
        .with_state(state)
}
