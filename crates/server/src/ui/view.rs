//! The pages' templates (askama, checked at compile time, escaping HTML) and how a page, or an
//! `ApiError`, becomes a response. An error is shown in the words of the contract's body.

use crate::error::{ApiError, ErrorDetail};
use crate::middleware::OwnAnswer;
use askama::Template;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use patd_proto::ErrorResponseDto;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// The header of a signed-in page: who, which pages the rights open, and the CSRF token of the
/// sign-out form.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    pub name: String,
    pub csrf: String,
    pub all_tokens: bool,
    pub audit: bool,
    pub webhooks: bool,
}

/// A page with a heading, some lines and a way on: errors, refusals, notices.
#[derive(Template)]
#[template(path = "ui/message.html")]
pub(crate) struct MessagePage {
    pub nav: Option<Nav>,
    pub heading: String,
    pub lines: Vec<String>,
    pub tracking_id: Option<String>,
    pub next_href: &'static str,
    pub next_label: &'static str,
}

/// A page as an HTML response with `status`. The answer is the page's own, so the contract's
/// mapping of framework refusals leaves it alone.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response();
            response.extensions_mut().insert(OwnAnswer);
            response
        }
        Err(err) => {
            let mut response =
                (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response();
            response
                .extensions_mut()
                .insert(ErrorDetail(format!("template: {err}")));
            response
        }
    }
}

/// A refusal or failure page with `status`.
pub(crate) fn message(
    status: StatusCode,
    nav: Option<Nav>,
    heading: &str,
    lines: Vec<String>,
) -> Response {
    let signed_in = nav.is_some();
    let page = MessagePage {
        nav,
        heading: heading.to_owned(),
        lines,
        tracking_id: None,
        next_href: if signed_in { "/ui/" } else { "/ui/sign-in" },
        next_label: if signed_in {
            "Back to your tokens"
        } else {
            "Sign in"
        },
    };
    render(status, &page)
}

/// The 403 of a page the caller may not open, or a form sent without its CSRF token.
pub(crate) fn not_allowed(nav: Option<Nav>, why: &str) -> Response {
    message(
        StatusCode::FORBIDDEN,
        nav,
        "Not allowed",
        vec![why.to_owned()],
    )
}

/// An unknown page under `/ui/`.
pub(crate) async fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        None,
        "Page not found",
        vec!["There is no such page.".to_owned()],
    )
}

/// A method a page does not take (a PUT, a POST to a page that only shows).
pub(crate) async fn method_not_allowed() -> Response {
    message(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "That did not work",
        vec!["This page does not take that kind of request.".to_owned()],
    )
}

/// What an `ApiError` says to a person: its status, and the causes (or the message) of the
/// contract's body that the API would have sent, so both speak the same words.
pub(crate) async fn error_text(
    err: ApiError,
) -> (StatusCode, Vec<String>, Option<ErrorDetail>, String) {
    let response = err.into_response();
    let status = response.status();
    let detail = response.extensions().get::<ErrorDetail>().cloned();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let (lines, tracking) = match serde_json::from_slice::<ErrorResponseDto>(&body) {
        Ok(dto) => {
            let lines: Vec<String> = if dto.causes.is_empty() {
                dto.messages
                    .into_iter()
                    .map(|message| message.text)
                    .collect()
            } else {
                dto.causes.into_iter().map(|cause| cause.text).collect()
            };
            (lines, dto.tracking_id)
        }
        Err(_) => (Vec::new(), crate::error::current_tracking_id()),
    };
    (status, lines, detail, tracking)
}

/// An `ApiError` as a page.
pub(crate) async fn error_page(err: ApiError, nav: Option<Nav>) -> Response {
    let (status, mut lines, detail, tracking) = error_text(err).await;
    let heading = match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::BAD_REQUEST => "That did not work",
        status if status.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    if lines.is_empty() {
        lines.push("Try again in a moment.".to_owned());
    }
    let signed_in = nav.is_some();
    let page = MessagePage {
        nav,
        heading: heading.to_owned(),
        lines,
        tracking_id: status.is_server_error().then_some(tracking),
        next_href: if signed_in { "/ui/" } else { "/ui/sign-in" },
        next_label: if signed_in {
            "Back to your tokens"
        } else {
            "Sign in"
        },
    };
    let mut response = render(status, &page);
    if let Some(detail) = detail {
        response.extensions_mut().insert(detail);
    }
    response
}

/// A time as the pages show it: `2026-12-04 10:00 UTC`.
pub(crate) fn when(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A PAT's expiry and its badge (text, class): expiring within 7 days, expired, never.
pub(crate) fn expiry(
    date: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (String, Option<(&'static str, &'static str)>) {
    match date {
        None => ("Never".to_owned(), Some(("Never expires", "never"))),
        Some(date) if date <= now => (when(date), Some(("Expired", "expired"))),
        Some(date) if date - now <= time::Duration::days(7) => {
            (when(date), Some(("Expires soon", "soon")))
        }
        Some(date) => (when(date), None),
    }
}

/// The refusal of an address no page reads: a 400 page, not the framework's plain text.
fn unreadable_address() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        None,
        "That did not work",
        vec!["The address could not be read.".to_owned()],
    )
}

/// A page's one path parameter (a PAT's or a webhook's id, an asset's name).
pub(crate) struct PageId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PageId(id)),
            Err(_) => Err(unreadable_address()),
        }
    }
}

/// A page's query string read into `T`; a field twice, or one that does not fit, is a 400 page.
pub(crate) struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(PageQuery)
            .map_err(|_| unreadable_address())
    }
}
