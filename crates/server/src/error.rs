//! `ApiError`, the server's one error type, and the only place that knows status codes and the
//! contract's error bodies (CONTRACT §4, §5).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::Rule;
use patd_proto::{ErrorMessageDto, ErrorResponseDto, OAuthErrorBody, UnauthorizedBody};
use patd_store::StoreError;

/// A fresh tracking id: 32 lowercase hex characters, from the thread's CSPRNG (no system call).
pub(crate) fn new_tracking_id() -> String {
    patd_core::ids::random_hex_id(&mut rand::rng())
}

/// The current request's tracking id, or a fresh one outside a request.
pub(crate) fn current_tracking_id() -> String {
    crate::context::with_request(|request| request.tracking_id.clone())
        .unwrap_or_else(new_tracking_id)
}

/// What went wrong while handling a request.
#[derive(Debug)]
pub enum ApiError {
    /// `400.0`: the request could not be read (bad JSON, wrong types, wrong content type).
    Syntax(String),
    /// `400.1`: the request was read and broke a rule.
    Content(Rule),
    /// 403: any one of these rights would allow the call (none: no right would).
    Forbidden(&'static [patd_core::rights::Right]),
    /// 403: the scope asked for reaches past the calling token.
    Wider(patd_core::authz::Widening),
    /// 403: the operation needs this entry in the scope of the calling token's PAT.
    NotInScope(&'static str),
    NotFound,
    /// 409: the request conflicts with what exists (a Shared Signals stream, SSF 1.0 §8.1.1.1).
    Conflict(Rule),
    MethodNotAllowed,
    /// 401 on the API, with the text after `error`.
    Unauthorized(String),
    /// 400 `invalid_request` on the token endpoint.
    InvalidRequest(String),
    /// 400 `unsupported_grant_type` on the token endpoint.
    UnsupportedGrantType,
    /// 401 `invalid_client`: the same answer for every bad credential.
    InvalidClient,
    /// 403 `insufficient_scope` (RFC 6750 §3.1) on introspection: the caller lacks the right.
    InsufficientScope(&'static str),
    /// 400 `unauthorized_client` on revocation: the token is not the caller's to revoke.
    UnauthorizedClient(&'static str),
    /// 429, with `Retry-After` in whole seconds.
    RateLimited(crate::ratelimit::RetryAfter),
    /// 413: the body is longer than `--max-body-size`, on every route but the token endpoint.
    PayloadTooLarge,
    /// 413 `invalid_request`: the token endpoint's body is longer than `--max-body-size`.
    TokenBodyTooLarge,
    /// 408, closing the connection: the body did not arrive within `--body-read-timeout`.
    BodyReadTimeout,
    /// 408 `invalid_request`: the token endpoint's body did not arrive in time.
    TokenBodyTimeout,
    /// 503: the request, reading its body included, took longer than `--request-timeout`.
    RequestTimeout(std::time::Duration),
    /// 503: the SQLite file was removed, replaced or made unwritable under the running server
    /// (`StoreError::Gone`); the reason, which names the file, is only logged.
    StorageGone(String),
    /// 500 with a generic body; the detail is only logged.
    Internal(anyhow::Error),
}

/// The detail of an error, carried in the response's extensions for the request log.
#[derive(Debug, Clone)]
pub(crate) struct ErrorDetail(pub String);

impl From<Rule> for ApiError {
    fn from(rule: Rule) -> ApiError {
        if rule.is_syntax() {
            ApiError::Syntax(rule.to_string())
        } else {
            ApiError::Content(rule)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::LimitReached { max } => ApiError::Content(Rule::TooManyTokens { max }),
            StoreError::Gone(reason) => ApiError::StorageGone(reason),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        ApiError::Internal(err)
    }
}

impl From<patd_core::authz::Denied> for ApiError {
    fn from(denied: patd_core::authz::Denied) -> ApiError {
        match denied {
            patd_core::authz::Denied::Forbidden(accepted) => ApiError::Forbidden(accepted),
            patd_core::authz::Denied::NotFound => ApiError::NotFound,
            patd_core::authz::Denied::Wider(widening) => ApiError::Wider(widening),
            patd_core::authz::Denied::NotInScope(entry) => ApiError::NotInScope(entry),
        }
    }
}

impl ApiError {
    /// This error as the token endpoint (and `/oauth/revoke`) answers it: a body it cannot read,
    /// of any size, gets the OAuth error shape (RFC 6749 §5.2) its clients parse, not an
    /// `ErrorResponseDto`. The description never quotes what the client sent.
    pub(crate) fn on_token_endpoint(self) -> ApiError {
        match self {
            ApiError::PayloadTooLarge => ApiError::TokenBodyTooLarge,
            ApiError::BodyReadTimeout => ApiError::TokenBodyTimeout,
            ApiError::Syntax(_) => {
                ApiError::InvalidRequest("the request body could not be read".to_owned())
            }
            other => other,
        }
    }

    /// What the request log says of this error. Causes of 4xx answers can quote what the client
    /// sent (a filter, a JSON value, a name), and client input is never written to the log, so
    /// those are named by their kind only; a 500's detail is the server's own.
    fn log_detail(&self) -> String {
        let kind = match self {
            ApiError::Internal(err) => return format!("{err:#}"),
            ApiError::RequestTimeout(after) => return format!("no answer within {after:?}"),
            ApiError::StorageGone(reason) => return reason.clone(),
            ApiError::Unauthorized(reason) => return reason.clone(),
            ApiError::Syntax(_) => "the request could not be read",
            ApiError::Content(_) => "the request broke a rule",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Wider(_) => "forbidden: the scope reaches past the calling token",
            ApiError::NotInScope(_) => "forbidden: an entry is missing from the token's scope",
            ApiError::NotFound => "not found",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed => "method not allowed",
            ApiError::InvalidRequest(_) => "invalid token request",
            ApiError::UnsupportedGrantType => "unsupported grant type",
            ApiError::InvalidClient => "bad client credentials",
            ApiError::InsufficientScope(_) => "the caller lacks the right",
            ApiError::UnauthorizedClient(_) => "the token is not the caller's",
            ApiError::RateLimited(_) => "rate limited",
            ApiError::PayloadTooLarge | ApiError::TokenBodyTooLarge => "body too large",
            ApiError::BodyReadTimeout | ApiError::TokenBodyTimeout => {
                "the body did not arrive in time"
            }
        };
        kind.to_owned()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = ErrorDetail(self.log_detail());
        let mut response = match self {
            ApiError::Syntax(cause) => dto(
                StatusCode::BAD_REQUEST,
                "400.0 Bad Request Syntax",
                "The request could not be parsed.",
                Some(cause),
            ),
            ApiError::Content(rule) => dto(
                StatusCode::BAD_REQUEST,
                "400.1 Bad Request Content",
                "The request was syntactically correct but its content is semantically invalid.",
                Some(rule.to_string()),
            ),
            ApiError::Forbidden(accepted) => dto(
                StatusCode::FORBIDDEN,
                "403 Forbidden",
                "The server understood the request but refuses to authorize it.",
                rights_needed(accepted),
            ),
            ApiError::Wider(widening) => dto(
                StatusCode::FORBIDDEN,
                "403 Forbidden",
                "The server understood the request but refuses to authorize it.",
                Some(wider(widening)),
            ),
            ApiError::NotInScope(entry) => dto(
                StatusCode::FORBIDDEN,
                "403 Forbidden",
                "The server understood the request but refuses to authorize it.",
                Some(format!(
                    "requires {entry} in the scope of the calling token's personal access token"
                )),
            ),
            ApiError::NotFound => dto(
                StatusCode::NOT_FOUND,
                "404 Not found",
                "The server did not find a current representation for the target resource.",
                None,
            ),
            ApiError::Conflict(rule) => dto(
                StatusCode::CONFLICT,
                "409 Conflict",
                "The request conflicts with the current state of the target resource.",
                Some(rule.to_string()),
            ),
            ApiError::MethodNotAllowed => dto(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed",
                "The method is not supported for the target resource.",
                None,
            ),
            ApiError::PayloadTooLarge => dto(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Payload Too Large",
                "The request body is larger than the server accepts.",
                None,
            ),
            ApiError::BodyReadTimeout => dto(
                StatusCode::REQUEST_TIMEOUT,
                "408 Request Timeout",
                "The request body did not arrive in time.",
                None,
            ),
            ApiError::TokenBodyTimeout => oauth(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "The request body did not arrive in time".to_owned(),
            ),
            ApiError::RequestTimeout(_) => dto(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable",
                "The server did not finish the request in time.",
                None,
            ),
            ApiError::StorageGone(_) => dto(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable",
                "The server cannot use its database.",
                None,
            ),
            ApiError::Internal(_) => dto(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.0 Internal Fault",
                "An internal fault occurred.",
                None,
            ),
            ApiError::Unauthorized(error) => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, Json(UnauthorizedBody { error })).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            ApiError::RateLimited(crate::ratelimit::RetryAfter(seconds)) => {
                let body = patd_proto::RateLimitBody {
                    message: " Rate Limit Exceeded ".to_owned(),
                };
                let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            ApiError::InvalidRequest(description) => {
                oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
            }
            ApiError::UnsupportedGrantType => oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only client_credentials is supported".to_owned(),
            ),
            ApiError::TokenBodyTooLarge => oauth(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "The request body is larger than the server accepts".to_owned(),
            ),
            ApiError::InvalidClient => {
                let mut response = oauth(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Bad client credentials".to_owned(),
                );
                // RFC 6749 §5.2: the schemes the client may authenticate with.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"patd\""),
                );
                response
            }
            ApiError::InsufficientScope(description) => oauth(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                description.to_owned(),
            ),
            ApiError::UnauthorizedClient(description) => oauth(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                description.to_owned(),
            ),
        };
        if response.status() == StatusCode::REQUEST_TIMEOUT {
            // What is left of the body would be read as the next request (RFC 9110 §15.5.9).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(detail);
        response
    }
}

fn dto(status: StatusCode, detail_code: &str, message: &str, cause: Option<String>) -> Response {
    let body = ErrorResponseDto {
        detail_code: detail_code.to_owned(),
        tracking_id: current_tracking_id(),
        messages: vec![ErrorMessageDto::en(message)],
        // A secret pasted into the wrong field is never echoed back.
        causes: cause
            .into_iter()
            .map(|text| ErrorMessageDto::en(patd_core::secret::redact(&text).into_owned()))
            .collect(),
    };
    (status, Json(body)).into_response()
}

/// The 403's one cause: the rights that would allow the call, in their `idn:` form (what
/// `patd identity create --right` takes and what the access token's `rights` claim lists).
fn rights_needed(accepted: &[patd_core::rights::Right]) -> Option<String> {
    let names: Vec<&str> = accepted.iter().map(|right| right.idn()).collect();
    match names.as_slice() {
        [] => None,
        [only] => Some(format!("requires the right {only}")),
        many => Some(format!("requires one of the rights {}", many.join(", "))),
    }
}

/// The 403's one cause when a scope would reach past the calling token.
fn wider(widening: patd_core::authz::Widening) -> String {
    match widening {
        patd_core::authz::Widening::Rights(missing) => format!(
            "the scope would grant {}, which the calling token does not hold",
            missing.idn_names().join(", ")
        ),
        patd_core::authz::Widening::WholeScope => format!(
            "{} may be given only by a token whose own scope holds it",
            patd_core::scope::SCOPE_ALL
        ),
    }
}

fn oauth(status: StatusCode, error: &str, description: String) -> Response {
    let body = OAuthErrorBody {
        error: error.to_owned(),
        error_description: description,
    };
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(err: crate::service::ServiceError) -> ApiError {
        match err {
            crate::service::ServiceError::Rule(rule) => rule.into(),
            crate::service::ServiceError::Store(store) => store.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_never_quotes_what_the_client_sent() {
        let sent = "name eq \"<client text>\"";
        for error in [
            ApiError::Syntax(format!("'{sent}' is not a filter")),
            ApiError::Content(Rule::IdentityNameTaken(sent.to_owned())),
            ApiError::InvalidRequest(sent.to_owned()),
        ] {
            assert!(!error.log_detail().contains("<client text>"), "{error:?}");
        }
        let internal = ApiError::Internal(anyhow::anyhow!("the database is unavailable"));
        assert_eq!(ApiError::Forbidden(&[]).log_detail(), "forbidden");
        assert!(internal.log_detail().contains("unavailable"));
    }
}
