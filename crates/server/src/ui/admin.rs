//! The pages that need rights beyond one's own tokens: every PAT (filter, sort, page), the audit
//! log, and webhooks. Each asks the use case the API runs, which refuses a caller without the
//! right (403, the same rights the API names).

use super::session::{Form, Visitor};
use super::tokens::{row, DeletePage, Row};
use super::view::{self, Nav, PageId, PageQuery};
use crate::error::ApiError;
use crate::routes::{audit, pats, webhooks};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use patd_core::audit::{ActorType, EventType};
use patd_core::authz::OwnerParam;
use patd_core::listing::ListParams;
use patd_core::rights::Right;
use patd_proto::CreateWebhookRequest;
use serde::Deserialize;
use time::OffsetDateTime;

/// Rows per page of the admin tables.
const PAGE: u64 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    filters: Option<String>,
    sorters: Option<String>,
    offset: Option<String>,
}

impl ListQuery {
    fn offset(&self) -> u64 {
        self.offset
            .as_deref()
            .and_then(|raw| raw.parse().ok())
            .unwrap_or(0)
    }

    /// This query at another offset, as a link.
    fn at(&self, path: &str, offset: u64) -> String {
        let mut pairs = Vec::new();
        for (key, value) in [("filters", &self.filters), ("sorters", &self.sorters)] {
            if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
                pairs.push((key, value.to_owned()));
            }
        }
        pairs.push(("offset", offset.to_string()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{path}?{query}")
    }
}

#[derive(Template)]
#[template(path = "ui/admin_tokens.html")]
struct AllTokensPage {
    nav: Option<Nav>,
    filters: String,
    sorters: String,
    sort_options: Vec<(&'static str, &'static str)>,
    error: Option<String>,
    summary: String,
    rows: Vec<Row>,
    previous: Option<String>,
    next: Option<String>,
}

const SORTS: [(&str, &str); 8] = [
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("-lastUsed", "Last used, recent first"),
    ("lastUsed", "Last used, longest ago first"),
    ("expirationDate", "Expiring soonest first"),
    ("-expirationDate", "Expiring latest first"),
];

/// 400 for a page that shows what was wrong with its query or form, else 200.
fn status_of(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// The first cause of a 400 (a filter that does not parse, say), shown above an empty table;
/// anything else is a page of its own.
async fn bad_query(err: ApiError, nav: Nav) -> Result<String, Response> {
    if matches!(err, ApiError::Syntax(_) | ApiError::Content(_)) {
        Ok(view::error_text(err).await.1.join(" "))
    } else {
        Err(view::error_page(err, Some(nav)).await)
    }
}

/// `GET /ui/admin/tokens`: the API's list of the whole tenant (`idn:all-personal-access-tokens:read`).
pub(crate) async fn tokens(
    State(state): State<AppState>,
    visitor: Visitor,
    PageQuery(query): PageQuery<ListQuery>,
) -> Response {
    let offset = query.offset();
    let sorters = query
        .sorters
        .clone()
        .filter(|sorters| !sorters.is_empty())
        .unwrap_or_else(|| "name".to_owned());
    let limit = PAGE.to_string();
    let offset_text = offset.to_string();
    let params = ListParams {
        filters: query
            .filters
            .as_deref()
            .filter(|text| !text.trim().is_empty()),
        sorters: Some(&sorters),
        limit: Some(&limit),
        offset: Some(&offset_text),
        count: Some("true"),
    };
    let mut page = AllTokensPage {
        nav: Some(visitor.nav()),
        filters: query.filters.clone().unwrap_or_default(),
        sort_options: SORTS.to_vec(),
        sorters: sorters.clone(),
        error: None,
        summary: String::new(),
        rows: Vec::new(),
        previous: None,
        next: None,
    };
    match pats::page_as(&state, &visitor.caller, OwnerParam::Everyone, &params).await {
        Ok(found) => {
            let now = OffsetDateTime::now_utc();
            let total = found.total.unwrap_or(0);
            page.rows = found.items.iter().map(|owned| row(owned, now)).collect();
            page.summary = match page.rows.len() {
                0 => "No tokens match.".to_owned(),
                shown => format!(
                    "Showing {} to {} of {total}.",
                    offset + 1,
                    offset + shown as u64
                ),
            };
            page.previous =
                (offset > 0).then(|| query.at("/ui/admin/tokens", offset.saturating_sub(PAGE)));
            page.next =
                (offset + PAGE < total).then(|| query.at("/ui/admin/tokens", offset + PAGE));
        }
        Err(err) => match bad_query(err, visitor.nav()).await {
            Ok(cause) => page.error = Some(cause),
            Err(refused) => return refused,
        },
    }
    view::render(status_of(&page.error), &page)
}

struct EventRow {
    time: String,
    kind: String,
    via_web: bool,
    actor: String,
    target: String,
    outcome: &'static str,
    source: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    filters: String,
    error: Option<String>,
    rows: Vec<EventRow>,
    newer: Option<String>,
    older: Option<String>,
}

/// `GET /ui/admin/audit`: the API's audit list, newest first, for `idn:audit-events:read`.
pub(crate) async fn audit(
    State(state): State<AppState>,
    visitor: Visitor,
    PageQuery(query): PageQuery<ListQuery>,
) -> Response {
    // The API shows a user the events of their own tokens; this page is the whole trail.
    if !visitor.caller.rights.contains(Right::AuditRead) {
        return view::error_page(
            ApiError::Forbidden(&[Right::AuditRead]),
            Some(visitor.nav()),
        )
        .await;
    }
    let offset = query.offset();
    let limit = PAGE.to_string();
    let offset_text = offset.to_string();
    let params = ListParams {
        filters: query
            .filters
            .as_deref()
            .filter(|text| !text.trim().is_empty()),
        sorters: Some("-time"),
        limit: Some(&limit),
        offset: Some(&offset_text),
        count: None,
    };
    let mut page = AuditPage {
        nav: Some(visitor.nav()),
        filters: query.filters.clone().unwrap_or_default(),
        error: None,
        rows: Vec::new(),
        newer: None,
        older: None,
    };
    match audit::list_as(&state, &visitor.caller, &params).await {
        Ok(found) => {
            let full = found.items.len() as u64 == PAGE;
            page.rows = found
                .items
                .iter()
                .map(|event| EventRow {
                    time: view::when(event.time),
                    kind: event.kind.as_str().to_owned(),
                    via_web: event.details.get("via").and_then(|via| via.as_str()) == Some("web"),
                    actor: match (&event.actor.name, &event.actor.id, event.actor.kind) {
                        (Some(name), _, _) => name.clone(),
                        (None, Some(id), _) => id.clone(),
                        (None, None, ActorType::System) => "patd".to_owned(),
                        (None, None, _) => "anonymous".to_owned(),
                    },
                    target: event
                        .target
                        .as_ref()
                        .map(|target| target.name.clone().unwrap_or_else(|| target.id.clone()))
                        .unwrap_or_default(),
                    outcome: event.outcome.as_str(),
                    source: event.source_ip.clone().unwrap_or_default(),
                })
                .collect();
            page.newer =
                (offset > 0).then(|| query.at("/ui/admin/audit", offset.saturating_sub(PAGE)));
            page.older = full.then(|| query.at("/ui/admin/audit", offset + PAGE));
        }
        Err(err) => match bad_query(err, visitor.nav()).await {
            Ok(cause) => page.error = Some(cause),
            Err(refused) => return refused,
        },
    }
    view::render(status_of(&page.error), &page)
}

struct WebhookRow {
    id: String,
    url: String,
    events: Vec<String>,
    description: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/webhooks.html")]
struct WebhooksPage {
    nav: Option<Nav>,
    error: Option<String>,
    rows: Vec<WebhookRow>,
    events: Vec<&'static str>,
    url: String,
    description: String,
}

/// The kinds a webhook can hear of, and `*` for all.
fn webhook_events() -> Vec<&'static str> {
    let mut events = vec!["*"];
    events.extend(
        EventType::ALL
            .into_iter()
            .filter(|kind| kind.is_notified())
            .map(EventType::as_str),
    );
    events
}

async fn webhooks_page(
    state: &AppState,
    visitor: &Visitor,
    form: Option<&Form>,
    error: Option<String>,
) -> Response {
    let hooks = match webhooks::list_as(state, &visitor.caller).await {
        Ok(hooks) => hooks,
        Err(err) => return view::error_page(err, Some(visitor.nav())).await,
    };
    let status = status_of(&error);
    let field = |name: &str| {
        form.and_then(|form| form.get(name))
            .unwrap_or("")
            .to_owned()
    };
    view::render(
        status,
        &WebhooksPage {
            nav: Some(visitor.nav()),
            error,
            rows: hooks
                .iter()
                .map(|hook| WebhookRow {
                    id: hook.id.clone(),
                    url: hook.url.as_str().to_owned(),
                    events: hook.events.entries().to_vec(),
                    description: hook.description.clone(),
                    created: view::when(hook.created),
                })
                .collect(),
            events: webhook_events(),
            url: field("url"),
            description: field("description"),
        },
    )
}

/// `GET /ui/admin/webhooks` (`patd:webhooks:manage`).
pub(crate) async fn webhooks(State(state): State<AppState>, visitor: Visitor) -> Response {
    webhooks_page(&state, &visitor, None, None).await
}

#[derive(Template)]
#[template(path = "ui/webhook_created.html")]
struct WebhookCreatedPage {
    nav: Option<Nav>,
    url: String,
    secret: String,
}

/// `POST /ui/admin/webhooks`: the API's create; the signing secret is shown once.
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    visitor: Visitor,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    let description = form
        .get("description")
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned);
    let request = CreateWebhookRequest {
        url: form.get("url").map(str::to_owned),
        events: Some(form.all("event")),
        description,
    };
    match webhooks::create_as(&state, &visitor.caller, request).await {
        Ok(created) => view::render(
            StatusCode::OK,
            &WebhookCreatedPage {
                nav: Some(visitor.nav()),
                url: created.url,
                secret: created.secret,
            },
        ),
        Err(err) => match bad_query(err, visitor.nav()).await {
            Ok(cause) => webhooks_page(&state, &visitor, Some(&form), Some(cause)).await,
            Err(page) => page,
        },
    }
}

pub(crate) async fn delete_webhook_page(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
) -> Response {
    let hooks = match webhooks::list_as(&state, &visitor.caller).await {
        Ok(hooks) => hooks,
        Err(err) => return view::error_page(err, Some(visitor.nav())).await,
    };
    match hooks.iter().find(|hook| hook.id == id) {
        Some(hook) => view::render(
            StatusCode::OK,
            &DeletePage {
                nav: Some(visitor.nav()),
                name: format!("the webhook to {}", hook.url.as_str()),
                action: format!("/ui/admin/webhooks/{}/delete", hook.id),
                cancel: "/ui/admin/webhooks",
                consequence: "patd stops sending it events, and drops the deliveries still due.",
            },
        ),
        None => view::error_page(ApiError::NotFound, Some(visitor.nav())).await,
    }
}

pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    visitor: Visitor,
    PageId(id): PageId,
    form: Form,
) -> Response {
    if let Err(refused) = visitor.check(&form) {
        return refused;
    }
    match webhooks::delete_as(&state, &visitor.caller, &id).await {
        Ok(()) => Redirect::to("/ui/admin/webhooks").into_response(),
        Err(err) => view::error_page(err, Some(visitor.nav())).await,
    }
}
