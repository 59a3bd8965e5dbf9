//! Who is signed in: the session cookie and its server-side row, the signed-in caller with the
//! identity's own rights, the CSRF check of every form, one-time sign-in links, sign-out, and
//! the pruning of what can no longer sign anyone in. Sessions live in the database, so every
//! node of a deployment knows them.

use super::view::{self, Nav, PageQuery};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{audit, context};
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use patd_core::audit::{AuditEvent, EventType, Target};
use patd_core::authz::Caller;
use patd_core::identity::Identity;
use patd_core::rights::Right;
use patd_core::web::{plan_session, SignInMethod, WebSecret};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The session cookie's name over http; over https it is `__Host-` prefixed, which browsers
/// accept only when Secure, on `/`, for this host alone.
const COOKIE: &str = "patd_session";
/// The cookie of a sign-in form (a link's page, OpenID Connect's start): the form echoes it, so
/// another site cannot sign a browser in as someone else (login CSRF).
pub(crate) const SIGN_IN_COOKIE: &str = "patd_sign_in";
/// Most fields a form may send; every form here has fewer than twenty.
const MAX_FORM_FIELDS: usize = 100;

/// Whether cookies must be Secure: the public URL is https.
pub(crate) fn secure(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

fn cookie_name(state: &AppState, name: &str) -> String {
    if secure(state) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https; `None` clears it.
pub(crate) fn set_cookie(state: &AppState, name: &str, value: Option<&str>) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    let text = match value {
        Some(value) => format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}",
            cookie_name(state, name)
        ),
        None => format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
            cookie_name(state, name)
        ),
    };
    // Every part is ours: names are constants, values are hex.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie(state: &AppState, headers: &HeaderMap, name: &str) -> Option<String> {
    let wanted = cookie_name(state, name);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == wanted)
        .map(|(_, value)| value.to_owned())
}

/// A person signed in to the page: their identity, and the caller they are to the use cases —
/// the identity's own rights, as the token exchange would give a PAT of scope
/// `sp:scopes:all`, and no PAT.
pub(crate) struct Visitor {
    pub identity: Arc<Identity>,
    pub caller: Caller,
    secret: WebSecret,
}

impl Visitor {
    pub fn csrf(&self) -> String {
        self.secret.csrf_token()
    }

    pub fn nav(&self) -> Nav {
        let rights = self.caller.rights;
        Nav {
            name: self.identity.name.as_str().to_owned(),
            csrf: self.csrf(),
            all_tokens: rights.any_of(&[Right::AllRead, Right::AllManage]),
            audit: rights.contains(Right::AuditRead),
            webhooks: rights.contains(Right::WebhooksManage),
        }
    }

    /// The form's CSRF token checked against this session's, in constant time: a refusal page
    /// (403) when it is missing or wrong.
    pub fn check(&self, form: &Form) -> Result<(), Response> {
        match form.get("csrf") {
            Some(token) if self.secret.csrf_matches(token) => Ok(()),
            _ => Err(view::not_allowed(
                Some(self.nav()),
                "The form was sent without this page's security token. Open the page again and retry.",
            )),
        }
    }
}

fn to_sign_in() -> Response {
    Redirect::to("/ui/sign-in").into_response()
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        context::note_web();
        let Some(secret) = cookie(state, &parts.headers, COOKIE)
            .as_deref()
            .and_then(WebSecret::parse)
        else {
            return Err(to_sign_in());
        };
        let digest = secret.digest();
        let session = match state.store.session(&digest).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(ended(state)),
            Err(err) => return Err(view::error_page(err.into(), None).await),
        };
        let now = OffsetDateTime::now_utc();
        let policy = state.config.session_policy;
        if !policy.is_live(&session, now) {
            return Err(ended(state));
        }
        if policy.touch_due(&session, now) {
            if let Err(err) = state
                .store
                .touch_session(&digest, patd_core::to_millis(now))
                .await
            {
                return Err(view::error_page(err.into(), None).await);
            }
        }
        let identity = match state
            .identities
            .get(state.store.as_ref(), &session.identity_id)
            .await
        {
            Ok(Some(identity)) => identity,
            Ok(None) => return Err(ended(state)),
            Err(err) => return Err(view::error_page(err.into(), None).await),
        };
        // A person gets the budget a client does, of their own: the page's requests cost
        // database reads as the API's do.
        if let Err(wait) = state
            .limits
            .check_request(&format!("web:{}", identity.id.as_str()), "web")
            .await
        {
            return Err(view::error_page(ApiError::RateLimited(wait), None).await);
        }
        let caller = Caller {
            identity_id: identity.id.clone(),
            pat_id: None,
            self_rotate: false,
            rights: identity.rights(),
            whole_scope: true,
        };
        Ok(Visitor {
            identity,
            caller,
            secret,
        })
    }
}

/// A session that is over: to sign-in, the cookie cleared.
fn ended(state: &AppState) -> Response {
    let mut response = to_sign_in();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(state, COOKIE, None));
    response
}

