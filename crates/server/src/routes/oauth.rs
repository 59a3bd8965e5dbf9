//! The token endpoint (CONTRACT §5) and the two discovery documents.

use crate::access::authenticate_client;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{media_type, read_body};
use crate::lastused::Use;
use crate::metrics::Exchange;
use crate::openapi::{Always, TooMany};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::audit::EventType;
use patd_core::exchange::ExchangeRecord;
use patd_core::ids::PatId;
use patd_proto::{OAuthErrorBody, OAuthInfo, TokenRequest, TokenResponse};
use serde_json::Value;
use std::net::IpAddr;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(token))
        .routes(routes!(info))
        .routes(routes!(jwks))
}

/// Exchange a PAT for an access token
///
/// The client credentials come in a form or multipart body, the query string, or HTTP Basic.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "token",
    // Named by reference, so that the body is optional: the query string or Basic may carry it all.
    request_body(content(
        (ref("#/components/schemas/TokenRequest") = "application/x-www-form-urlencoded"),
        (ref("#/components/schemas/TokenRequest") = "multipart/form-data")
    )),
    params(
        ("grant_type" = Option<String>, Query,
            description = "client_credentials, when the body does not say it"),
        ("client_id" = Option<String>, Query,
            description = "The PAT's id, when neither Basic nor the body gives it"),
        ("client_secret" = Option<String>, Query,
            description = "The PAT's secret, when neither Basic nor the body gives it")
    ),
    // HTTP Basic (the PAT's id and secret) or none: the credentials may all be in the body or
    // the query string.
    security((), ("basic" = [])),
    responses(
        (status = 200, description = "An access token", body = TokenResponse,
            headers(("Cache-Control" = String))),
        (status = 400, description = "invalid_request (a parameter missing, a body that cannot \
            be read) or unsupported_grant_type", body = OAuthErrorBody,
            headers(("Cache-Control" = String))),
        (status = 401, description = "invalid_client: the same answer for every bad credential",
            body = OAuthErrorBody, headers(("Cache-Control" = String))),
        (status = 413, description = "invalid_request: the body is longer than the server \
            accepts (--max-body-size)", body = OAuthErrorBody,
            headers(("Cache-Control" = String))),
        TooMany, Always
    )
)]
async fn token(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let peer = crate::context::with_request(|context| context.client_ip).flatten();
    let answer = match read_credentials(request)
        .await
        .map_err(ApiError::on_token_endpoint)
    {
        Ok(credentials) => exchange(&state, credentials, peer).await,
        Err(err) => Err(err),
    };
    crate::metrics::exchange(match &answer {
        Ok(_) => Exchange::Ok,
        Err(ApiError::InvalidClient) => Exchange::InvalidClient,
        Err(ApiError::RateLimited(_)) => Exchange::RateLimited,
        Err(_) => Exchange::InvalidRequest,
    });
    answer
}

async fn exchange(
    state: &AppState,
    credentials: TokenRequest,
    peer: Option<IpAddr>,
) -> Result<Response, ApiError> {
    let grant_type = credentials
        .grant_type
        .ok_or_else(|| ApiError::InvalidRequest("grant_type is required".to_owned()))?;
    if !grant_type.eq_ignore_ascii_case("client_credentials") {
        return Err(ApiError::UnsupportedGrantType);
    }
    let (Some(client_id), Some(client_secret)) = (credentials.client_id, credentials.client_secret)
    else {
        return Err(ApiError::InvalidRequest(
            "client_id and client_secret are required".to_owned(),
        ));
    };
    let client = authenticate_client(state, &client_id, &client_secret, peer).await?;
    let (grant, now) = (client.grant(), client.at);
    let pat_id = grant.pat_id;
    // Only an exchange that authenticated spends the client's request budget: anyone who knows
    // a PAT's id could otherwise spend it for its owner. Failures have limits of their own.
    state
        .limits
        .check_request(pat_id.as_str(), "oauth")
        .await
        .map_err(ApiError::RateLimited)?;
    note_use(state, pat_id, &client.record, peer, now);
    let jti = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let config = &state.config;
    let claims = convert::claims(
        &grant,
        &config.public_url,
        &config.audiences,
        &state.tenant,
        &jti,
    );
    let access_token = state.keys.current().mint(&claims)?;
    let body = TokenResponse {
        access_token: String::new(),
        token_type: "bearer".to_owned(),
        expires_in: claims.exp - claims.iat,
        scope: grant.scope.entries().join(" "),
        tenant_id: state.tenant.id.clone(),
        pod: state.tenant.pod.clone(),
        org: state.tenant.org.clone(),
        identity_id: grant.owner.id.as_str().to_owned(),
        user_name: grant.owner.name.as_str().to_owned(),
        internal: false,
        strong_auth: false,
        strong_auth_supported: false,
        enabled: true,
        jti,
    };
    let body = response_body(&body, &access_token)?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(crate::routes::introspect::no_store(response))
}

