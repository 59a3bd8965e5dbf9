//! Gives every request a tracking id (the `trackingId` of error bodies and the `X-Request-Id`
//! header), bounds it in time (`--request-timeout`, reading the body included), puts the
//! framework's own refusals in the contract's shape, and writes one log line per request. Query
//! strings are never logged: the token endpoint accepts secrets there. Also finds the client's
//! address (through trusted proxies) and counts the request in the metrics.

use crate::context::{RequestContext, REQUEST};
use crate::error::{new_tracking_id, ApiError, ErrorDetail};
use crate::proxies::TrustedProxies;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the middleware needs, shared by every request.
#[derive(Debug)]
pub(crate) struct Tracking {
    pub request_timeout: Duration,
    pub body_read_timeout: Duration,
    pub proxies: TrustedProxies,
}

/// When the request's body must have arrived (`--body-read-timeout`), for `read_body`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline(pub tokio::time::Instant);

/// Routes that probes and scrapers call every few seconds: their successes are logged at debug.
fn is_probe(route: &str) -> bool {
    matches!(route, "/health/alive" | "/health/ready" | "/metrics")
}

/// The one middleware. tower-http's request-id layer would keep an `X-Request-Id` the client
/// sent (client input in every log line and error body), its trace layer records the URI with
/// its query (the token endpoint accepts secrets there), and each layer costs a service clone
/// per request: so the jobs are done here, once.
pub(crate) async fn track(
    State(tracking): State<Arc<Tracking>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let context = Arc::new(RequestContext {
        tracking_id: new_tracking_id(),
        client_ip: peer.map(|peer| tracking.proxies.client_ip(peer, request.headers())),
        user_agent: request.headers().get(header::USER_AGENT).cloned(),
        client_id: OnceLock::new(),
        via_web: OnceLock::new(),
    });
    let method = request.method().clone();
    let route = crate::metrics::route_label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let request_timeout = tracking.request_timeout;
    let mut request = request;
    request.extensions_mut().insert(BodyDeadline(
        tokio::time::Instant::now() + tracking.body_read_timeout,
    ));
    // The mapping runs inside the scope so that its error body carries this request's id. A
    // request past its time is dropped where it stands: a client that stalls its body or a
    // slow database cannot hold it open.
    let mut response = REQUEST
        .scope(context.clone(), async {
            let answer = tokio::time::timeout(request_timeout, next.run(request))
                .await
                .unwrap_or_else(|_| ApiError::RequestTimeout(request_timeout).into_response());
            contract_rejections(answer, route)
        })
        .await;
    let tracking_id = context.tracking_id.as_str();
    if let Ok(value) = HeaderValue::from_str(tracking_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    crate::metrics::request(route, &method, status, elapsed);
    let elapsed_ms = elapsed * 1000.0;
    // The route template, never the path: a path carries ids and whatever a client made up.
    let client_id = context.client_id.get().map(String::as_str);
    match response.extensions().get::<ErrorDetail>() {
        Some(ErrorDetail(detail)) if status >= 500 => {
            tracing::error!(%method, route, status, elapsed_ms, tracking_id, client_id, error = %detail, "request failed")
        }
        Some(ErrorDetail(detail)) => {
            tracing::info!(%method, route, status, elapsed_ms, tracking_id, client_id, error = %detail, "request refused")
        }
        None if is_probe(route) => {
            tracing::debug!(%method, route, status, elapsed_ms, tracking_id, "request")
        }
        None => {
            tracing::info!(%method, route, status, elapsed_ms, tracking_id, client_id, "request")
        }
    }
    response
}

/// Marks a response a handler shaped itself on purpose (readiness's 503), which the contract's
/// mapping leaves alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnAnswer;

/// Turns any answer the framework produced on its own (an empty 405 from a method router, a
/// plain-text rejection) into the contract's JSON body: on the token and revocation endpoints,
/// an unreadable or oversized body gets the OAuth error shape, as the handlers' own refusals do.
fn contract_rejections(response: Response, route: &str) -> Response {
    if response.extensions().get::<ErrorDetail>().is_some()
        || response.extensions().get::<OwnAnswer>().is_some()
    {
        return response;
    }
    let replacement = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::NotFound,
        // `RequestBodyLimitLayer` refuses a declared length over the cap before anything reads.
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::LENGTH_REQUIRED => {
            ApiError::Syntax(format!("the request was rejected ({})", response.status()))
        }
        status if status.is_client_error() || status.is_server_error() => {
            ApiError::Internal(anyhow::anyhow!("unmapped framework response {status}"))
        }
        _ => return response,
    };
    let replacement = if matches!(route, "/oauth/token" | "/oauth/revoke") {
        replacement.on_token_endpoint()
    } else {
        replacement
    };
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut mapped = replacement.into_response();
    if let Some(allow) = allow {
        mapped
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    mapped
}
