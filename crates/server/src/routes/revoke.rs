//! `POST /oauth/revoke` (RFC 7009; EXTENSIONS E9, E10): whoever holds a PAT's secret can revoke
//! that PAT with it, and no other credential; an access token is revoked by its `jti` for a
//! client allowed to. The answer is the same whether or not anything was revoked.

use crate::access;
use crate::error::ApiError;
use crate::openapi::{Always, TooMany};
use crate::ratelimit::FailedClient;
use crate::routes::introspect::{no_store, read_form};
use crate::service::{revoke_secret, Revocation};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patd_core::audit::{Actor, EventType};
use patd_proto::{OAuthErrorBody, RevocationRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(revoke))
}

/// Revoke a personal access token by its secret, or an access token (RFC 7009)
///
/// `token` is a PAT's secret: if it is live, its PAT is deleted at once, on every node, with no
/// other credential needed. Or it is an access token: the caller authenticates as the PAT that
/// minted it (HTTP Basic or `client_id`/`client_secret` in the form) or with a bearer token
/// that may patch or delete that PAT, and the token is refused by every node until its `exp`.
/// The answer is 200 with an empty body whether or not the token was known (RFC 7009 §2.2).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "revoke",
    request_body(content = RevocationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke: the same empty answer",
            headers(("Cache-Control" = String))),
        (status = 400, description = "invalid_request: the body is not a form, or has no \
            token; unauthorized_client: the access token is not the caller's to revoke",
            body = OAuthErrorBody, headers(("Cache-Control" = String))),
        (status = 401, description = "invalid_client: an access token, with no credentials or \
            bad ones", body = OAuthErrorBody, headers(("Cache-Control" = String))),
        (status = 413, description = "invalid_request: the body is longer than the server \
            accepts (--max-body-size)", body = OAuthErrorBody,
            headers(("Cache-Control" = String))),
        TooMany, Always
    )
)]
async fn revoke(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let form: RevocationRequest = read_form(request)
        .await
        .map_err(ApiError::on_token_endpoint)?;
    let (client_id, client_secret) = (form.client_id, form.client_secret);
    let Some(token) = form.token.filter(|token| !token.is_empty()) else {
        return Err(ApiError::InvalidRequest("token is required".to_owned()));
    };
    // `token_type_hint` is only a hint (RFC 7009 §2.1): a PAT secret is recognised by its shape.
    let revocation = revoke_secret(&state, &token, |pat, owner_name| {
        crate::audit::pat_event(
            EventType::PatDeleted,
            // The secret is the only credential, and who holds it is not known: the event's
            // address and user agent say where the request came from.
            Actor::anonymous(),
            pat,
            owner_name,
        )
        .detail("via", "oauth/revoke")
    })
    .await?;
    match revocation {
        Revocation::Revoked(_) => {}
        // Anything patd signed that has not expired is an access token, revoked by its `jti`
        // until its `exp`: the caller is authenticated first (RFC 7009 §2.1), and whether the
        // token is still live is told to no one (a signature and an `exp` anyone can check
        // offline). Anything else changes nothing.
        Revocation::NotASecret => {
            if let Ok(claims) = state.keys.verify(state.store.as_ref(), &token).await {
                let peer = crate::context::with_request(|context| context.client_ip).flatten();
                let by = access::client_or_bearer(&state, &headers, client_id, client_secret, peer)
                    .await?;
                access::revoke_token(&state, &token, &claims, &by).await?;
            }
        }
        // A well-formed secret of no live PAT cost a database read: counted, per client address,
        // with the token endpoint's failures of unknown clients, so a flood of made-up secrets
        // gets 429 as a scan of client ids does. A live secret is never refused by it.
        Revocation::NotLive => {
            let peer = crate::context::with_request(|context| context.client_ip).flatten();
            if let Some(Err(retry_after)) =
                peer.map(|ip| state.limits.record_failure(FailedClient::Unknown, ip))
            {
                return Err(ApiError::RateLimited(retry_after));
            }
        }
    }
    Ok(no_store(StatusCode::OK.into_response()))
}
