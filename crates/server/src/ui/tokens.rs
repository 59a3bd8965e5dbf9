//! My tokens: the table with its badges, and create, rename, rotate and delete, each through the
//! use case the API runs (`routes::pats`, `routes::rotate`), so the rules, rights and audit
//! events are the API's.

use super::session::{Form, Visitor};
use super::view::{self, Nav, PageId};
use crate::error::ApiError;
use crate::routes::{pats, rotate};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use patd_core::authz::OwnerParam;
use patd_core::expiry::Family;
use patd_core::listing::ListParams;
use patd_core::rights::Right;
use patd_core::scope::{SCOPE_ALL, SCOPE_DEFAULT, SCOPE_SELF_ROTATE};
use patd_proto::RotatePersonalAccessTokenRequest;
use patd_proto::{CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse};
use patd_store::OwnedPat;
use time::{Duration, OffsetDateTime};

/// The family the page speaks: it can make tokens that never expire.
const FAMILY: Family = Family::NeverExpiresAware;

pub(crate) struct Row {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub managed: bool,
    pub scopes: Vec<String>,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub badge: Option<(&'static str, &'static str)>,
}

/// A PAT as a table row.
pub(crate) fn row(owned: &OwnedPat, now: OffsetDateTime) -> Row {
    let pat = &owned.pat;
    let (expires, badge) = view::expiry(pat.expiry.date(), now);
    Row {
        id: pat.id.as_str().to_owned(),
        name: pat.name.as_str().to_owned(),
        owner: owned.owner_name.clone(),
        managed: pat.managed,
        scopes: pat.scope.entries().to_vec(),
        created: view::when(pat.created),
        last_used: pat.last_used.map_or_else(|| "Never".to_owned(), view::when),
        expires,
        badge,
    }
}

#[derive(Template)]
#[template(path = "ui/tokens.html")]
struct TokensPage {
    nav: Option<Nav>,
    rows: Vec<Row>,
    notice: Option<&'static str>,
}

/// `GET /ui/`: the caller's own tokens, by name.
pub(crate) async fn list(State(state): State<AppState>, visitor: Visitor) -> Response {
    let params = ListParams {
        filters: None,
        sorters: Some("name"),
        limit: Some("250"),
        offset: None,
        count: None,
    };
    match pats::page_as(&state, &visitor.caller, OwnerParam::Me, &params).await {
        Ok(page) => {
            let now = OffsetDateTime::now_utc();
            view::render(
                StatusCode::OK,
                &TokensPage {
                    nav: Some(visitor.nav()),
                    rows: page.items.iter().map(|owned| row(owned, now)).collect(),
                    notice: None,
                },
            )
        }
        Err(err) => view::error_page(err, Some(visitor.nav())).await,
    }
}

pub(crate) struct ScopeChoice {
    pub value: String,
    pub note: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "ui/new_token.html")]
struct NewTokenPage {
    nav: Option<Nav>,
    error: Option<String>,
    name: String,
    scopes: Vec<ScopeChoice>,
    expiry_options: Vec<(String, String)>,
    expires: String,
    expires_on: String,
    validity_options: Vec<(String, String)>,
    validity: String,
}

/// What a scope may hold for this identity: the two SailPoint sets, self-rotation, and each right
/// the identity holds.
fn scope_choices(visitor: &Visitor, checked: &[String]) -> Vec<ScopeChoice> {
    let mut choices = vec![
        (SCOPE_ALL.to_owned(), "every right you hold, now and later"),
        (SCOPE_DEFAULT.to_owned(), "reads your own tokens"),
        (
            SCOPE_SELF_ROTATE.to_owned(),
            "lets the token rotate its own secret",
        ),
    ];
    for right in Right::ALL {
        if visitor.caller.rights.contains(right) {
            choices.push((right.idn().to_owned(), "one right"));
        }
    }
    choices
        .into_iter()
        .map(|(value, note)| ScopeChoice {
            checked: checked.contains(&value),
            value,
            note,
        })
        .collect()
}

/// The expiry presets the lifetime policy allows: 7, 30, 60, 90 days, a date, never.
fn expiry_options(state: &AppState) -> Vec<(String, String)> {
    let max_days = state.config.lifetime_policy.0;
    let mut options: Vec<(String, String)> = [7u32, 30, 60, 90]
        .into_iter()
        .filter(|days| max_days.is_none_or(|max| *days <= max))
        .map(|days| (days.to_string(), format!("In {days} days")))
        .collect();
    options.push(("date".to_owned(), "On a date".to_owned()));
    if max_days.is_none() {
        options.push(("never".to_owned(), "Never".to_owned()));
    }
    options
}

