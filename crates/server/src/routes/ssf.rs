//! The Shared Signals transmitter's routes (EXTENSIONS E11), in the shape of SailPoint's SSF
//! API: the metadata and JWK set (no auth), and behind `idn:ssf-transmitter-streams:manage` the
//! streams, their status, verification, and the RFC 8936 poll endpoint.

use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody, QueryParams};
use crate::openapi::{Always, Bearer, TooLarge, TooMany};
use crate::ssf::issuer;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::authz::Caller;
use patd_core::rights::Right;
use patd_core::ssf::{
    parse_events, parse_text, Delivery, Method, Status, Stream, EVENTS_SUPPORTED,
    MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS, MAX_STATE_CHARS,
};
use patd_core::Rule;
use patd_proto::ssf::{
    AuthorizationScheme, CreateStreamRequest, DeliveryRequest, DeliveryResponse, PollRequest,
    PollResponse, StreamConfigResponse, StreamConfigurationRequest, StreamStatusResponse,
    TransmitterMetadata, UpdateStreamStatusRequest, VerificationRequest,
};
use patd_proto::ErrorResponseDto;
use patd_store::StreamInsert;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most SETs one poll returns, and the most it may acknowledge or refuse.
const MAX_POLL: usize = 1000;
/// SETs a poll returns when it names no `maxEvents`.
const DEFAULT_POLL: u32 = 100;
/// How long a poll that may wait (`returnImmediately` false) waits for a first SET.
const LONG_POLL: Duration = Duration::from_secs(10);
/// The most SETs signed for one poll answer.
const SIGNED_PER_POLL: i64 = 100;
/// How often a waiting poll looks again.
const LONG_POLL_STEP: Duration = Duration::from_millis(250);

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(configuration))
        .routes(routes!(configuration_standard))
        .routes(routes!(jwks))
        .routes(routes!(create, read, replace, update, delete))
        .routes(routes!(status, set_status))
        .routes(routes!(verify))
        .routes(routes!(poll))
}

fn may_manage(caller: &Caller) -> Result<(), ApiError> {
    if caller.rights.contains(Right::SsfStreamsManage) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(&[Right::SsfStreamsManage]))
    }
}

/// The poll endpoint of a stream, which its configuration shows as `endpoint_url`.
fn poll_url(state: &AppState, stream_id: &str) -> String {
    format!(
        "{}/ssf/v1/streams/poll?stream_id={stream_id}",
        issuer(state)
    )
}

fn config(state: &AppState, stream: &Stream, updated: bool) -> StreamConfigResponse {
    let endpoint_url = match stream.delivery.method {
        Method::Push => stream
            .delivery
            .endpoint_url
            .as_ref()
            .map(|url| url.as_str().to_owned())
            .unwrap_or_default(),
        Method::Poll => poll_url(state, &stream.id),
    };
    StreamConfigResponse {
        stream_id: stream.id.clone(),
        iss: issuer(state),
        aud: stream.audience.clone(),
        delivery: DeliveryResponse {
            method: stream.delivery.method.urn().to_owned(),
            endpoint_url,
        },
        events_supported: EVENTS_SUPPORTED
            .iter()
            .map(|uri| (*uri).to_owned())
            .collect(),
        events_requested: stream.events_requested.clone(),
        events_delivered: stream.events_delivered(),
        description: stream.description.clone(),
        updated_at: updated.then_some(stream.updated),
    }
}

fn status_of(stream: &Stream) -> StreamStatusResponse {
    StreamStatusResponse {
        stream_id: stream.id.clone(),
        status: stream.status.as_str().to_owned(),
        reason: stream.reason.clone(),
    }
}

fn delivery(state: &AppState, request: DeliveryRequest) -> Result<Delivery, Rule> {
    Delivery::parse(
        request.method.as_deref(),
        request.endpoint_url.as_deref(),
        request.authorization_header,
        state.config.webhook_allow_private,
    )
}

fn description(raw: Option<String>) -> Result<String, Rule> {
    Ok(parse_text(raw, MAX_DESCRIPTION_CHARS, Rule::SsfDescription)?.unwrap_or_default())
}

async fn found(state: &AppState, id: Option<&str>) -> Result<Stream, ApiError> {
    let id = id.ok_or(Rule::SsfStreamIdRequired)?;
    if !patd_core::ssf::is_id(id) {
        return Err(ApiError::NotFound);
    }
    state.store.stream(id).await?.ok_or(ApiError::NotFound)
}

/// `stream_id`, the query of the routes that name one stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The stream's id
    stream_id: Option<String>,
}

