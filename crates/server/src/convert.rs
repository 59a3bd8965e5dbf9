//! Domain and store values turned into wire types, by hand: only `patd-proto` is serialized.

use crate::state::Tenant;
use patd_core::exchange::Grant;
use patd_core::expiry::Family;
use patd_core::identity::Identity;
use patd_core::pat::{NewPat, PatRecord};
use patd_core::secret::Secret;
use patd_proto::{
    AccessTokenClaims, Audience, CreatePersonalAccessTokenResponse, GetPersonalAccessTokenResponse,
    IdentityView, PatOwner,
};
use patd_store::OwnedPat;
use std::borrow::Cow;

fn owner(pat: &PatRecord, owner_name: &str) -> PatOwner {
    PatOwner {
        kind: "IDENTITY".to_owned(),
        id: pat.owner_id.as_str().to_owned(),
        name: owner_name.to_owned(),
    }
}

pub(crate) fn get_response(owned: &OwnedPat, family: Family) -> GetPersonalAccessTokenResponse {
    let pat = &owned.pat;
    GetPersonalAccessTokenResponse {
        id: pat.id.as_str().to_owned(),
        name: pat.name.as_str().to_owned(),
        scope: pat.scope.entries().to_vec(),
        owner: owner(pat, &owned.owner_name),
        created: pat.created,
        last_used: pat.last_used,
        managed: pat.managed,
        access_token_validity_seconds: i64::from(pat.validity.seconds()),
        expiration_date: pat.expiry.date(),
        user_aware_token_never_expires: (family == Family::NeverExpiresAware)
            .then_some(pat.never_expires_acknowledged),
    }
}

pub(crate) fn create_response(
    new_pat: &NewPat,
    secret: &Secret,
    owner_name: &str,
) -> CreatePersonalAccessTokenResponse {
    secret_response(&new_pat.record, secret, owner_name)
}

/// A PAT with the secret it was just given (a create, a rotation).
pub(crate) fn secret_response(
    pat: &PatRecord,
    secret: &Secret,
    owner_name: &str,
) -> CreatePersonalAccessTokenResponse {
    CreatePersonalAccessTokenResponse {
        id: pat.id.as_str().to_owned(),
        secret: secret.expose().to_owned(),
        scope: pat.scope.entries().to_vec(),
        name: pat.name.as_str().to_owned(),
        owner: owner(pat, owner_name),
        created: pat.created,
        access_token_validity_seconds: i64::from(pat.validity.seconds()),
        expiration_date: pat.expiry.date(),
    }
}

/// The claims of the token `grant` allows, borrowing every text.
pub(crate) fn claims<'a>(
    grant: &Grant<'a>,
    issuer: &'a str,
    audiences: &'a [String],
    tenant: &'a Tenant,
    jti: &'a str,
) -> AccessTokenClaims<'a> {
    AccessTokenClaims {
        iss: Cow::Borrowed(issuer),
        sub: Some(Cow::Borrowed(grant.owner.id.as_str())),
        aud: Audience(
            audiences
                .iter()
                .map(|aud| Cow::Borrowed(aud.as_str()))
                .collect(),
        ),
        iat: grant.issued_at.unix_timestamp(),
        exp: grant.expires_at.unix_timestamp(),
        nbf: None,
        jti: Cow::Borrowed(jti),
        client_id: Cow::Borrowed(grant.pat_id.as_str()),
        identity_id: Cow::Borrowed(grant.owner.id.as_str()),
        user_name: Cow::Borrowed(grant.owner.name.as_str()),
        tenant_id: Cow::Borrowed(&tenant.id),
        org: Cow::Borrowed(&tenant.org),
        pod: Cow::Borrowed(&tenant.pod),
        internal: false,
        strong_auth: false,
        authorities: grant
            .owner
            .levels
            .iter()
            .map(|level| Cow::Borrowed(level.as_str()))
            .collect(),
        scope: Cow::Borrowed(grant.scope.entries()),
        rights: grant
            .rights
            .iter()
            .map(|right| Cow::Borrowed(right.idn()))
            .collect(),
    }
}

pub(crate) fn identity_view(identity: &Identity) -> IdentityView {
    IdentityView {
        id: identity.id.as_str().to_owned(),
        name: identity.name.as_str().to_owned(),
        kind: "IDENTITY".to_owned(),
        levels: identity.level_names(),
        rights: identity.rights().idn_names(),
    }
}

/// An audit event as the wire shows it (EXTENSIONS E4).
pub fn audit_event(event: &patd_core::audit::AuditEvent) -> patd_proto::AuditEventDto {
    patd_proto::AuditEventDto {
        id: event.id.clone(),
        time: event.time,
        kind: event.kind.as_str().to_owned(),
        actor: patd_proto::AuditActor {
            kind: event.actor.kind.as_str().to_owned(),
            id: event.actor.id.clone(),
            name: event.actor.name.clone(),
        },
        target: event.target.as_ref().map(|target| patd_proto::AuditTarget {
            kind: target.kind.to_owned(),
            id: target.id.clone(),
            name: target.name.clone(),
            owner_id: target.owner_id.clone(),
        }),
        source_ip: event.source_ip.clone(),
        user_agent: event.user_agent.clone(),
        tracking_id: event.tracking_id.clone(),
        outcome: event.outcome.as_str().to_owned(),
        details: event.details.clone(),
    }
}
