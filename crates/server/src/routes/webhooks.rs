//! `/patd/v1/webhooks` (EXTENSIONS E7): webhooks, their deliveries and redelivery, behind
//! `patd:webhooks:manage`.

use super::pats::acting;
use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody, QueryParams};
use crate::openapi::{Always, Bearer, Missing, TooLarge, TooMany};
use crate::state::AppState;
use crate::{audit, outbox};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::audit::{EventType, Target};
use patd_core::authz::Caller;
use patd_core::notify::{parse_description, Subscription, Webhook, WebhookUrl};
use patd_core::rights::Right;
use patd_core::Rule;
use patd_proto::{
    CreateWebhookRequest, CreatedWebhook, DeliveryDto, UpdateWebhookRequest, WebhookDto,
};
use patd_store::Delivery;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(create, list))
        .routes(routes!(read, update, delete))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

fn may_manage(caller: &Caller) -> Result<(), ApiError> {
    if caller.rights.contains(Right::WebhooksManage) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(&[Right::WebhooksManage]))
    }
}

fn dto(hook: &Webhook) -> WebhookDto {
    WebhookDto {
        id: hook.id.clone(),
        url: hook.url.as_str().to_owned(),
        events: hook.events.entries().to_vec(),
        description: hook.description.clone(),
        created: hook.created,
    }
}

fn delivery_dto(delivery: &Delivery) -> DeliveryDto {
    DeliveryDto {
        id: delivery.id.clone(),
        message_id: delivery.message_id.clone(),
        event_type: delivery.event_type.clone(),
        status: delivery.status.clone(),
        attempts: delivery.attempts,
        created: delivery.created,
        next_attempt: (delivery.status == "pending").then_some(delivery.next_attempt),
        last_attempt: delivery.last_attempt,
        last_status: delivery.last_status,
        last_error: delivery.last_error.clone(),
        delivered: delivery.delivered,
    }
}

fn target(hook: &Webhook) -> Target {
    Target {
        kind: Target::WEBHOOK,
        id: hook.id.clone(),
        name: None,
        owner_id: None,
    }
}

async fn found(state: &AppState, id: &str) -> Result<Webhook, ApiError> {
    state.store.webhook(id).await?.ok_or(ApiError::NotFound)
}

/// Adds a webhook, as the API and the web page do; the answer holds its secret.
pub(crate) async fn create_as(
    state: &AppState,
    caller: &Caller,
    request: CreateWebhookRequest,
) -> Result<CreatedWebhook, ApiError> {
    may_manage(caller)?;
    let url = request.url.ok_or(Rule::WebhookUrl)?;
    let hook = Webhook {
        id: patd_core::ids::random_hex_id(&mut rand::rng()),
        url: WebhookUrl::parse(&url, state.config.webhook_allow_private)?,
        events: Subscription::parse(request.events.ok_or(Rule::WebhookEvents)?)?,
        description: parse_description(request.description)?,
        secret: outbox::new_secret(),
        created: patd_core::to_millis(OffsetDateTime::now_utc()),
    };
    let event = audit::event(
        EventType::WebhookCreated,
        acting(state, caller).await?,
        Some(target(&hook)),
    );
    state.store.insert_webhook(&hook, &event).await?;
    audit::committed(&event);
    let created = CreatedWebhook {
        id: hook.id.clone(),
        url: hook.url.as_str().to_owned(),
        events: hook.events.entries().to_vec(),
        description: hook.description.clone(),
        created: hook.created,
        secret: hook.secret.clone(),
    };
    Ok(created)
}

/// Create a webhook; its signing secret is shown this once
#[utoipa::path(
    post,
    path = "/patd/v1/webhooks",
    tag = "webhooks",
    operation_id = "createWebhook",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The webhook, with its secret", body = CreatedWebhook),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let created = create_as(&state, &caller, request).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(created),
    )
        .into_response())
}

/// List the webhooks
#[utoipa::path(
    get,
    path = "/patd/v1/webhooks",
    tag = "webhooks",
    operation_id = "listWebhooks",
    responses((status = 200, description = "The webhooks", body = [WebhookDto]), Bearer, TooMany, Always),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<WebhookDto>>, ApiError> {
    Ok(Json(
        list_as(&state, &caller).await?.iter().map(dto).collect(),
    ))
}