fn metadata(state: &AppState) -> TransmitterMetadata {
    let base = issuer(state);
    TransmitterMetadata {
        spec_version: "1_0".to_owned(),
        issuer: base.clone(),
        jwks_uri: format!("{base}/ssf/v1/jwks"),
        delivery_methods_supported: vec![Method::PUSH_URN.to_owned(), Method::POLL_URN.to_owned()],
        configuration_endpoint: format!("{base}/ssf/v1/streams"),
        status_endpoint: format!("{base}/ssf/v1/streams/status"),
        verification_endpoint: format!("{base}/ssf/v1/streams/verify"),
        // Access tokens from `/oauth/token` (OAuth 2.0 client credentials), sent as bearer
        // tokens.
        authorization_schemes: vec![
            AuthorizationScheme {
                spec_urn: "urn:ietf:rfc:6749".to_owned(),
            },
            AuthorizationScheme {
                spec_urn: "urn:ietf:rfc:6750".to_owned(),
            },
        ],
    }
}

/// The transmitter's metadata (SailPoint's path)
#[utoipa::path(
    get,
    path = "/.well-known/v1/ssf-configuration",
    tag = "ssf",
    operation_id = "getSsfConfiguration",
    responses((status = 200, description = "SSF transmitter metadata", body = TransmitterMetadata), Always)
)]
async fn configuration(State(state): State<AppState>) -> Json<TransmitterMetadata> {
    Json(metadata(&state))
}

/// The transmitter's metadata (SSF 1.0's path)
#[utoipa::path(
    get,
    path = "/.well-known/ssf-configuration",
    tag = "ssf",
    operation_id = "getSsfConfigurationStandard",
    responses((status = 200, description = "SSF transmitter metadata", body = TransmitterMetadata), Always)
)]
async fn configuration_standard(State(state): State<AppState>) -> Json<TransmitterMetadata> {
    Json(metadata(&state))
}

/// The keys SETs are signed with (JWK set)
#[utoipa::path(
    get,
    path = "/ssf/v1/jwks",
    tag = "ssf",
    operation_id = "getSsfJwks",
    responses((status = 200, description = "A JWK set", body = Object), Always)
)]
async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.ssf.jwks(&state).await?))
}

