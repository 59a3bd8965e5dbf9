//! OpenID Connect sign-in to the web page, against a provider of the test's own.
//!
//! First the refusals that need no provider (a callback without its state, with a state that is
//! not the browser's sign-in cookie or that no login under way has, the routes on a server
//! without OpenID Connect); then, against a loopback provider with Ed25519 keys: PKCE,
//! client_secret_basic, the ID token's checks, key rotation, how identities are matched and
//! auto-created. Against a real provider and browser:
//! `ui-checks/oidc.mjs`.

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use patd_server::OidcConfig;
use reqwest::{redirect, Client, StatusCode};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLBACK: &str = "/ui/sign-in/oidc/callback";

fn browser() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// A server whose provider is a closed port: nothing here may need to reach it.
async fn app_with_oidc() -> TestApp {
    spawn_app_with(|config| {
        config.oidc = Some(OidcConfig {
            issuer: "http://127.0.0.1:1".to_owned(),
            client_id: "patd".to_owned(),
            client_secret: "secret".to_owned(),
            identity_claim: "email".to_owned(),
            auto_create: false,
        });
    })
    .await
}

async fn page(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn hex(byte: char) -> String {
    std::iter::repeat_n(byte, 64).collect()
}

#[tokio::test]
async fn a_callback_without_its_state_is_refused() {
    let app = app_with_oidc().await;
    let (status, body) = page(
        browser()
            .get(app.url(&format!("{CALLBACK}?code=abc")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not valid</h1>"), "{body}");
    let (status, _) = page(browser().get(app.url(CALLBACK)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_state_that_is_not_the_browsers_cookie_is_refused() {
    let app = app_with_oidc().await;
    let url = app.url(&format!("{CALLBACK}?code=abc&state={}", hex('a')));
    // No cookie at all, then another browser's.
    let (status, _) = page(browser().get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = page(
        browser()
            .get(&url)
            .header("cookie", format!("patd_sign_in={}", hex('b')))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not valid</h1>"), "{body}");
}

#[tokio::test]
async fn a_state_no_login_has_is_refused_and_the_providers_error_not_echoed() {
    let app = app_with_oidc().await;
    let state = hex('c');
    let url = app.url(&format!(
        "{CALLBACK}?error=access_denied&error_description=%3Cb%3Eevil%3C%2Fb%3E&state={state}"
    ));
    let (status, body) = page(
        browser()
            .get(&url)
            .header("cookie", format!("patd_sign_in={state}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not valid</h1>"), "{body}");
    assert!(
        !body.contains("evil") && !body.contains("access_denied"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_page_not_a_redirect() {
    let app = app_with_oidc().await;
    let response = browser()
        .get(app.url("/ui/sign-in/oidc"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    let (status, body) = page(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("<h1>Sign-in failed</h1>"), "{body}");
}

#[tokio::test]
async fn without_oidc_configured_its_routes_are_not_found() {
    let app = spawn_app().await;
    for path in ["/ui/sign-in/oidc", CALLBACK] {
        let (status, body) = page(browser().get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("<h1>Page not found</h1>"), "{path}: {body}");
    }
    let (_, sign_in) = page(browser().get(app.url("/ui/sign-in")).send().await.unwrap()).await;
    assert!(!sign_in.contains("oidc-sign-in"), "{sign_in}");
}

// ---- against a provider of the test's own --------------------------------------------------

const CLIENT_ID: &str = "patd-web";
const CLIENT_SECRET: &str = "the-client-secret";

/// What the fake provider publishes and signs with, and what it saw.
struct Provided {
    /// The keys in its JWKS, by kid.
    published: Vec<(String, Vec<u8>)>,
    /// The key ID tokens are signed with (kid, PKCS#8).
    signing: (String, Vec<u8>),
    /// The ID token's claims besides iss, aud, exp and iat; `nonce` is set per sign-in.
    claims: Value,
    discoveries: usize,
    /// Each token request: its Authorization header and form.
    token_requests: Vec<(String, Vec<(String, String)>)>,
}

/// An OpenID Connect provider on a loopback port: discovery, a JWKS of Ed25519 keys and a
/// token endpoint that answers any code with an ID token of `claims`.
struct FakeProvider {
    issuer: String,
    provided: Arc<Mutex<Provided>>,
}

fn new_key(kid: &str) -> (String, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    (kid.to_owned(), pkcs8.as_ref().to_vec())
}

impl FakeProvider {
    async fn start() -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key = new_key("key-1");
        let provided = Arc::new(Mutex::new(Provided {
            published: vec![key.clone()],
            signing: key,
            claims: json!({}),
            discoveries: 0,
            token_requests: Vec::new(),
        }));
        let (shared, base) = (provided.clone(), issuer.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (shared, base) = (shared.clone(), base.clone());
                tokio::spawn(async move {
                    let Some((line, headers, body)) = read(&mut stream).await else {
                        return;
                    };
                    let answer = answer(&base, &shared, &line, &headers, &body);
                    let text = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(text.as_bytes()).await;
                });
            }
        });
        FakeProvider { issuer, provided }
    }

    fn set<T>(&self, change: impl FnOnce(&mut Provided) -> T) -> T {
        change(&mut self.provided.lock().unwrap())
    }

    fn config(&self, claim: &str, auto_create: bool) -> OidcConfig {
        OidcConfig {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            identity_claim: claim.to_owned(),
            auto_create,
        }
    }
}

type Head = (String, Vec<(String, String)>, String);

async fn read(stream: &mut tokio::net::TcpStream) -> Option<Head> {
    let mut bytes = Vec::new();
    let end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((line, headers, String::from_utf8(body).ok()?))
}

fn answer(
    issuer: &str,
    provided: &Mutex<Provided>,
    line: &str,
    headers: &[(String, String)],
    body: &str,
) -> String {
    let mut provided = provided.lock().unwrap();
    let path = line.split(' ').nth(1).unwrap_or_default();
    match path {
        "/.well-known/openid-configuration" => {
            provided.discoveries += 1;
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/auth"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })
            .to_string()
        }
        "/jwks" => {
            let keys: Vec<Value> = provided
                .published
                .iter()
                .map(|(kid, pkcs8)| {
                    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).unwrap();
                    json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                           "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())})
                })
                .collect();
            json!({ "keys": keys }).to_string()
        }
        "/token" => {
            let authorization = headers
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
            provided.token_requests.push((authorization, form));
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut claims = json!({"iss": issuer, "aud": CLIENT_ID, "exp": now + 300, "iat": now, "sub": "subject-1"});
            for (key, value) in provided.claims.as_object().unwrap() {
                claims[key] = value.clone();
            }
            let (kid, pkcs8) = &provided.signing;
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
            header.kid = Some(kid.clone());
            let id_token = jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_ed_der(pkcs8),
            )
            .unwrap();
            json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token})
                .to_string()
        }
        _ => "{}".to_owned(),
    }
}

/// A sign-in begun: the state, nonce and PKCE challenge patd sent the browser to the provider
/// with.
struct Begun {
    state: String,
    nonce: String,
    challenge: String,
}

async fn begin(app: &TestApp, provider: &FakeProvider) -> Begun {
    let response = browser()
        .get(app.url("/ui/sign-in/oidc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/auth?", provider.issuer)),
        "{location}"
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
    let get = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("{name} missing from {location}"))
    };
    assert_eq!(get("scope"), "openid email profile");
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("client_id"), CLIENT_ID);
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("redirect_uri"), app.url(CALLBACK));
    let state = get("state");
    assert!(
        cookie.starts_with(&format!("patd_sign_in={state};")),
        "{cookie}"
    );
    let nonce = get("nonce");
    provider.set(|p| p.claims["nonce"] = Value::String(nonce.clone()));
    Begun {
        state,
        nonce,
        challenge: get("code_challenge"),
    }
}

/// The provider's redirect back, with the begun sign-in's cookie.
async fn come_back(app: &TestApp, begun: &Begun, query: &str) -> reqwest::Response {
    browser()
        .get(app.url(&format!("{CALLBACK}?{query}&state={}", begun.state)))
        .header("cookie", format!("patd_sign_in={}", begun.state))
        .send()
        .await
        .unwrap()
}

/// The name in the header of `/ui/` for the session a callback's answer opened.
async fn signed_in_as(app: &TestApp, response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/ui/");
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("patd_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, body) = page(
        browser()
            .get(app.url("/ui/"))
            .header("cookie", session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<h1>Your tokens</h1>"), "{body}");
    let who = body.split("<span class=\"who\">").nth(1).unwrap();
    who.split('<').next().unwrap().to_owned()
}

async fn app_for(provider: &FakeProvider, claim: &str, auto_create: bool) -> TestApp {
    let config = provider.config(claim, auto_create);
    spawn_app_with(move |c| c.oidc = Some(config)).await
}

#[tokio::test]
async fn a_verified_address_signs_in_its_identity_with_pkce_and_basic_auth() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", false).await;
    let alice = app.identity("alice", "USER", &[]).await;
    app.store
        .set_identity_email(&alice.id, Some("Alice@Example.com"))
        .await
        .unwrap();
    let begun = begin(&app, &provider).await;
    provider.set(|p| {
        p.claims["email"] = json!("alice@example.COM");
        p.claims["email_verified"] = json!(true);
    });
    let response = come_back(&app, &begun, "code=the-code").await;
    assert_eq!(signed_in_as(&app, response).await, "alice");

    let (authorization, form) = provider.set(|p| p.token_requests[0].clone());
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    assert_eq!(authorization, basic);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("code").as_deref(), Some("the-code"));
    assert_eq!(field("client_secret"), None);
    let verifier = field("code_verifier").unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.encode(digest.as_ref()), begun.challenge);
    assert_eq!(begun.nonce.len(), 64);

    // The same callback again: the login was used up.
    let (status, _) = page(come_back(&app, &begun, "code=the-code").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(provider.set(|p| p.token_requests.len()), 1);
}

#[tokio::test]
async fn an_unverified_or_unknown_address_is_refused() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", false).await;
    let bob = app.identity("bob", "USER", &[]).await;
    app.store
        .set_identity_email(&bob.id, Some("bob@example.com"))
        .await
        .unwrap();
    for (email, verified, heading) in [
        ("bob@example.com", json!(false), "Not allowed"),
        ("bob@example.com", Value::Null, "Not allowed"),
        (
            "nobody@example.com",
            json!(true),
            "No patd identity for this account",
        ),
    ] {
        let begun = begin(&app, &provider).await;
        provider.set(|p| {
            p.claims["email"] = json!(email);
            p.claims["email_verified"] = verified.clone();
        });
        let (status, body) = page(come_back(&app, &begun, "code=c").await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{email} {verified}");
        assert!(body.contains(&format!("<h1>{heading}</h1>")), "{body}");
        assert!(!body.contains(email), "{body}");
    }
    assert!(app
        .store
        .identity_by_name("nobody@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_address_with_no_identity_of_its_own_falls_back_to_the_name() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", false).await;
    app.identity("dave@example.com", "USER", &[]).await;
    let begun = begin(&app, &provider).await;
    provider.set(|p| {
        p.claims["email"] = json!("dave@example.com");
        p.claims["email_verified"] = json!(true);
    });
    let response = come_back(&app, &begun, "code=c").await;
    assert_eq!(signed_in_as(&app, response).await, "dave@example.com");
}

#[tokio::test]
async fn auto_create_makes_a_user_with_the_address_and_finds_it_again() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", true).await;
    for round in 0..2 {
        let begun = begin(&app, &provider).await;
        provider.set(|p| {
            p.claims["email"] = json!(if round == 0 {
                "erin@example.com"
            } else {
                "ERIN@example.com"
            });
            p.claims["email_verified"] = json!(true);
        });
        let response = come_back(&app, &begun, "code=c").await;
        assert_eq!(signed_in_as(&app, response).await, "erin@example.com");
    }
    let erin = app
        .store
        .identity_by_email("erin@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erin.name.as_str(), "erin@example.com");
    assert_eq!(
        erin.levels,
        vec![patd_core::rights::Level::parse("USER").unwrap()]
    );
    let named: Vec<_> = app
        .store
        .identities()
        .await
        .unwrap()
        .into_iter()
        .filter(|identity| {
            identity
                .name
                .as_str()
                .eq_ignore_ascii_case("erin@example.com")
        })
        .collect();
    assert_eq!(named.len(), 1);
}

#[tokio::test]
async fn another_claim_names_the_identity() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "preferred_username", false).await;
    app.identity("frank", "USER", &[]).await;
    let begun = begin(&app, &provider).await;
    // No verified address needed: the claim is not `email`.
    provider.set(|p| p.claims["preferred_username"] = json!("frank"));
    let response = come_back(&app, &begun, "code=c").await;
    assert_eq!(signed_in_as(&app, response).await, "frank");
}

#[tokio::test]
async fn a_key_rotated_in_is_found_by_discovering_again() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "preferred_username", false).await;
    app.identity("grace", "USER", &[]).await;
    provider.set(|p| p.claims["preferred_username"] = json!("grace"));
    let begun = begin(&app, &provider).await;
    assert_eq!(provider.set(|p| p.discoveries), 1);
    let response = come_back(&app, &begun, "code=c").await;
    assert_eq!(signed_in_as(&app, response).await, "grace");
    let begun = begin(&app, &provider).await;
    assert_eq!(provider.set(|p| p.discoveries), 1, "kept in memory");
    provider.set(|p| {
        let key = new_key("key-2");
        p.published.push(key.clone());
        p.signing = key;
    });
    let response = come_back(&app, &begun, "code=c").await;
    assert_eq!(signed_in_as(&app, response).await, "grace");
    assert_eq!(provider.set(|p| p.discoveries), 2);
}

/// What spoils an ID token, applied to the provider after the sign-in begins.
type Spoil = Box<dyn Fn(&mut Provided)>;

#[tokio::test]
async fn an_id_token_that_does_not_check_out_signs_no_one_in() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "preferred_username", false).await;
    app.identity("heidi", "USER", &[]).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stranger = new_key("key-1");
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "another audience",
            Box::new(|p| p.claims["aud"] = json!("someone-else")),
        ),
        (
            "another issuer",
            Box::new(|p| p.claims["iss"] = json!("http://127.0.0.1:9")),
        ),
        (
            "another nonce",
            Box::new(|p| p.claims["nonce"] = json!("0".repeat(64))),
        ),
        (
            "expired",
            Box::new(move |p| p.claims["exp"] = json!(now - 10)),
        ),
        (
            "issued an hour ago",
            Box::new(move |p| p.claims["iat"] = json!(now - 3600)),
        ),
        (
            "another key under the known kid",
            Box::new(move |p| p.signing = stranger.clone()),
        ),
    ];
    for (what, spoil) in cases {
        provider.set(|p| {
            let key = p.published[0].clone();
            p.signing = key;
            p.claims = json!({"preferred_username": "heidi"});
        });
        let begun = begin(&app, &provider).await;
        provider.set(spoil);
        let (status, body) = page(come_back(&app, &begun, "code=c").await).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}");
        assert!(body.contains("<h1>Sign-in failed</h1>"), "{what}: {body}");
    }
}

