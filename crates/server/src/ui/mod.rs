//! The web page (EXTENSIONS E12): server-rendered pages under `/ui/` where people sign in and
//! manage their tokens, through the same use cases, rights and audit trail as the API.
//!
//! The pages work without JavaScript (the copy button is the one script); every response sends
//! a strict Content-Security-Policy; every form carries its session's CSRF token. These routes
//! are not part of the API, so they are not in the OpenAPI document.

// A refusal here is a whole page, built once on its way out: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

/// The pages that need rights: all tokens, the audit log, webhooks.
mod admin;
/// The stylesheet and the script, embedded in the binary.
mod assets;
/// Sign-in (links, and the hook OpenID Connect uses), sessions, sign-out, CSRF.
pub(crate) mod session;
/// My tokens: the table, create, rename, rotate, delete.
mod tokens;
/// The template structs and how a page or an error becomes a response.
mod view;

use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::middleware::map_response;
use axum::response::{Redirect, Response};
use axum::routing::get;
use axum::Router;

/// What every page's response carries: nothing may load from elsewhere, run inline or frame
/// the page; nothing is cached; no address leaves in a `Referer` (a sign-in link's would).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The pages. Merged into the application router beside the API's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(tokens::list))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/sign-in", get(session::sign_in_page))
        .route(
            "/ui/sign-in/link",
            get(session::link_page).post(session::redeem_link),
        )
        .route(
            "/ui/sign-out",
            get(session::sign_out_page).post(session::sign_out),
        )
        .route("/ui/tokens/new", get(tokens::new_page))
        .route("/ui/tokens", axum::routing::post(tokens::create))
        .route(
            "/ui/tokens/{id}/rename",
            get(tokens::rename_page).post(tokens::rename),
        )
        .route(
            "/ui/tokens/{id}/rotate",
            get(tokens::rotate_page).post(tokens::rotate),
        )
        .route(
            "/ui/tokens/{id}/delete",
            get(tokens::delete_page).post(tokens::delete),
        )
        .route("/ui/admin/tokens", get(admin::tokens))
        .route("/ui/admin/audit", get(admin::audit))
        .route(
            "/ui/admin/webhooks",
            get(admin::webhooks).post(admin::create_webhook),
        )
        .route(
            "/ui/admin/webhooks/{id}/delete",
            get(admin::delete_webhook_page).post(admin::delete_webhook),
        )
        .route("/ui/{*rest}", get(view::not_found))
        .method_not_allowed_fallback(view::method_not_allowed)
        .layer(map_response(secure_headers))
}
