//! What the server knows of the request in hand, for the error bodies, the request log and the
//! audit trail: its tracking id, the client's address and user agent, and the PAT it
//! authenticated with once that is known.

use axum::http::HeaderValue;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// One request's context, set by the tracking middleware for the handler's task.
#[derive(Debug)]
pub(crate) struct RequestContext {
    pub tracking_id: String,
    /// The client's address: the peer, or what a trusted proxy reported (`--trusted-proxies`).
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent` header as sent; only ever stored, length-bounded, in audit events.
    pub user_agent: Option<HeaderValue>,
    /// The client id (PAT id) the request authenticated with, for the request log.
    pub client_id: OnceLock<String>,
    /// Set when a person signed in to the web page makes the request: its audit events say
    /// `details.via = "web"`.
    pub via_web: OnceLock<()>,
}

tokio::task_local! {
    pub(crate) static REQUEST: Arc<RequestContext>;
}

/// Runs `read` on the current request's context, if there is one.
pub(crate) fn with_request<T>(read: impl FnOnce(&RequestContext) -> T) -> Option<T> {
    REQUEST.try_with(|context| read(context)).ok()
}

/// Notes the client id the current request authenticated with.
pub(crate) fn note_client_id(id: &str) {
    with_request(|context| {
        context.client_id.get_or_init(|| id.to_owned());
    });
}

/// Notes that the current request comes from the web page.
pub(crate) fn note_web() {
    with_request(|context| {
        context.via_web.get_or_init(|| ());
    });
}