fn validity_options() -> Vec<(String, String)> {
    [
        (900, "15 minutes"),
        (3600, "1 hour"),
        (43_200, "12 hours (the longest)"),
    ]
    .into_iter()
    .map(|(seconds, label)| (seconds.to_string(), label.to_owned()))
    .collect()
}

fn new_token_page(
    state: &AppState,
    visitor: &Visitor,
    form: Option<&Form>,
    error: Option<String>,
) -> NewTokenPage {
    let field = |name: &str, default: &str| {
        form.and_then(|form| form.get(name))
            .unwrap_or(default)
            .to_owned()
    };
    let checked = form.map(|form| form.all("scope")).unwrap_or_default();
    let options = expiry_options(state);
    let default_expiry = if options.iter().any(|(value, _)| value == "30") {
        "30"
    } else {
        "date"
    };
    NewTokenPage {
        nav: Some(visitor.nav()),
        error,
        name: field("name", ""),
        scopes: scope_choices(visitor, &checked),
        expiry_options: options,
        expires: field("expires", default_expiry),
        expires_on: field("expires_on", ""),
        validity_options: validity_options(),
        validity: field("validity", "43200"),
    }
}

pub(crate) async fn new_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    view::render(
        StatusCode::OK,
        &new_token_page(&state, &visitor, None, None),
    )
}

#[derive(Template)]
#[template(path = "ui/secret.html")]
struct SecretPage {
    nav: Option<Nav>,
    name: String,
    client_id: String,
    secret: String,
    expires: String,
}

/// The one page that shows a secret: the answer to the POST itself, never stored by a cache.
fn secret_page(visitor: &Visitor, created: CreatePersonalAccessTokenResponse) -> Response {
    let now = OffsetDateTime::now_utc();
    let expires = view::expiry(created.expiration_date, now).0;
    view::render(
        StatusCode::OK,
        &SecretPage {
            nav: Some(visitor.nav()),
            name: created.name,
            client_id: created.id,
            secret: created.secret,
            expires,
        },
    )
}

/// A form's expiry as the create body has it: a date, or never (acknowledged, as the page's
/// choice says so).
fn requested_expiry(
    form: &Form,
    now: OffsetDateTime,
) -> Result<(Option<OffsetDateTime>, Option<bool>), String> {
    match form.get("expires").unwrap_or("30") {
        "never" => Ok((None, Some(true))),
        "date" => {
            let raw = form.get("expires_on").unwrap_or("");
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(raw.trim(), &format)
                .map_err(|_| "Pick an expiry date.".to_owned())?;
            // The token works through the day picked, in UTC.
            let end = day
                .next_day()
                .ok_or_else(|| "Pick an earlier expiry date.".to_owned())?
                .midnight()
                .assume_utc();
            Ok((Some(end), None))
        }
        days => {
            let days: i64 = days
                .parse()
                .ok()
                .filter(|days| [7, 30, 60, 90].contains(days))
                .ok_or_else(|| "Pick when the token expires.".to_owned())?;
            Ok((Some(now + Duration::days(days)), None))
        }
    }
}

/// The first cause of a 400 in the contract's words, or the error page for anything else.
async fn rule_or_page(err: ApiError, visitor: &Visitor) -> Result<String, Response> {
    if matches!(err, ApiError::Syntax(_) | ApiError::Content(_)) {
        let (_, lines, _, _) = view::error_text(err).await;
        Ok(lines.join(" "))
    } else {
        Err(view::error_page(err, Some(visitor.nav())).await)
    }
}

/// `POST /ui/tokens`.
pub(crate) async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    let again = |error: String| {
        view::render(
            StatusCode::BAD_REQUEST,
            &new_token_page(&state, &visitor, Some(&form), Some(error)),
        )
    };
    let now = OffsetDateTime::now_utc();
    let (expiration_date, never) = match requested_expiry(&form, now) {
        Ok(expiry) => expiry,
        Err(error) => return again(error),
    };
    let scopes = form.all("scope");
    let request = CreatePersonalAccessTokenRequest {
        name: form.get("name").map(str::to_owned),
        scope: (!scopes.is_empty()).then_some(scopes),
        access_token_validity_seconds: form.get("validity").and_then(|raw| raw.parse().ok()),
        expiration_date,
        user_aware_token_never_expires: never,
    };
    match pats::create_as(&state, &visitor.caller, FAMILY, request).await {
        Ok(created) => secret_page(&visitor, created),
        Err(err) => match rule_or_page(err, &visitor).await {
            Ok(cause) => again(cause),
            Err(page) => page,
        },
    }
}