/// Every webhook, to a caller that may manage them.
pub(crate) async fn list_as(state: &AppState, caller: &Caller) -> Result<Vec<Webhook>, ApiError> {
    may_manage(caller)?;
    Ok(state.store.webhooks().await?)
}

/// Read a webhook
#[utoipa::path(
    get,
    path = "/patd/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "getWebhook",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook", body = WebhookDto), Bearer, Missing, TooMany, Always),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<WebhookDto>, ApiError> {
    may_manage(&caller)?;
    Ok(Json(dto(&found(&state, &id).await?)))
}

/// Change a webhook's url, events or description
#[utoipa::path(
    patch,
    path = "/patd/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "updateWebhook",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body = UpdateWebhookRequest,
    responses((status = 200, description = "The webhook", body = WebhookDto), Bearer, Missing, TooLarge, TooMany, Always),
    security(("bearer" = []))
)]
async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateWebhookRequest>,
) -> Result<Json<WebhookDto>, ApiError> {
    may_manage(&caller)?;
    let mut hook = found(&state, &id).await?;
    if let Some(url) = request.url {
        hook.url = WebhookUrl::parse(&url, state.config.webhook_allow_private)?;
    }
    if let Some(events) = request.events {
        hook.events = Subscription::parse(events)?;
    }
    if request.description.is_some() {
        hook.description = parse_description(request.description)?;
    }
    if !state.store.update_webhook(&hook).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(dto(&hook)))
}

/// Delete a webhook; its deliveries not yet made are dropped
#[utoipa::path(
    delete,
    path = "/patd/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhook",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted"), Bearer, Missing, TooMany, Always),
    security(("bearer" = []))
)]
async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_as(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a webhook, as the API and the web page do.
pub(crate) async fn delete_as(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    may_manage(caller)?;
    let hook = found(state, id).await?;
    let event = audit::event(
        EventType::WebhookDeleted,
        acting(state, caller).await?,
        Some(target(&hook)),
    );
    if state.store.delete_webhook(id, &event).await? {
        audit::committed(&event);
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// The paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryPage {
    /// 0 to 250, default 250
    #[param(value_type = Option<i64>, minimum = 0, maximum = 250)]
    limit: Option<String>,
    /// default 0
    #[param(value_type = Option<i64>, minimum = 0)]
    offset: Option<String>,
}

/// A webhook's deliveries, newest first
#[utoipa::path(
    get,
    path = "/patd/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    params(("id" = String, Path, description = "The webhook's id"), DeliveryPage),
    responses((status = 200, description = "The deliveries", body = [DeliveryDto]), Bearer, Missing, TooMany, Always),
    security(("bearer" = []))
)]
async fn deliveries(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<DeliveryPage>,
) -> Result<Json<Vec<DeliveryDto>>, ApiError> {
    may_manage(&caller)?;
    found(&state, &id).await?;
    // The paging rules of every collection.
    let (limit, offset) =
        patd_core::listing::parse_page(page.limit.as_deref(), page.offset.as_deref())?;
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let found = state
        .store
        .deliveries(&id, i64::from(limit), offset)
        .await?;
    Ok(Json(found.iter().map(delivery_dto).collect()))
}

/// Send a delivery's message again
#[utoipa::path(
    post,
    path = "/patd/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
    tag = "webhooks",
    operation_id = "redeliverWebhookDelivery",
    params(
        ("id" = String, Path, description = "The webhook's id"),
        ("deliveryId" = String, Path, description = "The delivery's id")
    ),
    responses((status = 202, description = "The new delivery, queued", body = DeliveryDto), Bearer, Missing, TooMany, Always),
    security(("bearer" = []))
)]
async fn redeliver(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    may_manage(&caller)?;
    let queued = state
        .store
        .redeliver(&id, &delivery_id, OffsetDateTime::now_utc())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(delivery_dto(&queued))).into_response())
}
