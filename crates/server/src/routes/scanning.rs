//! `POST /patd/v1/secret-scanning/reports` (EXTENSIONS E9): a secret-scanning service's signed
//! report of tokens it found in public content (GitHub's secret scanning partner program).
//! Every live PAT secret in it is revoked at once, as a delete; the answer labels each token.

use crate::error::ApiError;
use crate::extract::{json_array, read_body};
use crate::openapi::{Always, TooLarge};
use crate::service::{revoke_secret, Revocation};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::Json;
use patd_core::audit::{Actor, AuditEvent, EventType, MAX_DETAIL_TEXT};
use patd_core::secret::redact;
use patd_core::Rule;
use patd_proto::{
    ErrorResponseDto, ReportedToken, ReportedTokenLabel, TokenLabel, UnauthorizedBody,
};
use std::collections::HashSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes(api: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    api.routes(routes!(report))
}

/// The most tokens one report may name. GitHub sends a few at a time; the body cap (64 KiB)
/// already bounds a report to a few thousand, and each costs a database read.
pub const MAX_REPORTED_TOKENS: usize = 1000;

/// The name of the `SYSTEM` actor of the `pat.leaked` events.
const REPORTER: &str = "secret-scanning";

const KEY_ID_HEADER: &str = "github-public-key-identifier";
const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// Report leaked secrets (secret-scanning partner endpoint)
///
/// A JSON array of `{"token", "type", "url", "source"}`, signed with ECDSA P-256 / SHA-256 over
/// the raw body by a key of `--secret-scanning-keys`. Each token that is a live PAT's secret is
/// a true positive: the PAT is deleted at once (audited as `pat.leaked`). Anything else is a
/// false positive and changes nothing. One label per token, in order.
#[utoipa::path(
    post,
    path = "/patd/v1/secret-scanning/reports",
    tag = "secret-scanning",
    operation_id = "reportLeakedSecrets",
    params(
        ("Github-Public-Key-Identifier" = String, Header,
            description = "The key_identifier of the key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header,
            description = "Base64 of the DER ECDSA P-256 / SHA-256 signature over the raw body")
    ),
    request_body(content = Vec<ReportedToken>, content_type = "application/json"),
    responses(
        (status = 200, description = "One label per reported token, in the report's order",
            body = [ReportedTokenLabel]),
        (status = 400, description = "The body is not a JSON array of reported tokens, or \
            names more than 1000", body = ErrorResponseDto),
        (status = 401, description = "The signature is missing, made by a key that is not \
            trusted, or does not verify over the body: nothing was revoked",
            body = UnauthorizedBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "Leaked-secret reports are not configured \
            (--secret-scanning-keys)", body = ErrorResponseDto),
        TooLarge, Always
    )
)]
async fn report(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Vec<ReportedTokenLabel>>, ApiError> {
    let Some(keys) = state.config.secret_scanning_keys.clone() else {
        return Err(ApiError::NotFound);
    };
    let (key_id, signature) = (
        header_text(request.headers(), KEY_ID_HEADER),
        header_text(request.headers(), SIGNATURE_HEADER),
    );
    // The signature covers the bytes as sent, so the body is read raw and checked before it is
    // parsed; its content type proves nothing and is not looked at.
    let body = read_body(request, &()).await?;
    keys.verify(key_id.as_deref(), signature.as_deref(), &body)
        .map_err(|refusal| ApiError::Unauthorized(refusal.reason().to_owned()))?;
    let reported: Vec<ReportedToken> = json_array(&body)?;
    if reported.len() > MAX_REPORTED_TOKENS {
        return Err(Rule::TooManyReportedTokens {
            max: MAX_REPORTED_TOKENS,
        }
        .into());
    }
    // A token named twice in one report is labelled the same both times.
    let mut revoked_here: HashSet<&str> = HashSet::new();
    let mut labels = Vec::with_capacity(reported.len());
    for token in &reported {
        let true_positive = revoked_here.contains(token.token.as_str())
            || match revoke_secret(&state, &token.token, |pat, owner_name| {
                leaked_event(pat, owner_name, token)
            })
            .await?
            {
                Revocation::Revoked(_) => {
                    revoked_here.insert(token.token.as_str());
                    true
                }
                Revocation::NotASecret | Revocation::NotLive => false,
            };
        labels.push(ReportedTokenLabel {
            token_raw: token.token.clone(),
            token_type: token.token_type.clone().unwrap_or_default(),
            label: if true_positive {
                TokenLabel::TruePositive
            } else {
                TokenLabel::FalsePositive
            },
        });
    }
    Ok(Json(labels))
}

/// The `pat.leaked` event: where the secret was found, as the reporter says, cut to a bounded
/// length. Never the secret: one that appears in those texts is redacted before they are cut,
/// so that no cut leaves most of it.
fn leaked_event(
    pat: &patd_core::pat::PatRecord,
    owner_name: &str,
    token: &ReportedToken,
) -> AuditEvent {
    let bounded = |text: &Option<String>| {
        text.as_deref()
            .map(|text| AuditEvent::bounded(&redact(text), MAX_DETAIL_TEXT))
    };
    crate::audit::pat_event(
        EventType::PatLeaked,
        Actor::system(REPORTER),
        pat,
        owner_name,
    )
    .detail("url", bounded(&token.url))
    .detail("source", bounded(&token.source))
}

/// A header's value as text, if it is there and readable.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
