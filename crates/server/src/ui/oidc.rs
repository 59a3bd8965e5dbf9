//! OpenID Connect sign-in to the web page: discovery, the authorization request, the callback.
//!
//! The provider's metadata and keys are discovered once and kept; the authorization request
//! carries a state, a nonce and a PKCE challenge; the callback checks the ID token, finds (or
//! makes) the identity it names and opens its session.
//!
//! Nothing the provider or the browser sends is logged or shown back: a failure is logged as the
//! stage it happened at, in words of ours.

use super::session::{self, SIGN_IN_COOKIE};
use super::view;
use crate::error::{ApiError, ErrorDetail};
use crate::state::{AppState, OidcConfig};
use crate::{admin, context};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use patd_core::audit::Actor;
use patd_core::identity::Identity;
use patd_core::web::{same_token, SignInMethod, WebSecret};
use patd_store::OidcLogin;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Every call to the provider (discovery, its keys, the token endpoint) ends within this.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sign-in may take at the provider, from the redirect to the callback.
const LOGIN_LIFETIME: time::Duration = time::Duration::minutes(10);
/// How far the provider's clock may be ahead of ours when it stamps `iat`.
const CLOCK_SKEW: i64 = 60;
/// Where the provider sends the browser back, under the public URL.
const CALLBACK_PATH: &str = "/ui/sign-in/oidc/callback";
/// Who an identity made at its first sign-in was made by, in the audit trail.
const AUTO_CREATOR: &str = "oidc";

/// The client, as built from discovery: the authorization endpoint is known, the token and
/// userinfo endpoints may be.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider as this node knows it: its metadata and keys, discovered once and kept until
/// an ID token names a key they lack. A failed discovery is not kept, so the next sign-in tries
/// again.
pub(crate) struct Oidc {
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl Oidc {
    /// The HTTP client every provider call goes through: bounded in time, and following no
    /// redirect, so a provider cannot point patd at another address.
    pub(crate) fn new() -> Result<Oidc, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(PROVIDER_TIMEOUT)
            .timeout(PROVIDER_TIMEOUT)
            .build()?;
        Ok(Oidc {
            http,
            provider: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider, discovered now if it is not known yet.
    async fn provider(&self, state: &AppState, config: &OidcConfig) -> Result<Arc<Client>, Failed> {
        let mut known = self.provider.lock().await;
        if let Some(client) = known.as_ref() {
            return Ok(client.clone());
        }
        let client = Arc::new(self.discover(state, config).await?);
        *known = Some(client.clone());
        Ok(client)
    }

    /// The provider discovered again, because `stale` lacked the key an ID token was signed
    /// with; unless another sign-in has already done so since.
    async fn rediscover(
        &self,
        state: &AppState,
        config: &OidcConfig,
        stale: &Arc<Client>,
    ) -> Result<Arc<Client>, Failed> {
        let mut known = self.provider.lock().await;
        if let Some(client) = known.as_ref() {
            if !Arc::ptr_eq(client, stale) {
                return Ok(client.clone());
            }
        }
        *known = None;
        let client = Arc::new(self.discover(state, config).await?);
        *known = Some(client.clone());
        Ok(client)
    }

    /// `{issuer}/.well-known/openid-configuration` and the JWKS it names. The library checks
    /// that the document's `issuer` is the one configured.
    async fn discover(&self, state: &AppState, config: &OidcConfig) -> Result<Client, Failed> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|_| Failed::provider("the issuer URL could not be parsed"))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|err| {
                // The kind of failure is for the operator; the provider's words stay out.
                Failed::provider(match err {
                    DiscoveryError::Request(_) => "discovery: the provider could not be reached",
                    DiscoveryError::Response(..) => {
                        "discovery: the provider answered with an error or not in JSON"
                    }
                    DiscoveryError::Parse(_) => {
                        "discovery: the document or the JWKS could not be read"
                    }
                    DiscoveryError::Validation(_) => {
                        "discovery: the document's issuer is not --oidc-issuer exactly"
                    }
                    _ => "discovery failed",
                })
            })?;
        // client_secret_basic is the default (OpenID Connect Discovery §3); client_secret_post
        // only for a provider that offers nothing else of the two.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let redirect = RedirectUrl::new(format!("{}{CALLBACK_PATH}", state.config.public_url))
            .map_err(|_| Failed::provider("the public URL makes no redirect URI"))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            Some(ClientSecret::new(config.client_secret.clone())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type))
    }
}

