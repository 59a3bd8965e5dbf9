//! Whether an access token is live: the one check behind the bearer extractor and introspection
//! (EXTENSIONS E10), so that both are exactly as fresh; clients authenticated by a PAT's id and
//! secret, as the token endpoint does it; and the revocation of access tokens by `jti`.

use crate::error::ApiError;
use crate::keys::JwtRejection;
use crate::ratelimit::FailedClient;
use crate::state::AppState;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use patd_core::authz::Caller;
use patd_core::exchange::{decide, ExchangeRecord, Grant};
use patd_core::ids::{IdentityId, PatId};
use patd_core::rights::Rights;
use patd_core::secret::Secret;
use patd_proto::AccessTokenClaims;
use patd_store::StoreError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// A live access token: its verified claims and the PAT it came from, as this node knows it.
pub(crate) struct Live {
    pub claims: Arc<AccessTokenClaims<'static>>,
    pub pat_id: PatId,
    pub identity_id: IdentityId,
    pub record: Arc<ExchangeRecord>,
}

/// Why a token is not live; the text follows `JWT validation failed: ` on the API, and
/// introspection says none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    Jwt(JwtRejection),
    BadIdentity,
    BadClient,
    Deleted,
    Expired,
    Rotated,
    Revoked,
}

impl Dead {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Dead::Jwt(rejection) => rejection.reason(),
            Dead::BadIdentity => "identity_id is invalid",
            Dead::BadClient => "client_id is invalid",
            Dead::Deleted => "the personal access token was deleted",
            Dead::Expired => "the personal access token has expired",
            Dead::Rotated => "the personal access token was rotated since this token was issued",
            Dead::Revoked => "the access token was revoked",
        }
    }
}

/// Verifies `token` and checks its PAT: still there, unexpired, not rotated with revocation
/// since, and the token not revoked by its `jti`. The PAT cache answers without a database
/// round trip in the common case, and hears of other nodes' writes through the change feed.
pub(crate) async fn check(state: &AppState, token: &str) -> Result<Result<Live, Dead>, StoreError> {
    let claims = match state.keys.verify(state.store.as_ref(), token).await {
        Ok(claims) => claims,
        Err(rejection) => return Ok(Err(Dead::Jwt(rejection))),
    };
    let Some(identity_id) = IdentityId::parse(&claims.identity_id) else {
        return Ok(Err(Dead::BadIdentity));
    };
    let Some(pat_id) = PatId::parse(&claims.client_id) else {
        return Ok(Err(Dead::BadClient));
    };
    let record = match state.pats.get(&pat_id).await? {
        None => return Ok(Err(Dead::Deleted)),
        Some(record) => record,
    };
    if record.pat.expiry.is_expired(OffsetDateTime::now_utc()) {
        return Ok(Err(Dead::Expired));
    }
    if record.revokes_token_issued_at(claims.iat) {
        return Ok(Err(Dead::Rotated));
    }
    if record.revokes_token(&claims.jti, claims.iat) {
        return Ok(Err(Dead::Revoked));
    }
    Ok(Ok(Live {
        claims,
        pat_id,
        identity_id,
        record,
    }))
}

impl Live {
    /// The caller this token makes of whoever presents it. Its rights are the ones fixed in the
    /// token when it was minted.
    pub(crate) fn caller(&self) -> Caller {
        Caller {
            identity_id: self.identity_id.clone(),
            pat_id: Some(self.pat_id.clone()),
            self_rotate: self.record.pat.scope.allows_self_rotation(),
            rights: Rights::from_names(self.claims.rights.iter().map(AsRef::as_ref)),
            whole_scope: self
                .claims
                .scope
                .iter()
                .any(|entry| entry == patd_core::scope::SCOPE_ALL),
        }
    }
}

/// Who called introspection or revocation, and the record of the PAT it came as.
pub(crate) struct Authed {
    pub caller: Caller,
    pub record: Arc<ExchangeRecord>,
}

/// The caller of introspection or revocation: a client by its PAT's id and secret (HTTP Basic
/// first, then the form), with the rights an exchange would grant it now; or else a live bearer
/// token. Neither, or a bad one, is 401 `invalid_client`.
pub(crate) async fn client_or_bearer(
    state: &AppState,
    headers: &HeaderMap,
    form_id: Option<String>,
    form_secret: Option<String>,
    peer: Option<IpAddr>,
) -> Result<Authed, ApiError> {
    if let Some((id, secret)) = basic_credentials(headers).or(form_id.zip(form_secret)) {
        let client = authenticate_client(state, &id, &secret, peer).await?;
        let grant = client.grant();
        let caller = Caller {
            identity_id: grant.owner.id.clone(),
            pat_id: Some(grant.pat_id.clone()),
            self_rotate: grant.scope.allows_self_rotation(),
            rights: grant.rights,
            whole_scope: grant
                .scope
                .entries()
                .iter()
                .any(|entry| entry == patd_core::scope::SCOPE_ALL),
        };
        return Ok(Authed {
            caller,
            record: client.record,
        });
    }
    let token = bearer_token(headers).ok_or(ApiError::InvalidClient)?;
    match check(state, token).await? {
        Ok(live) => Ok(Authed {
            caller: live.caller(),
            record: live.record,
        }),
        Err(_) => Err(ApiError::InvalidClient),
    }
}

