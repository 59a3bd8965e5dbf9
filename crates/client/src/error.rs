//! The client's error: typed by status, carrying the server's body.

use patd_proto::{ErrorResponseDto, OAuthErrorBody};
use reqwest::StatusCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client was built wrong (no credentials, a bad base URL).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach the server")]
    Transport(#[source] reqwest::Error),
    /// 400 on the API.
    #[error("bad request (400): {}", describe(.0))]
    BadRequest(ErrorResponseDto),
    /// 401 on the API: the bearer token was refused.
    #[error("unauthorized (401): {0}")]
    Unauthorized(String),
    /// 400 or 401 from the token endpoint (RFC 6749 §5.2).
    #[error("token exchange refused ({status}): {} ({})", .body.error, .body.error_description)]
    OAuth { status: u16, body: OAuthErrorBody },
    #[error("forbidden (403): {}", describe(.0))]
    Forbidden(ErrorResponseDto),
    #[error("not found (404): {}", describe(.0))]
    NotFound(ErrorResponseDto),
    /// 429 after the retries ran out.
    #[error("rate limited (429); retry after {} s", .retry_after.map_or(0, |d| d.as_secs()))]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, or another status with the contract's body.
    #[error("server error ({status}): {}", describe(.body))]
    Server { status: u16, body: ErrorResponseDto },
    /// Any other answer, with its raw body.
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
    /// A success body that could not be read.
    #[error("could not read the answer: {0}")]
    Decode(String),
}

/// What an error body says, in one line: its causes (the contract gives one per error), or its
/// message when it has none. Messages end in a period and causes do not; the period goes, so
/// that the line reads as one sentence after the status.
fn describe(body: &ErrorResponseDto) -> String {
    let texts: Vec<&str> = if body.causes.is_empty() {
        body.messages
            .iter()
            .take(1)
            .map(|message| message.text.as_str())
            .collect()
    } else {
        body.causes
            .iter()
            .map(|cause| cause.text.as_str())
            .collect()
    };
    let texts: Vec<&str> = texts
        .into_iter()
        .map(|text| text.trim().trim_end_matches('.'))
        .filter(|text| !text.is_empty())
        .collect();
    if texts.is_empty() {
        body.detail_code.clone()
    } else {
        texts.join("; ")
    }
}

impl Error {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::BadRequest(_) => Some(400),
            Error::Unauthorized(_) => Some(401),
            Error::OAuth { status, .. } => Some(*status),
            Error::Forbidden(_) => Some(403),
            Error::NotFound(_) => Some(404),
            Error::RateLimited { .. } => Some(429),
            Error::Server { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Config(_) | Error::Transport(_) | Error::Decode(_) => None,
        }
    }

    /// The server's ErrorResponseDto, for the statuses that carry one.
    pub fn body(&self) -> Option<&ErrorResponseDto> {
        match self {
            Error::BadRequest(body) | Error::Forbidden(body) | Error::NotFound(body) => Some(body),
            Error::Server { body, .. } => Some(body),
            _ => None,
        }
    }

    pub(crate) fn from_status(
        status: StatusCode,
        body: &str,
        retry_after: Option<Duration>,
    ) -> Error {
        let code = status.as_u16();
        if let Ok(oauth) = serde_json::from_str::<OAuthErrorBody>(body) {
            if matches!(code, 400 | 401) {
                return Error::OAuth {
                    status: code,
                    body: oauth,
                };
            }
        }
        if code == 401 {
            let text = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|value| {
                    value
                        .get("error")
                        .and_then(|e| e.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| body.to_owned());
            return Error::Unauthorized(text);
        }
        if code == 429 {
            return Error::RateLimited { retry_after };
        }
        match serde_json::from_str::<ErrorResponseDto>(body) {
            Ok(dto) => match code {
                400 => Error::BadRequest(dto),
                403 => Error::Forbidden(dto),
                404 => Error::NotFound(dto),
                _ => Error::Server {
                    status: code,
                    body: dto,
                },
            },
            Err(_) => Error::Unexpected {
                status: code,
                body: body.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patd_proto::ErrorMessageDto;

    fn body(message: &str, causes: &[&str]) -> ErrorResponseDto {
        ErrorResponseDto {
            detail_code: "400.1 Bad Request Content".to_owned(),
            tracking_id: "0".repeat(32),
            messages: vec![ErrorMessageDto::en(message)],
            causes: causes
                .iter()
                .map(|cause| ErrorMessageDto::en(*cause))
                .collect(),
        }
    }

    #[test]
    fn an_error_body_reads_as_its_cause_without_stray_punctuation() {
        let cases = [
            (
                body(
                    "The request was semantically invalid.",
                    &["name must not be blank"],
                ),
                "name must not be blank",
            ),
            (
                body("The server did not find it.", &[]),
                "The server did not find it",
            ),
            (body("", &[]), "400.1 Bad Request Content"),
            (body("x.", &["first.", "second"]), "first; second"),
        ];
        for (dto, want) in cases {
            assert_eq!(describe(&dto), want);
            let shown = Error::BadRequest(dto).to_string();
            assert!(!shown.contains(".;") && !shown.ends_with('.'), "{shown}");
        }
    }
}