/// Why a sign-in stopped, as a page and a line for the log.
struct Failed {
    status: StatusCode,
    heading: &'static str,
    lines: &'static [&'static str],
    /// For the request log: our own words, never the provider's.
    log: &'static str,
}

impl Failed {
    /// The provider could not be reached, or answered with something that does not check out.
    fn provider(log: &'static str) -> Failed {
        Failed {
            status: StatusCode::BAD_GATEWAY,
            heading: "Sign-in failed",
            lines: &[
                "The sign-in provider could not be reached, or its answer could not be checked.",
                "Try again in a moment; if it keeps failing, tell an administrator.",
            ],
            log,
        }
    }

    /// A callback that this browser's sign-in did not ask for, or asked for too long ago.
    fn not_valid(log: &'static str) -> Failed {
        Failed {
            status: StatusCode::BAD_REQUEST,
            heading: "Sign-in not valid",
            lines: &[
                "This sign-in was not started in this browser, was already used, or took too long.",
                "Start again from the sign-in page.",
            ],
            log,
        }
    }

    fn refused(heading: &'static str, lines: &'static [&'static str], log: &'static str) -> Failed {
        Failed {
            status: StatusCode::FORBIDDEN,
            heading,
            lines,
            log,
        }
    }

    fn page(self) -> Response {
        let lines = self.lines.iter().map(|line| (*line).to_owned()).collect();
        let mut response = view::message(self.status, None, self.heading, lines);
        response
            .extensions_mut()
            .insert(ErrorDetail(format!("oidc: {}", self.log)));
        response
    }
}

/// The provider and its settings, when OpenID Connect is configured.
fn configured(state: &AppState) -> Option<(&OidcConfig, &Oidc)> {
    Some((state.config.oidc.as_ref()?, state.oidc.as_deref()?))
}

/// `GET /ui/sign-in/oidc`: a fresh state, nonce and PKCE verifier are stored (by the state's
/// digest), the state also goes into this browser's sign-in cookie, and the browser goes on to
/// the provider.
pub(crate) async fn start(State(state): State<AppState>) -> Response {
    context::note_web();
    let Some((config, oidc)) = configured(&state) else {
        return view::not_found().await;
    };
    // Each start stores a login and may call the provider: an address gets so many.
    if let Err(refused) = session::sign_in_budget(&state).await {
        return refused;
    }
    let client = match oidc.provider(&state, config).await {
        Ok(client) => client,
        Err(failed) => return failed.page(),
    };
    // Three secrets of 256 bits; the thread's generator is not held across an await.
    let [login_state, nonce, verifier] = {
        let mut rng = rand::rng();
        [(); 3].map(|()| WebSecret::generate(&mut rng))
    };
    let nonce = nonce.as_str().to_owned();
    // 64 hex digits: within PKCE's 43 to 128 unreserved characters (RFC 7636 §4.1).
    let verifier = PkceCodeVerifier::new(verifier.as_str().to_owned());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let login = OidcLogin {
        state_digest: login_state.digest(),
        nonce: nonce.clone(),
        pkce_verifier: verifier.secret().clone(),
        return_to: None,
        created: patd_core::to_millis(OffsetDateTime::now_utc()),
    };
    if let Err(err) = state.store.insert_oidc_login(&login).await {
        return view::error_page(err.into(), None).await;
    }
    let sent_state = login_state.as_str().to_owned();
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(sent_state),
            move || Nonce::new(nonce),
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&state, SIGN_IN_COOKIE, Some(login_state.as_str())),
    );
    response
}