/// A client that proved it holds a live PAT's secret, with what the exchange decided at `at`
/// (decided once: the digest comparison is the exchange's cost).
pub(crate) struct Client {
    pub record: Arc<ExchangeRecord>,
    pub at: OffsetDateTime,
    rights: Rights,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl Client {
    /// The grant decided for this client, borrowing from its record.
    pub(crate) fn grant(&self) -> Grant<'_> {
        Grant {
            pat_id: &self.record.pat.id,
            owner: &self.record.owner,
            scope: &self.record.pat.scope,
            rights: self.rights,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }
}

/// Authenticates a client by a PAT's id and secret exactly as the token endpoint does: the same
/// answer for every bad credential, in the same time, counted against the failure limits.
pub(crate) async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    client_secret: &str,
    peer: Option<IpAddr>,
) -> Result<Client, ApiError> {
    // A malformed id or a secret with a bad checksum is refused without a lookup, and not
    // counted as a failure: it cannot be a guess at a real secret.
    let (Some(pat_id), Ok(secret)) = (PatId::parse(client_id), Secret::parse(client_secret)) else {
        return Err(ApiError::InvalidClient);
    };
    crate::context::note_client_id(pat_id.as_str());
    let record = state.pats.get(&pat_id).await?;
    let at = OffsetDateTime::now_utc();
    let decided = decide(record.as_deref(), &secret, at)
        .map(|grant| (grant.rights, grant.issued_at, grant.expires_at));
    match (record, decided) {
        (Some(record), Some((rights, issued_at, expires_at))) => Ok(Client {
            record,
            at,
            rights,
            issued_at,
            expires_at,
        }),
        (record, _) => {
            state
                .auth_failures
                .record(record.as_deref().map(|record| (&pat_id, record)), peer);
            let client = match record {
                Some(_) => FailedClient::Known(&pat_id),
                None => FailedClient::Unknown,
            };
            Err(refusal(state, client, peer))
        }
    }
}

/// The answer to a failed authentication: 401, or 429 once `client` has failed too often from
/// `peer` (counted only here, after the secret was checked, so a correct secret is never
/// refused).
fn refusal(state: &AppState, client: FailedClient<'_>, peer: Option<IpAddr>) -> ApiError {
    match peer.map(|ip| state.limits.record_failure(client, ip)) {
        Some(Err(retry_after)) => ApiError::RateLimited(retry_after),
        _ => ApiError::InvalidClient,
    }
}

/// HTTP Basic credentials (RFC 6749 §2.3.1), if the request has them.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The bearer token of `Authorization`, if that is what it holds.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// How often each node forgets the revocations of tokens that have expired.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prunes revoked tokens past their `exp`, by the configured clock, every `interval`.
pub(crate) fn prune_forever(state: AppState, interval: Duration) {
    tokio::spawn(async move {
        let mut every = crate::state::housekeeping(interval);
        loop {
            every.tick().await;
            let now = state.config.clock.now();
            match state.store.prune_revoked_tokens(now).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "revocations of expired tokens pruned"),
                Err(err) => tracing::warn!(error = %err, "could not prune revoked tokens"),
            }
        }
    });
}

/// Revokes the access token `token`, whose verified claims are `claims`, for `by` (EXTENSIONS
/// E10): allowed to the PAT that minted it and to a caller that may patch or delete that PAT
/// (`Caller::may_revoke_token`), else 400 `unauthorized_client`, whether or not the token is
/// still live, so that the answer tells no one else which it is. A live token is revoked and
/// audited as `token.revoked` with its `jti`; every node refuses it from its next check on.
pub(crate) async fn revoke_token(
    state: &AppState,
    token: &str,
    claims: &AccessTokenClaims<'static>,
    by: &Authed,
) -> Result<(), ApiError> {
    let (Some(client_id), Some(owner_id)) = (
        PatId::parse(&claims.client_id),
        IdentityId::parse(&claims.identity_id),
    ) else {
        return Ok(());
    };
    let record = state.pats.get(&client_id).await?;
    if !by.caller.may_revoke_token(
        &client_id,
        &owner_id,
        record.as_deref().map(|record| &record.pat),
    ) {
        return Err(ApiError::UnauthorizedClient(
            "the access token was not issued to this client",
        ));
    }
    // Already dead (its PAT deleted, expired or rotated, or the token revoked): nothing to do.
    let Ok(live) = check(state, token).await? else {
        return Ok(());
    };
    let (Ok(issued_at), Ok(expires_at)) = (
        OffsetDateTime::from_unix_timestamp(live.claims.iat),
        OffsetDateTime::from_unix_timestamp(live.claims.exp),
    ) else {
        // A verified token's times are patd's own; none is out of range.
        return Ok(());
    };
    let revocation = patd_core::exchange::TokenRevocation {
        pat_id: live.pat_id.clone(),
        jti: live.claims.jti.to_string(),
        issued_at,
        expires_at,
    };
    let event = crate::audit::event(
        patd_core::audit::EventType::TokenRevoked,
        crate::audit::identity_actor(&by.record.owner),
        Some(crate::audit::pat_target(&live.record.pat)),
    )
    .detail("jti", revocation.jti.as_str());
    let outcome = state.store.revoke_token(&revocation, &event).await?;
    state.pats.invalidate(&live.pat_id).await;
    if matches!(
        outcome,
        patd_store::TokenRevoked::Revoked | patd_store::TokenRevoked::WithEarlierTokens
    ) {
        crate::audit::committed(&event);
    }
    Ok(())
}