/// A form body (`application/x-www-form-urlencoded`), read within the body cap and the body
/// deadline, at most 100 fields.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|kind| {
                kind.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        // Browsers say where a request comes from: a form posted by another site (or a
        // sibling subdomain, which could also have planted cookies over http) is refused
        // whatever it carries. Clients that do not send the header are judged by the token.
        let foreign = request
            .headers()
            .get("sec-fetch-site")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|site| !matches!(site, "same-origin" | "none"));
        if foreign {
            return Err(view::not_allowed(
                None,
                "The form was sent from another site.",
            ));
        }
        if !is_form {
            return Err(view::error_page(
                ApiError::Syntax(
                    "a form must be sent as application/x-www-form-urlencoded".to_owned(),
                ),
                None,
            )
            .await);
        }
        let bytes = match crate::extract::read_body(request, state).await {
            Ok(bytes) => bytes,
            Err(err) => return Err(view::error_page(err, None).await),
        };
        let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&bytes) {
            Ok(fields) => fields,
            Err(_) => {
                return Err(view::error_page(
                    ApiError::Syntax("the form could not be read".to_owned()),
                    None,
                )
                .await)
            }
        };
        if fields.len() > MAX_FORM_FIELDS {
            return Err(view::error_page(
                ApiError::Syntax("the form has too many fields".to_owned()),
                None,
            )
            .await);
        }
        Ok(Form(fields))
    }
}

/// The event of a sign-in or sign-out: the identity acting on itself.
fn session_event(kind: EventType, identity: &Identity, method: SignInMethod) -> AuditEvent {
    let target = Target {
        kind: Target::IDENTITY,
        id: identity.id.as_str().to_owned(),
        name: Some(identity.name.as_str().to_owned()),
        owner_id: Some(identity.id.as_str().to_owned()),
    };
    audit::event(kind, audit::identity_actor(identity), Some(target))
        .detail("method", method.as_str())
}

/// The answer that signs a browser in: the session cookie, the sign-in form's cookie cleared,
/// and on to `to` (a path on this site).
fn signed_in(state: &AppState, secret: &WebSecret, to: &str) -> Response {
    let target = if to.starts_with("/ui/") { to } else { "/ui/" };
    let mut response = Redirect::to(target).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(state, COOKIE, Some(secret.as_str())),
    );
    headers.append(header::SET_COOKIE, set_cookie(state, SIGN_IN_COOKIE, None));
    response
}

/// Opens a session for `identity`, signed in by `method` (OpenID Connect's callback), and
/// answers with its cookie and a redirect to `to`.
pub(crate) async fn start_session(
    state: &AppState,
    identity: &Identity,
    method: SignInMethod,
    to: &str,
) -> Result<Response, ApiError> {
    context::note_web();
    let (session, secret) = plan_session(
        identity.id.clone(),
        method,
        OffsetDateTime::now_utc(),
        &mut rand::rng(),
    );
    let event = session_event(EventType::SessionCreated, identity, method);
    state.store.insert_session(&session, &event).await?;
    audit::committed(&event);
    Ok(signed_in(state, &secret, to))
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignInPage {
    nav: Option<Nav>,
    oidc: bool,
}

pub(crate) async fn sign_in_page(State(state): State<AppState>) -> Response {
    view::render(
        StatusCode::OK,
        &SignInPage {
            nav: None,
            oidc: state.config.oidc.is_some(),
        },
    )
}

#[derive(Template)]
#[template(path = "ui/link.html")]
struct LinkPage {
    nav: Option<Nav>,
    name: String,
    token: String,
    csrf: String,
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    token: Option<String>,
}

fn link_not_valid() -> Response {
    view::message(
        StatusCode::BAD_REQUEST,
        None,
        "Sign-in link not valid",
        vec![
            "This sign-in link was already used, has expired, or was never made.".to_owned(),
            "Ask an administrator for a new one.".to_owned(),
        ],
    )
}

/// Whom a presented link signs in now, if anyone.
async fn link_identity(
    state: &AppState,
    raw: Option<&str>,
) -> Result<Option<(WebSecret, Arc<Identity>)>, ApiError> {
    let Some(secret) = raw.and_then(WebSecret::parse) else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let Some(identity_id) = state.store.sign_in_link(&secret.digest(), now).await? else {
        return Ok(None);
    };
    let identity = state
        .identities
        .get(state.store.as_ref(), &identity_id)
        .await?;
    Ok(identity.map(|identity| (secret, identity)))
}

/// `GET /ui/sign-in/link?token=…`: names whom the link signs in and asks for a press of the
/// button. A GET never uses the link up, so a mail scanner that follows it does not burn it.
pub(crate) async fn link_page(
    State(state): State<AppState>,
    PageQuery(query): PageQuery<LinkQuery>,
) -> Response {
    context::note_web();
    let (secret, identity) = match link_identity(&state, query.token.as_deref()).await {
        Ok(Some(found)) => found,
        Ok(None) => return link_not_valid(),
        Err(err) => return view::error_page(err, None).await,
    };
    let form_token = WebSecret::generate(&mut rand::rng());
    let mut response = view::render(
        StatusCode::OK,
        &LinkPage {
            nav: None,
            name: identity.name.as_str().to_owned(),
            token: secret.as_str().to_owned(),
            csrf: form_token.as_str().to_owned(),
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SIGN_IN_COOKIE, Some(form_token.as_str())),
    );
    response
}

/// Whether a sign-in form's `csrf` field is the value of its cookie (compared in constant time).
pub(crate) fn sign_in_form_matches(state: &AppState, headers: &HeaderMap, form: &Form) -> bool {
    match (cookie(state, headers, SIGN_IN_COOKIE), form.get("csrf")) {
        (Some(expected), Some(sent)) => patd_core::web::same_token(&expected, sent),
        _ => false,
    }
}

/// `POST /ui/sign-in/link`: uses the link up and opens the session, in one transaction.
pub(crate) async fn redeem_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    context::note_web();
    if let Err(refused) = sign_in_budget(&state).await {
        return refused;
    }
    if !sign_in_form_matches(&state, &headers, &form) {
        return view::not_allowed(
            None,
            "The sign-in form was sent without its security token. Open the link again.",
        );
    }
    let (link, identity) = match link_identity(&state, form.get("token")).await {
        Ok(Some(found)) => found,
        Ok(None) => return link_not_valid(),
        Err(err) => return view::error_page(err, None).await,
    };
    let (session, secret) = plan_session(
        identity.id.clone(),
        SignInMethod::Link,
        OffsetDateTime::now_utc(),
        &mut rand::rng(),
    );
    let event = session_event(EventType::SessionCreated, &identity, SignInMethod::Link);
    match state
        .store
        .redeem_sign_in_link(&link.digest(), &session, &event)
        .await
    {
        Ok(true) => {
            audit::committed(&event);
            end_previous(&state, &headers).await;
            signed_in(&state, &secret, "/ui/")
        }
        // Used by another request since it was read.
        Ok(false) => link_not_valid(),
        Err(err) => view::error_page(err.into(), None).await,
    }
}

