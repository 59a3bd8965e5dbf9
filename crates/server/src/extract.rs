//! Extractors with the contract's rejections: the bearer caller, JSON and JSON Patch bodies,
//! query strings and path ids. axum's own rejections (plain text, 415, 422) never reach a client.

use crate::error::ApiError;
use crate::middleware::BodyDeadline;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use patd_core::authz::Caller;
use serde::de::DeserializeOwned;

/// The authenticated caller, from a verified bearer JWT. Its rights are the ones fixed in the
/// token when it was minted.
pub(crate) struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = crate::access::bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("JWT is required".to_owned()))?;
        let live = crate::access::check(state, token).await?.map_err(|dead| {
            ApiError::Unauthorized(format!("JWT validation failed: {}", dead.reason()))
        })?;
        crate::context::note_client_id(live.pat_id.as_str());
        state
            .limits
            .check_request(&live.claims.client_id, api_version(parts.uri.path()))
            .await
            .map_err(ApiError::RateLimited)?;
        Ok(Authenticated(live.caller()))
    }
}

/// The API version a path belongs to, for rate limits.
pub(crate) fn api_version(path: &str) -> &'static str {
    match path.trim_start_matches('/').split('/').next() {
        Some("v3") => "v3",
        Some("beta") => "beta",
        Some("v2024") => "v2024",
        Some("v2025") => "v2025",
        Some("personal-access-tokens") => "v1",
        Some("oauth") => "oauth",
        _ => "other",
    }
}

/// A JSON object body of type `T`, sent as `application/json`. Anything but an object is a
/// syntax error: serde would otherwise read a JSON array into a struct field by field.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_content_type(request.headers(), &["application/json"])?;
        let bytes = read_body(request, state).await?;
        json_object(&bytes).map(JsonBody)
    }
}

/// As `JsonBody`, for routes whose body may be left out: no body at all is `T::default()`.
pub(crate) struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // The media type matters only for a body that is there.
        let typed = require_content_type(request.headers(), &["application/json"]);
        let bytes = read_body(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        typed?;
        json_object(&bytes).map(OptionalJsonBody)
    }
}

/// A JSON object read into `T`, the path of a member at fault named.
fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = parse_json(bytes)?;
    if !value.is_object() {
        return Err(ApiError::Syntax(
            "the body must be a JSON object".to_owned(),
        ));
    }
    // The path names the member at fault: `expirationDate: not an RFC 3339 date-time: …`.
    serde_path_to_error::deserialize(value)
        .map_err(|err| ApiError::Syntax(format!("invalid JSON body: {err}")))
}

/// A JSON array read into `Vec<T>`, the index and member at fault named (`[2].token: …`).
pub(crate) fn json_array<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, ApiError> {
    let value: serde_json::Value = parse_json(bytes)?;
    if !value.is_array() {
        return Err(ApiError::Syntax("the body must be a JSON array".to_owned()));
    }
    serde_path_to_error::deserialize(value)
        .map_err(|err| ApiError::Syntax(format!("invalid JSON body: {err}")))
}

/// A JSON Patch body: `application/json-patch+json`, or `application/json` **[patd]**.
pub(crate) struct PatchBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for PatchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_content_type(
            request.headers(),
            &["application/json-patch+json", "application/json"],
        )?;
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(PatchBody)
    }
}

/// The query string as `T`.
pub(crate) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|err| ApiError::Syntax(format!("invalid query string: {err}")))
    }
}

/// The `{id}` path segment.
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| PathId(id))
            .map_err(|err| ApiError::Syntax(format!("invalid path: {err}")))
    }
}

/// The media type of a request, lowercased and without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

fn require_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(found) if accepted.contains(&found.as_str()) => Ok(()),
        Some(found) => Err(ApiError::Syntax(format!(
            "Content-Type '{found}' is not supported; send {}",
            accepted.join(" or ")
        ))),
        None => Err(ApiError::Syntax(format!(
            "Content-Type is required; send {}",
            accepted.join(" or ")
        ))),
    }
}

/// The whole body. Past `--max-body-size` it is a 413: the router caps every body. A body that
/// has not arrived by the request's `BodyDeadline` (`--body-read-timeout`) is a 408.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    let deadline = request
        .extensions()
        .get::<BodyDeadline>()
        .map(|BodyDeadline(at)| *at);
    let reading = Bytes::from_request(request, state);
    let read = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, reading)
            .await
            .map_err(|_| ApiError::BodyReadTimeout)?,
        None => reading.await,
    };
    read.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::Syntax(format!("the body could not be read: {other}")),
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::Syntax(format!("invalid JSON body: {err}")))
}
