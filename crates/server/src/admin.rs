//! What the `patd` command does to the database directly, server running or not: create
//! identities and tokens, and seed an empty database with its bootstrap credential.

use crate::convert;
use crate::service::{self, ServiceError};
use patd_core::audit::{Actor, EventType, Target};
use patd_core::expiry::{AdminExpiry, ExpiryRequest, Family};
use patd_core::identity::Identity;
use patd_core::ids::IdentityId;
use patd_core::listing::{ListParams, ListRequest, MAX_LIMIT};
use patd_core::name::IdentityName;
use patd_core::pat::CreateInput;
use patd_core::rights::{Level, Right, Rights};
use patd_core::Rule;
use patd_proto::{CreatePersonalAccessTokenResponse, GetPersonalAccessTokenResponse, IdentityView};
use patd_store::{PatQuery, Store, StoreError};
use time::OffsetDateTime;

/// The identity an empty database gets, and the name of its first PAT.
pub const BOOTSTRAP_IDENTITY: &str = "admin";
pub const BOOTSTRAP_TOKEN: &str = "bootstrap";

/// Who the administration commands act as in the audit trail.
const CLI: &str = "cli";

/// `patd identity create`.
pub async fn create_identity(
    store: &dyn Store,
    name: &str,
    level: &str,
    rights: &[String],
) -> Result<IdentityView, ServiceError> {
    let identity = Identity {
        id: IdentityId::generate(&mut rand::rng()),
        name: IdentityName::parse(name)?,
        levels: vec![Level::parse(level)?],
        extra_rights: rights
            .iter()
            .map(|right| Right::parse_known(right))
            .collect::<Result<Rights, Rule>>()?,
    };
    let target = Target {
        kind: Target::IDENTITY,
        id: identity.id.as_str().to_owned(),
        name: Some(identity.name.as_str().to_owned()),
        owner_id: None,
    };
    let event = crate::audit::event(EventType::IdentityCreated, Actor::system(CLI), Some(target));
    match store.insert_identity(&identity, &event).await {
        Err(StoreError::IdentityNameTaken) => {
            return Err(Rule::IdentityNameTaken(identity.name.as_str().to_owned()).into())
        }
        other => other.map_err(ServiceError::from)?,
    }
    crate::audit::committed(&event);
    Ok(convert::identity_view(&identity))
}

/// The options of `patd token create`.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    pub name: String,
    pub scope: Vec<String>,
    pub validity_seconds: Option<i64>,
    pub expires: AdminExpiry,
    pub managed: bool,
    pub limit: u32,
}

/// `patd identity list`: every identity, by name.
pub async fn list_identities(store: &dyn Store) -> Result<Vec<IdentityView>, ServiceError> {
    Ok(store
        .identities()
        .await?
        .iter()
        .map(convert::identity_view)
        .collect())
}

/// The identity whose id, or else whose name, is `owner`.
async fn find_identity(store: &dyn Store, owner: &str) -> Result<Identity, ServiceError> {
    let by_id = match IdentityId::parse(owner) {
        Some(id) => store.identity(&id).await?,
        None => None,
    };
    match by_id {
        Some(identity) => Ok(identity),
        None => Ok(store
            .identity_by_name(owner)
            .await?
            .ok_or_else(|| Rule::UnknownIdentity(owner.to_owned()))?),
    }
}

/// `patd token list`: every PAT of `owner` (an identity id or name), or of everyone, managed
/// ones included, in the API's default order (`created`, then `id`), read a page at a time.
pub async fn list_tokens(
    store: &dyn Store,
    owner: Option<&str>,
) -> Result<Vec<GetPersonalAccessTokenResponse>, ServiceError> {
    let owner = match owner {
        Some(owner) => Some(find_identity(store, owner).await?.id),
        None => None,
    };
    let mut tokens = Vec::new();
    loop {
        let query = PatQuery {
            owner: owner.clone(),
            include_managed: true,
            request: ListRequest::parse(&ListParams {
                offset: Some(&tokens.len().to_string()),
                ..ListParams::default()
            })?,
        };
        let page = store.list_pats(&query).await?;
        let full = page.items.len() >= MAX_LIMIT as usize;
        tokens.extend(
            page.items
                .iter()
                .map(|owned| convert::get_response(owned, Family::NeverExpiresAware)),
        );
        if !full {
            return Ok(tokens);
        }
    }
}

/// `patd token create`: `owner` is an identity id or name.
pub async fn create_token(
    store: &dyn Store,
    owner: &str,
    options: TokenOptions,
) -> Result<CreatePersonalAccessTokenResponse, ServiceError> {
    let identity = find_identity(store, owner).await?;
    let input = CreateInput {
        name: Some(options.name),
        scope: (!options.scope.is_empty()).then_some(options.scope),
        validity_seconds: options.validity_seconds,
        expiry: ExpiryRequest::Admin(options.expires),
        managed: options.managed,
    };
    service::create_pat(
        store,
        &identity,
        input,
        Some(options.limit),
        // The operator at the command line is not bound by the server's --max-pat-lifetime.
        patd_core::expiry::LifetimePolicy::default(),
        OffsetDateTime::now_utc(),
        Actor::system(CLI),
    )
    .await
}

/// `patd identity sign-in-link`: a one-time link that signs `who` (an identity id or name) in to
/// the web page, valid for `valid` (default 15 minutes). Only its digest is stored; the URL
/// returned is the one place its secret appears.
pub async fn sign_in_link(
    store: &dyn Store,
    who: &str,
    valid: Option<std::time::Duration>,
    public_url: &str,
) -> Result<String, ServiceError> {
    let identity = find_identity(store, who).await?;
    let valid = valid
        .map(|valid| time::Duration::try_from(valid).map_err(|_| Rule::SignInLinkValidity))
        .transpose()?;
    let (link, secret) = patd_core::web::plan_link(
        identity.id.clone(),
        valid,
        OffsetDateTime::now_utc(),
        &mut rand::rng(),
    )?;
    store.insert_sign_in_link(&link).await?;
    Ok(format!(
        "{}/ui/sign-in/link?token={}",
        public_url.trim_end_matches('/'),
        secret.as_str()
    ))
}

/// On a database with no identity, creates `admin` (ORG_ADMIN) and its `bootstrap` PAT, and
/// returns the PAT with its secret; otherwise returns `None`.
pub async fn bootstrap(
    store: &dyn Store,
    limit: u32,
) -> Result<Option<CreatePersonalAccessTokenResponse>, ServiceError> {
    if !store.has_no_identities().await? {
        return Ok(None);
    }
    match create_identity(store, BOOTSTRAP_IDENTITY, Level::OrgAdmin.as_str(), &[]).await {
        // Another process bootstrapped the same database first.
        Err(ServiceError::Rule(Rule::IdentityNameTaken(_))) => return Ok(None),
        other => other?,
    };
    let options = TokenOptions {
        name: BOOTSTRAP_TOKEN.to_owned(),
        scope: Vec::new(),
        validity_seconds: None,
        expires: AdminExpiry::Default,
        managed: false,
        limit,
    };
    create_token(store, BOOTSTRAP_IDENTITY, options)
        .await
        .map(Some)
}