/// The first value of `name` in a query string.
fn parameter<'q>(pairs: &'q [(String, String)], name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `GET /ui/sign-in/oidc/callback?state=…&code=…`: the login this browser started is taken (so
/// a callback works once), the code exchanged, the ID token checked and its person signed in.
pub(crate) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    context::note_web();
    let Some((config, oidc)) = configured(&state) else {
        return view::not_found().await;
    };
    if let Err(refused) = session::sign_in_budget(&state).await {
        return refused;
    }
    match sign_in(&state, config, oidc, &headers, query.as_deref()).await {
        Ok(Ok(identity)) => {
            session::end_previous(&state, &headers).await;
            match session::start_session(&state, &identity, SignInMethod::OpenIdConnect, "/ui/")
                .await
            {
                Ok(response) => response,
                Err(err) => view::error_page(err, None).await,
            }
        }
        Ok(Err(failed)) => failed.page(),
        Err(err) => view::error_page(err, None).await,
    }
}

/// The identity the callback signs in, a refusal, or an error of patd's own (the database).
async fn sign_in(
    state: &AppState,
    config: &OidcConfig,
    oidc: &Oidc,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Result<Arc<Identity>, Failed>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let Some(login_state) = parameter(&pairs, "state").and_then(WebSecret::parse) else {
        return Ok(Err(Failed::not_valid("the callback has no state")));
    };
    // The state must come back to the browser that was sent away with it: another site cannot
    // hand someone a callback of its own login (login CSRF).
    let same_browser = session::cookie(state, headers, SIGN_IN_COOKIE)
        .is_some_and(|cookie| same_token(&cookie, login_state.as_str()));
    if !same_browser {
        return Ok(Err(Failed::not_valid(
            "the state is not this browser's sign-in cookie",
        )));
    }
    let Some(login) = state.store.take_oidc_login(&login_state.digest()).await? else {
        return Ok(Err(Failed::not_valid("no login under way has this state")));
    };
    if OffsetDateTime::now_utc() - login.created > LOGIN_LIFETIME {
        return Ok(Err(Failed::not_valid("the login began too long ago")));
    }
    // The provider's error and its description are not shown: they are its words, and a link
    // could carry any text in them.
    if parameter(&pairs, "error").is_some() {
        return Ok(Err(Failed {
            status: StatusCode::BAD_REQUEST,
            heading: "Sign-in not completed",
            lines: &[
                "The sign-in provider did not sign you in.",
                "Start again from the sign-in page.",
            ],
            log: "the provider answered with an error",
        }));
    }
    let Some(code) = parameter(&pairs, "code") else {
        return Ok(Err(Failed::not_valid("the callback has no code")));
    };
    let claims = match verified_claims(state, config, oidc, &login, code).await {
        Ok(claims) => claims,
        Err(failed) => return Ok(Err(failed)),
    };
    match_identity(state, config, &claims).await
}

/// The code exchanged for tokens and the ID token's claims, checked: its signature against the
/// provider's keys (discovered again once if they lack its `kid`), `iss`, `aud`, `exp`, `iat`
/// and `nonce`.
async fn verified_claims(
    state: &AppState,
    config: &OidcConfig,
    oidc: &Oidc,
    login: &OidcLogin,
    code: &str,
) -> Result<Map<String, Value>, Failed> {
    let client = oidc.provider(state, config).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| Failed::provider("the provider names no token endpoint"))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
        .request_async(&oidc.http)
        .await
        .map_err(|err| match err {
            RequestTokenError::ServerResponse(_) => {
                Failed::not_valid("the provider refused the code")
            }
            RequestTokenError::Request(_) => {
                Failed::provider("the token endpoint could not be reached")
            }
            _ => Failed::provider("the token endpoint's answer could not be read"),
        })?;
    let Some(id_token) = response.id_token() else {
        return Err(Failed::provider("the token endpoint sent no ID token"));
    };
    let nonce = Nonce::new(login.nonce.clone());
    let started = login.created.unix_timestamp();
    let check = |client: &Client| {
        let verifier = client
            .id_token_verifier()
            .set_issue_time_verifier_fn(move |iat| {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                let iat = iat.timestamp();
                // Issued during this login, allowing for the provider's clock running ahead.
                if iat > now + CLOCK_SKEW || iat < started - CLOCK_SKEW {
                    Err("issued outside this sign-in".to_owned())
                } else {
                    Ok(())
                }
            });
        id_token.claims(&verifier, &nonce).map(|_| ())
    };
    let checked = match check(&client) {
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            // A key the provider rotated in since it was discovered.
            let client = oidc.rediscover(state, config, &client).await?;
            check(&client)
        }
        other => other,
    };
    checked.map_err(|_| Failed::provider("the ID token did not check out"))?;
    payload(&id_token.to_string())
        .ok_or_else(|| Failed::provider("the ID token's claims could not be read"))
}