/// Create a stream: one per client id, ten per tenant
#[utoipa::path(
    post,
    path = "/ssf/v1/streams",
    tag = "ssf",
    operation_id = "createStream",
    request_body = CreateStreamRequest,
    responses(
        (status = 201, description = "The stream", body = StreamConfigResponse),
        (status = 409, description = "The client has a stream already, or the tenant has ten", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<CreateStreamRequest>,
) -> Result<Response, ApiError> {
    may_manage(&caller)?;
    // A stream belongs to the PAT whose token made it; only a token can.
    let client = caller.pat_id.clone().ok_or(ApiError::Forbidden(&[]))?;
    let now = patd_core::to_millis(OffsetDateTime::now_utc());
    let stream = Stream {
        id: patd_core::ids::random_hex_id(&mut rand::rng()),
        client_id: client.as_str().to_owned(),
        audience: client.as_str().to_owned(),
        delivery: delivery(&state, request.delivery.ok_or(Rule::SsfDeliveryRequired)?)?,
        events_requested: parse_events(request.events_requested)?,
        description: description(request.description)?,
        status: Status::Enabled,
        reason: None,
        created: now,
        updated: now,
    };
    match state.store.insert_stream(&stream).await? {
        StreamInsert::Inserted => {}
        StreamInsert::ClientHasOne => return Err(ApiError::Conflict(Rule::SsfStreamExists)),
        StreamInsert::TenantFull => {
            return Err(ApiError::Conflict(Rule::SsfTooManyStreams {
                max: patd_core::ssf::MAX_STREAMS,
            }))
        }
    }
    tracing::info!(stream_id = %stream.id, "SSF stream created");
    Ok((StatusCode::CREATED, Json(config(&state, &stream, false))).into_response())
}

/// Read one stream (`stream_id`), or all
#[utoipa::path(
    get,
    path = "/ssf/v1/streams",
    tag = "ssf",
    operation_id = "getStream",
    params(StreamQuery),
    responses(
        (status = 200, description = "The stream, or every stream", body = StreamConfigResponse),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    may_manage(&caller)?;
    if query.stream_id.is_some() {
        let stream = found(&state, query.stream_id.as_deref()).await?;
        return Ok(Json(config(&state, &stream, false)).into_response());
    }
    let all: Vec<StreamConfigResponse> = state
        .store
        .streams()
        .await?
        .iter()
        .map(|stream| config(&state, stream, false))
        .collect();
    Ok(Json(all).into_response())
}

/// Replace a stream's configuration
#[utoipa::path(
    put,
    path = "/ssf/v1/streams",
    tag = "ssf",
    operation_id = "replaceStream",
    request_body = StreamConfigurationRequest,
    responses(
        (status = 200, description = "The stream", body = StreamConfigResponse),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn replace(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<StreamConfigurationRequest>,
) -> Result<Json<StreamConfigResponse>, ApiError> {
    may_manage(&caller)?;
    let mut stream = found(&state, request.stream_id.as_deref()).await?;
    stream.delivery = delivery(&state, request.delivery.ok_or(Rule::SsfDeliveryRequired)?)?;
    stream.events_requested = parse_events(request.events_requested)?;
    stream.description = description(request.description)?;
    save(&state, stream).await
}

/// Change the members given of a stream's configuration
#[utoipa::path(
    patch,
    path = "/ssf/v1/streams",
    tag = "ssf",
    operation_id = "updateStream",
    request_body = StreamConfigurationRequest,
    responses(
        (status = 200, description = "The stream", body = StreamConfigResponse),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<StreamConfigurationRequest>,
) -> Result<Json<StreamConfigResponse>, ApiError> {
    may_manage(&caller)?;
    let mut stream = found(&state, request.stream_id.as_deref()).await?;
    if let Some(change) = request.delivery {
        // The members left out keep their values; a change of method starts from nothing.
        let method = change
            .method
            .unwrap_or_else(|| stream.delivery.method.urn().to_owned());
        let same_method = method == stream.delivery.method.urn();
        let kept = |value: Option<String>| value.filter(|_| same_method);
        // A stored Authorization goes only where it was meant to go: a new endpoint without
        // one of its own gets none.
        let moved = change.endpoint_url.as_deref().is_some_and(|new| {
            stream
                .delivery
                .endpoint_url
                .as_ref()
                .map(|url| url.as_str())
                != Some(new)
        });
        let endpoint_url = change.endpoint_url.or_else(|| {
            kept(
                stream
                    .delivery
                    .endpoint_url
                    .as_ref()
                    .map(|url| url.as_str().to_owned()),
            )
        });
        let authorization_header = change
            .authorization_header
            .or_else(|| kept(stream.delivery.authorization_header.clone()).filter(|_| !moved));
        stream.delivery = delivery(
            &state,
            DeliveryRequest {
                method: Some(method),
                endpoint_url,
                authorization_header,
            },
        )?;
    }
    if request.events_requested.is_some() {
        stream.events_requested = parse_events(request.events_requested)?;
    }
    if request.description.is_some() {
        stream.description = description(request.description)?;
    }
    save(&state, stream).await
}

async fn save(
    state: &AppState,
    mut stream: Stream,
) -> Result<Json<StreamConfigResponse>, ApiError> {
    stream.updated = patd_core::to_millis(OffsetDateTime::now_utc());
    if !state.store.update_stream(&stream).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(config(state, &stream, true)))
}

/// Delete a stream; the SETs it had not delivered are dropped
#[utoipa::path(
    delete,
    path = "/ssf/v1/streams",
    tag = "ssf",
    operation_id = "deleteStream",
    params(StreamQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<StatusCode, ApiError> {
    may_manage(&caller)?;
    let id = query.stream_id.ok_or(Rule::SsfStreamIdRequired)?;
    if patd_core::ssf::is_id(&id) && state.store.delete_stream(&id).await? {
        tracing::info!(stream_id = %id, "SSF stream deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// A stream's status
#[utoipa::path(
    get,
    path = "/ssf/v1/streams/status",
    tag = "ssf",
    operation_id = "getStreamStatus",
    params(StreamQuery),
    responses(
        (status = 200, description = "The status", body = StreamStatusResponse),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Json<StreamStatusResponse>, ApiError> {
    may_manage(&caller)?;
    let stream = found(&state, query.stream_id.as_deref()).await?;
    Ok(Json(status_of(&stream)))
}

/// Enable, pause (events held) or disable (events dropped) a stream
#[utoipa::path(
    post,
    path = "/ssf/v1/streams/status",
    tag = "ssf",
    operation_id = "updateStreamStatus",
    request_body = UpdateStreamStatusRequest,
    responses(
        (status = 200, description = "The status", body = StreamStatusResponse),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn set_status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<UpdateStreamStatusRequest>,
) -> Result<Json<StreamStatusResponse>, ApiError> {
    may_manage(&caller)?;
    let mut stream = found(&state, request.stream_id.as_deref()).await?;
    stream.status = Status::parse(request.status.as_deref().ok_or(Rule::SsfStatus)?)?;
    stream.reason = parse_text(request.reason, MAX_REASON_CHARS, Rule::SsfReason)?;
    stream.updated = patd_core::to_millis(OffsetDateTime::now_utc());
    if !state.store.update_stream(&stream).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(status_of(&stream)))
}

/// Ask for a verification event, which carries `state` back
#[utoipa::path(
    post,
    path = "/ssf/v1/streams/verify",
    tag = "ssf",
    operation_id = "verifyStream",
    request_body = VerificationRequest,
    responses(
        (status = 204, description = "The verification event is queued (none for a disabled stream)"),
        (status = 404, description = "No such stream", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<VerificationRequest>,
) -> Result<StatusCode, ApiError> {
    may_manage(&caller)?;
    let stream = found(&state, request.stream_id.as_deref()).await?;
    let verify_state = parse_text(request.state, MAX_STATE_CHARS, Rule::SsfState)?;
    let signal = patd_core::ssf::verification(
        &stream.id,
        verify_state.as_deref(),
        OffsetDateTime::now_utc(),
    );
    state.store.queue_stream_set(&stream.id, &signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Poll a stream's SETs and acknowledge those received (RFC 8936)
#[utoipa::path(
    post,
    path = "/ssf/v1/streams/poll",
    tag = "ssf",
    operation_id = "pollStream",
    params(StreamQuery),
    request_body = PollRequest,
    responses(
        (status = 200, description = "The pending SETs, by jti", body = PollResponse),
        (status = 404, description = "No such poll stream", body = ErrorResponseDto),
        Bearer, TooLarge, TooMany, Always
    ),
    security(("bearer" = []))
)]
async fn poll(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    QueryParams(query): QueryParams<StreamQuery>,
    JsonBody(request): JsonBody<PollRequest>,
) -> Result<Json<PollResponse>, ApiError> {
    may_manage(&caller)?;
    let stream = found(&state, query.stream_id.as_deref()).await?;
    if stream.delivery.method != Method::Poll {
        return Err(ApiError::NotFound);
    }
    let max_events = request.max_events.unwrap_or(DEFAULT_POLL);
    let bounds = Rule::SsfPollBounds { max: MAX_POLL };
    if usize::try_from(max_events).unwrap_or(usize::MAX) > MAX_POLL
        || request.ack.len() > MAX_POLL
        || request.set_errs.len() > MAX_POLL
    {
        return Err(bounds.into());
    }
    // A jti patd did not make names no SET of this stream; the error code is kept, bounded and
    // without control characters, as the SET's last error.
    let ack: Vec<String> = request
        .ack
        .into_iter()
        .filter(|jti| patd_core::ssf::is_id(jti))
        .collect();
    let errors: Vec<(String, String)> = request
        .set_errs
        .into_iter()
        .filter(|(jti, _)| patd_core::ssf::is_id(jti))
        .map(|(jti, error)| {
            let code: String = error.err.chars().filter(|c| !c.is_control()).collect();
            (jti, patd_core::audit::AuditEvent::bounded(&code, 64))
        })
        .collect();
    // A stream that is not enabled transmits nothing; acknowledgements still count.
    // At most `SIGNED_PER_POLL` are signed for one answer (`moreAvailable` says the rest are
    // there): each is an RSA signature on this request's worker.
    let max = if stream.status == Status::Enabled {
        i64::from(max_events).min(SIGNED_PER_POLL)
    } else {
        0
    };
    let wait = max > 0 && !request.return_immediately.unwrap_or(false);
    // The wait ends before the request's own deadline, so an empty poll is answered empty.
    let waits = LONG_POLL.min(
        state
            .config
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    );
    let deadline = tokio::time::Instant::now() + waits;
    let (mut pending, mut more) = state
        .store
        .poll_stream(&stream.id, &ack, &errors, max)
        .await?;
    while wait && pending.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(LONG_POLL_STEP).await;
        (pending, more) = state.store.poll_stream(&stream.id, &[], &[], max).await?;
    }
    let mut sets = BTreeMap::new();
    for delivery in &pending {
        let set = crate::ssf::signed_set(&state, delivery, &stream.audience).await?;
        sets.insert(delivery.id.clone(), set);
    }
    Ok(Json(PollResponse {
        sets,
        more_available: more,
    }))
}
