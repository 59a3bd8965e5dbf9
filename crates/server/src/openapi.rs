//! The OpenAPI 3.1 document served at `/openapi.json`. Its operations are the `#[utoipa::path]`
//! annotations of the handlers, gathered together with the router by `routes::api`; this module
//! holds what no single route owns: the title, the bearer and Basic schemes, the schemas the
//! routes name only by reference (error bodies, the token form) and the answers routes share
//! (`Always`, `Bearer`, `TooMany`, `TooLarge`, `Missing`).

use axum::http::Method;
use patd_proto::{ErrorResponseDto, OAuthErrorBody, RateLimitBody, TokenRequest, UnauthorizedBody};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, Modify};

/// The document as JSON text, built once.
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()))
        .clone()
}

/// The document: every route of the router, with the parts below.
pub fn document() -> OpenApi {
    let mut document = crate::routes::api().into_openapi();
    for item in document.paths.paths.values_mut() {
        name_each_method(item);
    }
    document
}

/// What the routes do not say: the title and description, the schemas the shared answers below
/// refer to, the bearer scheme the routes' `security(("bearer" = []))` names and the token
/// endpoint's HTTP Basic.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "patd",
        description = "Personal access tokens, wire-compatible with SailPoint Identity Security \
                       Cloud's Personal Access Tokens API."
    ),
    components(schemas(
        ErrorResponseDto,
        UnauthorizedBody,
        RateLimitBody,
        OAuthErrorBody,
        TokenRequest
    )),
    modifiers(&BearerScheme)
)]
struct Base;

pub(crate) fn base() -> OpenApi {
    <Base as utoipa::OpenApi>::openapi()
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
            components.add_security_scheme(
                "basic",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
            );
        }
    }
}

/// Each method's operation of a path, by method.
pub(crate) fn operations(item: &mut PathItem) -> [(Method, &mut Option<Operation>); 8] {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
}

/// A handler served on several methods (`method(patch, post)`) is one operation under each; the
/// method's name joins its id, which must be unique (`bulkUpdatePersonalAccessTokensPatch`).
fn name_each_method(item: &mut PathItem) {
    let mut found: Vec<(Method, &mut Operation)> = operations(item)
        .into_iter()
        .filter_map(|(method, operation)| operation.as_mut().map(|found| (method, found)))
        .collect();
    let ids: Vec<Option<String>> = found
        .iter()
        .map(|(_, operation)| operation.operation_id.clone())
        .collect();
    for (method, operation) in &mut found {
        let shared = ids
            .iter()
            .filter(|id| **id == operation.operation_id)
            .count()
            > 1;
        if let (true, Some(id)) = (shared, operation.operation_id.as_mut()) {
            let name = method.as_str();
            id.push_str(&name[..1]);
            id.push_str(&name[1..].to_ascii_lowercase());
        }
    }
}

// The answers several routes share, named in their `responses(...)`. Never built: only their
// documentation is used.

// What any route can answer: the middleware's refusals, a fault, the request timeout.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Always {
    /// The method is not supported on this path
    #[response(status = 405)]
    MethodNotAllowed(ErrorResponseDto),
    /// Internal fault
    #[response(status = 500)]
    Internal(ErrorResponseDto),
    /// The request took longer than the server allows (--request-timeout)
    #[response(status = 503)]
    Timeout(ErrorResponseDto),
}

// What a route behind a bearer token answers before it does its work.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Bearer {
    /// Client error: the body, a parameter or a rule (see causes)
    #[response(status = 400)]
    BadRequest(ErrorResponseDto),
    /// Missing or invalid bearer token
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(UnauthorizedBody),
    /// The caller holds none of the rights the operation accepts
    #[response(status = 403)]
    Forbidden(ErrorResponseDto),
}

// The rate limit (per client and API version, and on failed exchanges).
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(
    status = 429,
    description = "Too many requests",
    headers(("Retry-After" = i64, description = "Seconds to wait"))
)]
pub(crate) struct TooMany(RateLimitBody);

// The body cap, on routes that read a body.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(
    status = 413,
    description = "The body is longer than the server accepts (--max-body-size)"
)]
pub(crate) struct TooLarge(ErrorResponseDto);

// A route that names a PAT.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(
    status = 404,
    description = "No such PAT, or one the caller may not see"
)]
pub(crate) struct Missing(ErrorResponseDto);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn documented() -> Vec<(String, Method, Option<String>)> {
        let mut found = Vec::new();
        for (path, mut item) in document().paths.paths {
            for (method, operation) in operations(&mut item) {
                if let Some(operation) = operation {
                    found.push((path.clone(), method, operation.operation_id.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_describes_exactly_what_the_router_serves() {
        let served: BTreeSet<(String, String)> = crate::route_table()
            .into_iter()
            .flat_map(|entry| {
                let path = entry.path;
                entry
                    .methods
                    .into_iter()
                    .map(move |method| (path.clone(), method.to_string()))
            })
            .collect();
        // At least: four PAT operations on five prefixes, the bulk update twice, four more.
        assert!(
            served.len() >= 26,
            "the router's routes were read: {served:?}"
        );
        let documented: BTreeSet<(String, String)> = documented()
            .into_iter()
            .map(|(path, method, _)| (path, method.to_string()))
            .collect();
        // A route added without `routes!` and `#[utoipa::path]` is served but not documented.
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served, not documented: {undocumented:?}; documented, not served: {unserved:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let ids: Vec<String> = documented()
            .into_iter()
            .map(|(path, method, id)| id.unwrap_or_else(|| format!("none for {method} {path}")))
            .collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(ids.contains(&"listPersonalAccessTokensV2025".to_owned()));
        assert!(ids.contains(&"bulkUpdatePersonalAccessTokensPost".to_owned()));
    }
}
