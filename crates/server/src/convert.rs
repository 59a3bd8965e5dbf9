//! Domain and store values turned into wire types, by hand: only `patd-proto` is serialized.

use crate::state::Tenant;
use patd_core::exchange::Grant;
use patd_core::expiry::Family;
use patd_core::identity::Identity;
use patd_core::pat::{NewPat, PatRecord};
use patd_core::secret::Secret;
use patd_proto::{
    AccessTokenClaims, CreatePersonalAccessTokenResponse, GetPersonalAccessTokenResponse,
    IdentityView, PatOwner,
};
use patd_store::OwnedPat;

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
    let pat = &new_pat.record;
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

pub(crate) fn claims(
    grant: &Grant,
    issuer: &str,
    tenant: &Tenant,
    jti: String,
) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: issuer.to_owned(),
        iat: grant.issued_at.unix_timestamp(),
        exp: grant.expires_at.unix_timestamp(),
        jti,
        client_id: grant.pat_id.as_str().to_owned(),
        identity_id: grant.owner_id.as_str().to_owned(),
        user_name: grant.owner_name.clone(),
        tenant_id: tenant.id.clone(),
        org: tenant.org.clone(),
        pod: tenant.pod.clone(),
        internal: false,
        strong_auth: false,
        authorities: grant
            .levels
            .iter()
            .map(|level| level.as_str().to_owned())
            .collect(),
        scope: grant.scope.entries().to_vec(),
        rights: grant.rights.idn_names(),
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