/// Queues the rare writes a use causes: `lastUsed`, due at most once a day per PAT, and a source
/// address not among the PAT's last five; each with its `pat.used` event. Written by a
/// background task, never awaited here.
fn note_use(
    state: &AppState,
    pat_id: &PatId,
    record: &ExchangeRecord,
    peer: Option<IpAddr>,
    now: OffsetDateTime,
) {
    let daily = state
        .pats
        .claim_last_used(pat_id, record.pat.last_used, now);
    let new_ip = peer
        .filter(|ip| !record.recent_ips.contains(ip) && state.pats.claim_new_ip(pat_id, *ip))
        .map(|ip| ip.to_string());
    if !daily && new_ip.is_none() {
        return;
    }
    let mut event = crate::audit::event(
        EventType::PatUsed,
        crate::audit::identity_actor(&record.owner),
        Some(crate::audit::pat_target(&record.pat)),
    )
    .used_because(new_ip.is_some());
    event
        .details
        .insert("viaPat".to_owned(), pat_id.as_str().into());
    state.last_used.record(Use {
        id: pat_id.clone(),
        at: now,
        daily,
        new_ip,
        event,
    });
}

/// What every serialized `TokenResponse` starts with: its first field is the token.
const TOKEN_PREFIX: &[u8] = br#"{"access_token":""#;

/// The JSON of `body` with `access_token` in its first field (where `body` has an empty one).
/// A compact JWS is base64url and dots, which JSON never escapes, so the token is copied in
/// whole rather than scanned byte by byte: it is most of the body.
fn response_body(body: &TokenResponse, access_token: &str) -> Result<Vec<u8>, ApiError> {
    let rest = serde_json::to_vec(body)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("encoding the token response: {err}")))?;
    let Some(after_token) = rest.strip_prefix(TOKEN_PREFIX) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "the token response does not start with access_token"
        )));
    };
    let mut out = Vec::with_capacity(rest.len() + access_token.len());
    out.extend_from_slice(TOKEN_PREFIX);
    out.extend_from_slice(access_token.as_bytes());
    out.extend_from_slice(after_token);
    Ok(out)
}

/// Gathers the parameters from HTTP Basic, the body (form or multipart) and the query string;
/// the first place that has a value wins, in that order.
async fn read_credentials(request: Request) -> Result<TokenRequest, ApiError> {
    let basic = crate::access::basic_credentials(request.headers());
    let query: TokenRequest = serde_urlencoded::from_str(request.uri().query().unwrap_or_default())
        .map_err(|_| ApiError::InvalidRequest("the query string could not be parsed".to_owned()))?;
    let body = match media_type(request.headers()).as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let bytes = read_body(request, &()).await?;
            serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                ApiError::InvalidRequest("the form body could not be parsed".to_owned())
            })?
        }
        Some("multipart/form-data") => read_multipart(request).await?,
        _ => TokenRequest::default(),
    };
    let (basic_id, basic_secret) = basic.unzip();
    Ok(TokenRequest {
        grant_type: body.grant_type.or(query.grant_type),
        client_id: basic_id.or(body.client_id).or(query.client_id),
        client_secret: basic_secret.or(body.client_secret).or(query.client_secret),
    })
}

async fn read_multipart(request: Request) -> Result<TokenRequest, ApiError> {
    // Read whole first, as a form is: the body cap then covers every byte sent, the epilogue
    // after the last boundary included, which a streaming parser never reads.
    let content_type = request.headers().get(CONTENT_TYPE).cloned();
    let bytes = read_body(request, &()).await?;
    let mut buffered = Request::new(Body::from(bytes));
    if let Some(content_type) = content_type {
        buffered.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    let bad = |_| ApiError::InvalidRequest("the multipart body could not be parsed".to_owned());
    let mut multipart = Multipart::from_request(buffered, &()).await.map_err(|_| {
        ApiError::InvalidRequest("the multipart body could not be parsed".to_owned())
    })?;
    let mut found = TokenRequest::default();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        let value = field.text().await.map_err(bad)?;
        match name.as_str() {
            "grant_type" => found.grant_type = Some(value),
            "client_id" => found.client_id = Some(value),
            "client_secret" => found.client_secret = Some(value),
            _ => {}
        }
    }
    Ok(found)
}

/// The tenant and its token endpoint
#[utoipa::path(
    get,
    path = "/oauth/info",
    tag = "oauth",
    operation_id = "info",
    responses((status = 200, description = "Tenant information", body = OAuthInfo), Always)
)]
async fn info(State(state): State<AppState>) -> Json<OAuthInfo> {
    let base = state.config.public_url.trim_end_matches('/');
    Json(OAuthInfo {
        tenant_id: state.tenant.id.clone(),
        tenant_name: state.tenant.name.clone(),
        token_endpoint: format!("{base}/oauth/token"),
        pod: state.tenant.pod.clone(),
        org: state.tenant.org.clone(),
        issuer: state.config.public_url.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
    })
}

/// The public keys that verify access tokens (JWK set)
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "oauth",
    operation_id = "jwks",
    responses((status = 200, description = "A JWK set", body = Object), Always)
)]
async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.keys.current().jwks().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spliced_body_is_what_serde_writes() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl-_";
        let body = TokenResponse {
            access_token: String::new(),
            token_type: "bearer".to_owned(),
            expires_in: 43_200,
            scope: "sp:scopes:all".to_owned(),
            tenant_id: "t".to_owned(),
            pod: "local".to_owned(),
            org: "patd".to_owned(),
            identity_id: "i".to_owned(),
            user_name: "Zoë \"quoted\" \\ name".to_owned(),
            internal: false,
            strong_auth: false,
            strong_auth_supported: false,
            enabled: true,
            jti: "j".to_owned(),
        };
        let spliced = response_body(&body, token).unwrap();
        let whole = serde_json::to_vec(&TokenResponse {
            access_token: token.to_owned(),
            ..body
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(spliced).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }
}
