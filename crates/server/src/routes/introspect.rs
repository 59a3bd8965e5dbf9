//! `POST /oauth/introspect` (RFC 7662; EXTENSIONS E10): whether an access token is live, asked
//! by a resource server holding `patd:token-introspection`, answered by the same check as
//! patd's own bearer check, and the RFC 8414 discovery documents that point to it.

use crate::access;
use crate::error::ApiError;
use crate::extract::{media_type, read_body};
use crate::openapi::{Always, TooMany};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patd_core::rights::Right;
use patd_proto::{AuthorizationServerMetadata, IntrospectionResponse, OAuthErrorBody};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(introspect))
        .routes(routes!(authorization_server))
        .routes(routes!(openid_configuration))
}

/// The form of `POST /oauth/introspect` (RFC 7662 §2.1), with the client's credentials when it
/// sends them there rather than with HTTP Basic.
#[derive(Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct IntrospectionRequest {
    /// The access token asked about.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    /// A hint only: every token is looked at as an access token. Read for the document.
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

/// Introspect an access token (RFC 7662)
///
/// The caller authenticates as a client (a PAT's id and secret, with HTTP Basic or in the form)
/// whose grant holds `patd:token-introspection`, or with a bearer token that holds it. A live
/// access token gets its claims; anything else (expired, revoked, its PAT deleted or rotated
/// with revocation, unknown, malformed) gets `{"active": false}` and no reason.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    operation_id = "introspect",
    request_body(content = IntrospectionRequest,
        content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Whether the token is live, and if it is its claims",
            body = IntrospectionResponse, headers(("Cache-Control" = String))),
        (status = 400, description = "invalid_request: the body is not a form, or has no token",
            body = OAuthErrorBody, headers(("Cache-Control" = String))),
        (status = 401, description = "invalid_client: no credentials, or bad ones",
            body = OAuthErrorBody, headers(("Cache-Control" = String))),
        (status = 403, description = "insufficient_scope: the caller lacks \
            patd:token-introspection", body = OAuthErrorBody,
            headers(("Cache-Control" = String))),
        (status = 413, description = "invalid_request: the body is longer than the server \
            accepts (--max-body-size)", body = OAuthErrorBody,
            headers(("Cache-Control" = String))),
        TooMany, Always
    )
)]
async fn introspect(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let peer = crate::context::with_request(|context| context.client_ip).flatten();
    let headers = request.headers().clone();
    let form: IntrospectionRequest = read_form(request)
        .await
        .map_err(ApiError::on_token_endpoint)?;
    let caller =
        access::client_or_bearer(&state, &headers, form.client_id, form.client_secret, peer)
            .await?
            .caller;
    if !caller.rights.contains(Right::TokenIntrospection) {
        return Err(ApiError::InsufficientScope(
            "introspection requires the right patd:token-introspection",
        ));
    }
    state
        .limits
        // A budget of its own: a resource server introspects as often as it is called.
        .check_request(
            caller.pat_id.as_ref().map_or("", |id| id.as_str()),
            "introspect",
        )
        .await
        .map_err(ApiError::RateLimited)?;
    let Some(token) = form.token.filter(|token| !token.is_empty()) else {
        return Err(ApiError::InvalidRequest("token is required".to_owned()));
    };
    let answer = match access::check(&state, &token).await? {
        Ok(live) => {
            let claims = &live.claims;
            IntrospectionResponse {
                active: true,
                scope: Some(claims.scope.join(" ")),
                client_id: Some(claims.client_id.to_string()),
                username: Some(claims.user_name.to_string()),
                sub: Some(live.identity_id.as_str().to_owned()),
                aud: (!claims.aud.is_empty())
                    .then(|| claims.aud.0.iter().map(|aud| aud.to_string()).collect()),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                iss: Some(claims.iss.to_string()),
                jti: Some(claims.jti.to_string()),
                token_type: Some("Bearer".to_owned()),
            }
        }
        Err(_) => IntrospectionResponse::default(),
    };
    Ok(no_store(Json(answer).into_response()))
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as every token-endpoint answer has them.
pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A form body (RFC 7662 §2.1 and RFC 7009 §2.1 name no other encoding). The query string is
/// never read: a token there would be written to the logs of every proxy on the way.
pub(crate) async fn read_form<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<T, ApiError> {
    if media_type(request.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::InvalidRequest(
            "the body must be a form (application/x-www-form-urlencoded)".to_owned(),
        ));
    }
    let bytes = read_body(request, &()).await?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| ApiError::InvalidRequest("the form body could not be parsed".to_owned()))
}

fn metadata(state: &AppState) -> AuthorizationServerMetadata {
    let base = state.config.public_url.trim_end_matches('/');
    let methods = || {
        vec![
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
        ]
    };
    let mut revocation_methods = methods();
    // A PAT's secret revokes its PAT with no other credential.
    revocation_methods.push("none".to_owned());
    AuthorizationServerMetadata {
        issuer: state.config.public_url.clone(),
        token_endpoint: format!("{base}/oauth/token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        response_types_supported: Vec::new(),
        grant_types_supported: vec!["client_credentials".to_owned()],
        token_endpoint_auth_methods_supported: methods(),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        introspection_endpoint_auth_methods_supported: methods(),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        revocation_endpoint_auth_methods_supported: revocation_methods,
    }
}

/// The authorization server's metadata (RFC 8414)
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "authorizationServerMetadata",
    responses((status = 200, description = "RFC 8414 metadata",
        body = AuthorizationServerMetadata), Always)
)]
async fn authorization_server(State(state): State<AppState>) -> Json<AuthorizationServerMetadata> {
    Json(metadata(&state))
}

/// The same metadata, where OpenID Connect clients look for it
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oauth",
    operation_id = "openidConfiguration",
    responses((status = 200, description = "RFC 8414 metadata",
        body = AuthorizationServerMetadata), Always)
)]
async fn openid_configuration(State(state): State<AppState>) -> Json<AuthorizationServerMetadata> {
    Json(metadata(&state))
}
