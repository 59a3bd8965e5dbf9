//! Gives every request a tracking id (the `trackingId` of error bodies and the `X-Request-Id`
//! header), bounds it in time (`--request-timeout`, reading the body included), puts the
//! framework's own refusals in the contract's shape, and writes one log line per request. Query
//! strings are never logged: the token endpoint accepts secrets there.

use crate::error::{new_tracking_id, ApiError, ErrorDetail, TRACKING_ID};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// The one middleware. Its state is the request timeout, so the per-request clone is a copy.
pub(crate) async fn track(
    State(request_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let tracking_id = new_tracking_id();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    // One middleware does these jobs (each layer costs a service clone per request); the
    // mapping runs inside the scope so that its error body carries this request's id. A request
    // past its time is dropped where it stands: a client that stalls its body or a slow
    // database cannot hold it open.
    let mut response = TRACKING_ID
        .scope(tracking_id.clone(), async {
            let answer = tokio::time::timeout(request_timeout, next.run(request))
                .await
                .unwrap_or_else(|_| ApiError::RequestTimeout(request_timeout).into_response());
            contract_rejections(answer)
        })
        .await;
    if let Ok(value) = HeaderValue::from_str(&tracking_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match response.extensions().get::<ErrorDetail>() {
        Some(ErrorDetail(detail)) if status >= 500 => {
            tracing::error!(%method, %path, status, elapsed_ms, tracking_id, error = %detail, "request failed")
        }
        Some(ErrorDetail(detail)) => {
            tracing::info!(%method, %path, status, elapsed_ms, tracking_id, error = %detail, "request refused")
        }
        // Successes are the hot path: logged at debug so that they cost nothing by default.
        None => tracing::debug!(%method, %path, status, elapsed_ms, tracking_id, "request"),
    }
    response
}

/// Turns any answer the framework produced on its own (an empty 405 from a method router, a
/// plain-text rejection) into the contract's JSON body.
fn contract_rejections(response: Response) -> Response {
    if response.extensions().get::<ErrorDetail>().is_some() {
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
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut mapped = replacement.into_response();
    if let Some(allow) = allow {
        mapped
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    mapped
}
