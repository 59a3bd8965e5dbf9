//! The page's stylesheet and copy script, compiled into the binary: one file to ship, and
//! `script-src 'self'` / `style-src 'self'` can name them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const APP_CSS: &str = include_str!("../../assets/app.css");
const COPY_JS: &str = include_str!("../../assets/copy.js");

pub(crate) async fn serve(super::view::PageId(file): super::view::PageId) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "copy.js" => (COPY_JS, "text/javascript; charset=utf-8"),
        _ => return super::view::not_found().await,
    };
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            // They change only with the binary; an hour keeps an upgrade's look fresh.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response();
    response
        .extensions_mut()
        .insert(crate::middleware::OwnAnswer);
    response
}