/// Sign-in attempts from one address share a budget: each costs database reads.
pub(crate) async fn sign_in_budget(state: &AppState) -> Result<(), Response> {
    let address = context::with_request(|request| request.client_ip)
        .flatten()
        .map_or_else(String::new, |ip| ip.to_string());
    match state
        .limits
        .check_request(&format!("sign-in:{address}"), "web-sign-in")
        .await
    {
        Ok(()) => Ok(()),
        Err(wait) => Err(view::error_page(ApiError::RateLimited(wait), None).await),
    }
}

/// Ends the session the browser had before it signed in again, so that no row outlives the
/// cookie that was replaced.
pub(crate) async fn end_previous(state: &AppState, headers: &HeaderMap) {
    let Some(old) = cookie(state, headers, COOKIE)
        .as_deref()
        .and_then(WebSecret::parse)
    else {
        return;
    };
    let Ok(Some(session)) = state.store.session(&old.digest()).await else {
        return;
    };
    let Ok(Some(identity)) = state
        .identities
        .get(state.store.as_ref(), &session.identity_id)
        .await
    else {
        return;
    };
    let event = session_event(EventType::SessionEnded, &identity, session.method);
    if let Ok(true) = state.store.delete_session(&old.digest(), &event).await {
        audit::committed(&event);
    }
}

#[derive(Template)]
#[template(path = "ui/sign_out.html")]
struct SignOutPage {
    nav: Option<Nav>,
}

pub(crate) async fn sign_out_page(visitor: Visitor) -> Response {
    view::render(
        StatusCode::OK,
        &SignOutPage {
            nav: Some(visitor.nav()),
        },
    )
}

/// `POST /ui/sign-out`: the session row is deleted, so its cookie opens nothing on any node.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    let session = state.store.session(&visitor.secret.digest()).await;
    let method = match session {
        Ok(Some(session)) => session.method,
        Ok(None) => return ended(&state),
        Err(err) => return view::error_page(err.into(), Some(visitor.nav())).await,
    };
    let event = session_event(EventType::SessionEnded, &visitor.identity, method);
    match state
        .store
        .delete_session(&visitor.secret.digest(), &event)
        .await
    {
        Ok(deleted) => {
            if deleted {
                audit::committed(&event);
            }
            ended(&state)
        }
        Err(err) => view::error_page(err.into(), Some(visitor.nav())).await,
    }
}

/// How often sessions, links and logins that can sign no one in are deleted.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Every node prunes; the deletes are idempotent.
pub(crate) fn prune_forever(state: AppState) {
    tokio::spawn(async move {
        let mut ticks = crate::state::housekeeping(PRUNE_EVERY);
        loop {
            ticks.tick().await;
            let now = OffsetDateTime::now_utc();
            let policy = state.config.session_policy;
            let pruned = state
                .store
                .prune_web(
                    policy.idle_before(now),
                    policy.begun_before(now),
                    now - time::Duration::days(1),
                    now - time::Duration::minutes(10),
                )
                .await;
            match pruned {
                Ok(count) if count > 0 => tracing::debug!(count, "pruned web sessions and links"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not prune web sessions"),
            }
        }
    });
}