#[tokio::test]
async fn a_providers_error_is_not_echoed_and_uses_the_login_up() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", false).await;
    let begun = begin(&app, &provider).await;
    let (status, body) = page(
        come_back(
            &app,
            &begun,
            "error=access_denied&error_description=%3Cb%3Emine%3C%2Fb%3E",
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not completed</h1>"), "{body}");
    assert!(
        !body.contains("mine") && !body.contains("access_denied"),
        "{body}"
    );
    let (status, body) = page(come_back(&app, &begun, "code=c").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not valid</h1>"), "{body}");
    assert!(provider.set(|p| p.token_requests.is_empty()));
}

#[tokio::test]
async fn a_login_older_than_ten_minutes_is_refused() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "email", false).await;
    let state = hex('d');
    let secret = patd_core::web::WebSecret::parse(&state).unwrap();
    app.store
        .insert_oidc_login(&patd_store::OidcLogin {
            state_digest: secret.digest(),
            nonce: hex('e'),
            pkce_verifier: hex('f'),
            return_to: None,
            created: time::OffsetDateTime::now_utc() - time::Duration::minutes(11),
        })
        .await
        .unwrap();
    let begun = Begun {
        state,
        nonce: String::new(),
        challenge: String::new(),
    };
    let (status, body) = page(come_back(&app, &begun, "code=c").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<h1>Sign-in not valid</h1>"), "{body}");
    assert!(provider.set(|p| p.token_requests.is_empty()));
}

#[tokio::test]
async fn signing_in_again_ends_the_browsers_previous_session() {
    let provider = FakeProvider::start().await;
    let app = app_for(&provider, "preferred_username", false).await;
    app.identity("ivan", "USER", &[]).await;
    provider.set(|p| p.claims["preferred_username"] = json!("ivan"));
    let begun = begin(&app, &provider).await;
    let first = come_back(&app, &begun, "code=c").await;
    let old = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("patd_session="))
        .and_then(|value| value.split(';').next())
        .unwrap()
        .to_owned();
    let begun = begin(&app, &provider).await;
    let again = browser()
        .get(app.url(&format!("{CALLBACK}?code=c&state={}", begun.state)))
        .header(
            "cookie",
            format!("patd_sign_in={}; patd_session={old}", begun.state),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in_as(&app, again).await, "ivan");
    let stale = browser()
        .get(app.url("/ui/"))
        .header("cookie", format!("patd_session={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::SEE_OTHER);
    assert_eq!(stale.headers()["location"], "/ui/sign-in");
}