/// The caller's PAT `id`, as the use cases would find it (404 for one it may not see).
async fn own(state: &AppState, visitor: &Visitor, id: &str) -> Result<OwnedPat, Response> {
    match pats::modifiable(state, &visitor.caller, id).await {
        Ok(owned) => Ok(owned),
        Err(err) => Err(view::error_page(err, Some(visitor.nav())).await),
    }
}

/// The page `make` builds for the caller's PAT `id`, with `status`, or the error page.
async fn own_page<T: Template>(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    make: impl FnOnce(&OwnedPat, Nav) -> T,
) -> Response {
    match own(state, visitor, id).await {
        Ok(owned) => view::render(status, &make(&owned, visitor.nav())),
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "ui/rename.html")]
struct RenamePage {
    nav: Option<Nav>,
    id: String,
    current: String,
    name: String,
    error: Option<String>,
}

pub(crate) async fn rename_page(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
) -> Response {
    own_page(&state, &visitor, &id, StatusCode::OK, |owned, nav| {
        RenamePage {
            nav: Some(nav),
            id: owned.pat.id.as_str().to_owned(),
            current: owned.pat.name.as_str().to_owned(),
            name: owned.pat.name.as_str().to_owned(),
            error: None,
        }
    })
    .await
}

/// `POST /ui/tokens/{id}/rename`: the API's patch with one `replace` of `/name`.
pub(crate) async fn rename(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    let name = form.get("name").unwrap_or("").to_owned();
    let operations = serde_json::json!([{ "op": "replace", "path": "/name", "value": name }]);
    let err = match pats::patch_as(&state, &visitor.caller, &id, FAMILY, &operations).await {
        Ok(_) => return Redirect::to("/ui/").into_response(),
        Err(err) => err,
    };
    // Only a refused rename needs the PAT again, for the form shown with its cause.
    match rule_or_page(err, &visitor).await {
        Ok(cause) => {
            own_page(
                &state,
                &visitor,
                &id,
                StatusCode::BAD_REQUEST,
                |owned, nav| RenamePage {
                    nav: Some(nav),
                    id: owned.pat.id.as_str().to_owned(),
                    current: owned.pat.name.as_str().to_owned(),
                    name,
                    error: Some(cause),
                },
            )
            .await
        }
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "ui/rotate.html")]
struct RotatePage {
    nav: Option<Nav>,
    id: String,
    name: String,
    error: Option<String>,
}

pub(crate) async fn rotate_page(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
) -> Response {
    own_page(&state, &visitor, &id, StatusCode::OK, |owned, nav| {
        RotatePage {
            nav: Some(nav),
            id: owned.pat.id.as_str().to_owned(),
            name: owned.pat.name.as_str().to_owned(),
            error: None,
        }
    })
    .await
}

/// `POST /ui/tokens/{id}/rotate`: the API's rotation; the new secret is shown once.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    let request = RotatePersonalAccessTokenRequest {
        grace_period_seconds: form.get("grace").and_then(|raw| raw.parse().ok()),
        expiration_date: None,
        revoke_issued_tokens: Some(form.get("revoke_issued_tokens") == Some("true")),
    };
    match rotate::rotate_as(&state, &visitor.caller, &id, request).await {
        Ok(rotated) => secret_page(&visitor, rotated),
        Err(err) => match rule_or_page(err, &visitor).await {
            Ok(cause) => {
                own_page(
                    &state,
                    &visitor,
                    &id,
                    StatusCode::BAD_REQUEST,
                    |owned, nav| RotatePage {
                        nav: Some(nav),
                        id: owned.pat.id.as_str().to_owned(),
                        name: owned.pat.name.as_str().to_owned(),
                        error: Some(cause),
                    },
                )
                .await
            }
            Err(page) => page,
        },
    }
}

#[derive(Template)]
#[template(path = "ui/delete.html")]
pub(crate) struct DeletePage {
    pub nav: Option<Nav>,
    pub name: String,
    pub action: String,
    pub cancel: &'static str,
    /// What deleting it does.
    pub consequence: &'static str,
}

pub(crate) async fn delete_page(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
) -> Response {
    own_page(&state, &visitor, &id, StatusCode::OK, |owned, nav| {
        DeletePage {
            nav: Some(nav),
            name: owned.pat.name.as_str().to_owned(),
            action: format!("/ui/tokens/{}/delete", owned.pat.id.as_str()),
            cancel: "/ui/",
            consequence: "Scripts using it stop working at once, and its access tokens too.",
        }
    })
    .await
}

/// `POST /ui/tokens/{id}/delete`: the API's delete; its tokens stop working at once.
pub(crate) async fn delete(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    match pats::delete_as(&state, &visitor.caller, &id).await {
        Ok(()) => Redirect::to("/ui/").into_response(),
        Err(err) => view::error_page(err, Some(visitor.nav())).await,
    }
}
