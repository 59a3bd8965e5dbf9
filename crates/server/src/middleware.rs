//! Gives every request a tracking id (the `trackingId` of error bodies and the `X-Request-Id`
//! header) and writes one log line per request. Query strings are never logged: the token
//! endpoint accepts secrets there.

use crate::error::{new_tracking_id, ErrorDetail, TRACKING_ID};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub(crate) async fn track(request: Request, next: Next) -> Response {
    let tracking_id = new_tracking_id();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = TRACKING_ID
        .scope(tracking_id.clone(), next.run(request))
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