/// The claims of a compact JWT, as JSON. The library types the standard claims only, and the
/// claim that names the identity is a setting; the signature was checked over these bytes.
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let encoded = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The identity the claims name: with `email`, a verified address, matched to an identity's
/// address (any case) and else to its name; with any other claim, its string value matched to
/// a name. Unknown, it is made a `USER` with `--oidc-auto-create`, and refused without.
async fn match_identity(
    state: &AppState,
    config: &OidcConfig,
    claims: &Map<String, Value>,
) -> Result<Result<Arc<Identity>, Failed>, ApiError> {
    let claim = config.identity_claim.as_str();
    let Some(value) = claims
        .get(claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
    else {
        return Ok(Err(Failed::refused(
            "Not allowed",
            &["The sign-in provider did not say who you are in the claim patd is set to read."],
            "the ID token lacks the identity claim",
        )));
    };
    let by_email = claim == "email";
    if by_email && claims.get("email_verified") != Some(&Value::Bool(true)) {
        return Ok(Err(Failed::refused(
            "Not allowed",
            &["The sign-in provider has not verified your mail address."],
            "the mail address is not verified",
        )));
    }
    let store = state.store.as_ref();
    let mut found = None;
    if by_email {
        found = store.identity_by_email(value).await?;
    }
    if found.is_none() {
        found = store.identity_by_name(value).await?;
    }
    let id = match found {
        Some(identity) => identity.id,
        None if config.auto_create => match auto_create(state, value, by_email).await? {
            Some(id) => id,
            None => return Ok(Err(Failed::refused(
                "No patd identity for this account",
                &["Your account's name cannot be a patd identity's name. Ask an administrator."],
                "the identity claim is not a valid identity name",
            ))),
        },
        None => {
            return Ok(Err(Failed::refused(
                "No patd identity for this account",
                &["Ask an administrator to make you one: patd identity create."],
                "no identity matches",
            )))
        }
    };
    // Through the cache the session's pages read from.
    match state.identities.get(store, &id).await? {
        Some(identity) => Ok(Ok(identity)),
        None => Ok(Err(Failed::refused(
            "No patd identity for this account",
            &["Ask an administrator to make you one: patd identity create."],
            "the identity was deleted meanwhile",
        ))),
    }
}

/// A `USER` named `name`, made as `patd identity create` makes one (an `identity.created`
/// event), with its mail address when `name` is one. `None`: the name is not a valid identity
/// name. Made by a concurrent sign-in meanwhile: that one.
async fn auto_create(
    state: &AppState,
    name: &str,
    is_email: bool,
) -> Result<Option<patd_core::ids::IdentityId>, ApiError> {
    let store = state.store.as_ref();
    let identity = match admin::create_identity_by(
        store,
        Actor::system(AUTO_CREATOR),
        name,
        "USER",
        &[],
    )
    .await
    {
        Ok(identity) => identity,
        Err(crate::service::ServiceError::Rule(patd_core::Rule::IdentityNameTaken(_))) => {
            return Ok(store
                .identity_by_name(name)
                .await?
                .map(|identity| identity.id));
        }
        Err(crate::service::ServiceError::Rule(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if is_email {
        if let Ok(email) = patd_core::notify::parse_email(name) {
            store
                .set_identity_email(identity.id.as_str(), Some(&email))
                .await?;
        }
    }
    Ok(Some(identity.id))
}

#[cfg(test)]
mod tests {
    use super::payload;
    use base64::Engine;

    #[test]
    fn reads_any_claim_of_a_compact_jwt() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = engine.encode(r#"{"sub":"1","upn":"ada","email_verified":true}"#);
        let jwt = format!("{}.{body}.sig", engine.encode(r#"{"alg":"RS256"}"#));
        let claims = payload(&jwt).unwrap_or_default();
        assert_eq!(claims.get("upn").and_then(|v| v.as_str()), Some("ada"));
        assert_eq!(
            claims.get("email_verified"),
            Some(&serde_json::Value::Bool(true))
        );
        assert!(payload("not a jwt").is_none());
    }
}
