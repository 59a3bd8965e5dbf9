//! `TestApp`: a real patd on 127.0.0.1 with a fresh SQLite file, plus a helper per route.

use patd_proto::{CreatePersonalAccessTokenResponse, IdentityView};
use patd_server::admin::{self, TokenOptions};
use patd_server::ratelimit::Limit;
use patd_server::{AppState, ServerConfig};
use patd_store::DynStore;
use reqwest::{Client, Response};
use serde_json::Value;
use std::sync::Once;
use tempfile::TempDir;

pub use patd_core::expiry::AdminExpiry;

/// Every PAT prefix, and whether it is in the never-expires-aware family.
pub const PREFIXES: [(&str, bool); 5] = [
    ("/v3/personal-access-tokens", false),
    ("/beta/personal-access-tokens", false),
    ("/v2024/personal-access-tokens", false),
    ("/v2025/personal-access-tokens", true),
    ("/personal-access-tokens/v1", true),
];

pub const CLASSIC: &str = "/v3/personal-access-tokens";
pub const AWARE: &str = "/v2025/personal-access-tokens";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub store: DynStore,
    pub bootstrap: CreatePersonalAccessTokenResponse,
    /// A bearer token minted from the bootstrap PAT (ORG_ADMIN, every right).
    pub admin_token: String,
    _dir: TempDir,
}

/// An identity with a bearer token.
#[derive(Debug, Clone)]
pub struct Actor {
    pub identity: IdentityView,
    pub pat: CreatePersonalAccessTokenResponse,
    pub token: String,
}

fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .init();
        }
    });
}

/// The PostgreSQL server for tests, when `.ci/run` (or you) set `PATD_TEST_POSTGRES_URL`.
pub fn postgres_url() -> Option<String> {
    std::env::var("PATD_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether this run of the suite is on PostgreSQL (`PATD_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("PATD_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// A fresh, empty database for one test: a SQLite file in `dir`, or on the PostgreSQL run a new
/// schema in the run's database (`.ci/run` drops the whole database afterwards).
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    if on_postgres() {
        let base = postgres_url().expect("PATD_TEST_BACKEND=postgres needs PATD_TEST_POSTGRES_URL");
        fresh_postgres_schema(&base).await
    } else {
        format!("sqlite://{}", dir.join("patd.db").display())
    }
}

/// A new schema in the database at `base`, and a URL whose connections use it.
pub async fn fresh_postgres_schema(base: &str) -> String {
    use sqlx::Connection;
    let schema = format!("t_{}", patd_core::ids::random_hex_id(&mut rand::rng()));
    let mut connection = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    spawn_app_wrapped(adjust, |store| store).await
}

/// As `spawn_app_with`, with the server reaching the store through `wrap(store)`.
pub async fn spawn_app_wrapped(
    adjust: impl FnOnce(&mut ServerConfig),
    wrap: impl FnOnce(DynStore) -> DynStore,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    spawn_app_full(dir, &url, adjust, wrap, std::future::pending())
        .await
        .0
}

/// As `spawn_app_with`, serving until `shutdown` resolves; the handle ends when `serve` returns.
pub async fn spawn_app_until(
    adjust: impl FnOnce(&mut ServerConfig),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<std::io::Result<()>>) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    spawn_app_full(dir, &url, adjust, |store| store, shutdown).await
}

/// A node on the database at `url` (for tests that run several nodes on one database).
pub async fn spawn_app_on(url: &str) -> TestApp {
    spawn_app_full_on(url, |_| {}).await
}

/// As `spawn_app_on`, with the configuration adjusted.
pub async fn spawn_app_full_on(url: &str, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    spawn_app_full(
        tempfile::tempdir().unwrap(),
        url,
        adjust,
        |store| store,
        std::future::pending(),
    )
    .await
    .0
}

/// A node on the database at `url`: prepared (the issuer is its own `http://<address>` unless
/// `adjust` says otherwise), not yet serving.
pub struct PreparedNode {
    pub listener: tokio::net::TcpListener,
    pub base: String,
    pub state: AppState,
    /// The store without the node's wrapping, for tests to inspect.
    pub store: DynStore,
}

impl PreparedNode {
    pub async fn new(
        url: &str,
        adjust: impl FnOnce(&mut ServerConfig),
        wrap: impl FnOnce(DynStore) -> DynStore,
    ) -> PreparedNode {
        init_logging();
        let store: DynStore = patd_store::connect(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ServerConfig::new(base.clone());
        // Tests make many requests quickly; the tests of the limits turn them back on.
        config.rate_limit = Limit::Off;
        config.exchange_failure_limit = Some(Limit::Off);
        config.unknown_client_failure_limit = Some(Limit::Off);
        adjust(&mut config);
        let state = AppState::prepare(wrap(store.clone()), config, None)
            .await
            .unwrap();
        PreparedNode {
            listener,
            base,
            state,
            store,
        }
    }

    /// Serves until `shutdown` resolves; the handle ends when `serve` returns.
    pub fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let serve_options = self.state.config.serve_options();
        let router = patd_server::router(self.state);
        tokio::spawn(patd_server::serve(
            self.listener,
            router,
            serve_options,
            shutdown,
        ))
    }
}

async fn spawn_app_full(
    dir: TempDir,
    url: &str,
    adjust: impl FnOnce(&mut ServerConfig),
    wrap: impl FnOnce(DynStore) -> DynStore,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<std::io::Result<()>>) {
    let node = PreparedNode::new(url, adjust, wrap).await;
    let store = node.store.clone();
    let base = node.base.clone();
    let bootstrap = admin::bootstrap(store.as_ref(), 10).await.unwrap().unwrap();
    let served = node.serve(shutdown);
    let client = Client::new();
    let mut app = TestApp {
        base,
        client,
        store,
        bootstrap,
        admin_token: String::new(),
        _dir: dir,
    };
    app.admin_token = app.exchange(&app.bootstrap.id, &app.bootstrap.secret).await;
    (app, served)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Exchanges a PAT for an access token with a form body; panics unless it works.
    pub async fn exchange(&self, id: &str, secret: &str) -> String {
        let response = self
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .await;
        assert_eq!(response.status(), 200, "exchange failed");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The status an exchange of `id` and `secret` gets.
    pub async fn exchange_status(&self, id: &str, secret: &str) -> u16 {
        self.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .await
        .status()
        .as_u16()
    }

    pub async fn token_form(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn identity(&self, name: &str, level: &str, rights: &[&str]) -> IdentityView {
        let rights: Vec<String> = rights.iter().map(|r| (*r).to_owned()).collect();
        admin::create_identity(self.store.as_ref(), name, level, &rights)
            .await
            .unwrap()
    }

    /// A PAT made with `patd token create`'s code path.
    pub async fn admin_pat(
        &self,
        owner: &str,
        name: &str,
        scope: &[&str],
        expires: AdminExpiry,
        managed: bool,
    ) -> CreatePersonalAccessTokenResponse {
        let options = TokenOptions {
            name: name.to_owned(),
            scope: scope.iter().map(|s| (*s).to_owned()).collect(),
            validity_seconds: None,
            expires,
            managed,
            limit: 10,
        };
        admin::create_token(self.store.as_ref(), owner, options)
            .await
            .unwrap()
    }

    /// A new identity with one PAT of `scope` and a token minted from it.
    pub async fn actor(&self, name: &str, level: &str, rights: &[&str], scope: &[&str]) -> Actor {
        let identity = self.identity(name, level, rights).await;
        let pat = self
            .admin_pat(&identity.id, "login", scope, AdminExpiry::Default, false)
            .await;
        let token = self.exchange(&pat.id, &pat.secret).await;
        Actor {
            identity,
            pat,
            token,
        }
    }

    pub async fn create(&self, token: &str, prefix: &str, body: Value) -> Response {
        self.client
            .post(self.url(prefix))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates and returns the body, panicking unless it is a 200.
    pub async fn create_ok(&self, token: &str, prefix: &str, body: Value) -> Value {
        let response = self.create(token, prefix, body).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn list(&self, token: &str, prefix: &str, query: &str) -> Response {
        let url = if query.is_empty() {
            self.url(prefix)
        } else {
            format!("{}?{query}", self.url(prefix))
        };
        self.client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn list_ok(&self, token: &str, prefix: &str, query: &str) -> Vec<Value> {
        let response = self.list(token, prefix, query).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn patch(&self, token: &str, prefix: &str, id: &str, body: Value) -> Response {
        self.client
            .patch(format!("{}/{id}", self.url(prefix)))
            .bearer_auth(token)
            .header("content-type", "application/json-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, token: &str, prefix: &str, id: &str) -> Response {
        self.client
            .delete(format!("{}/{id}", self.url(prefix)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// GETs `url` and reads its JSON body.
pub async fn get_json(client: &Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Reads an ErrorResponseDto, checks its shape and `X-Request-Id`, and returns
/// `(status, detailCode, first cause)`.
pub async fn error_of(response: Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    let (content_type, request_id) = (header("content-type"), header("x-request-id"));
    let body: Value = response.json().await.unwrap();
    let (code, cause) = error_body_of(&content_type, &request_id, &body);
    (status, code, cause)
}

/// Checks an ErrorResponseDto's content type, `trackingId` (= `X-Request-Id`) and messages, and
/// returns `(detailCode, first cause)`.
pub fn error_body_of(content_type: &str, request_id: &str, body: &Value) -> (String, String) {
    assert_eq!(content_type, "application/json");
    assert_eq!(body["trackingId"], request_id, "{body}");
    assert!(is_hex32(body["trackingId"].as_str().unwrap()));
    assert_eq!(body["messages"][0]["locale"], "en-US");
    assert_eq!(body["messages"][0]["localeOrigin"], "DEFAULT");
    assert!(body["messages"][0]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let cause = body["causes"]
        .as_array()
        .unwrap()
        .first()
        .map_or(String::new(), |c| c["text"].as_str().unwrap().to_owned());
    (body["detailCode"].as_str().unwrap().to_owned(), cause)
}

pub fn is_hex32(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `2017-07-11T18:45:37.098Z`: UTC, exactly milliseconds.
pub fn is_millis_timestamp(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'.'
        && bytes[23] == b'Z'
        && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

pub fn parse_ts(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

pub fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// A PAT written straight through the store, as if created at `created`, for tests that need
/// control of timestamps. Returns its id.
pub async fn seed_pat(
    store: &DynStore,
    owner_id: &str,
    name: &str,
    created: time::OffsetDateTime,
    expires: AdminExpiry,
    managed: bool,
    last_used: Option<time::OffsetDateTime>,
) -> String {
    use patd_core::expiry::ExpiryRequest;
    use patd_core::pat::{plan_create, CreateInput};
    let input = CreateInput {
        name: Some(name.to_owned()),
        scope: None,
        validity_seconds: None,
        expiry: ExpiryRequest::Admin(expires),
        managed,
    };
    let owner = patd_core::ids::IdentityId::parse(owner_id).unwrap();
    let (new_pat, _) = plan_create(owner, input, created, &mut rand::rng()).unwrap();
    store
        .insert_pat(&new_pat, None, &test_event())
        .await
        .unwrap();
    if let Some(at) = last_used {
        let last_use = patd_store::LastUse {
            id: new_pat.record.id.clone(),
            at,
            not_after: at,
            daily: true,
            new_ips: Vec::new(),
            events: Vec::new(),
        };
        store.record_last_used(&[last_use]).await.unwrap();
    }
    new_pat.record.id.to_string()
}

/// The secret with its last character changed, whatever that character is.
pub fn typo(secret: &str) -> String {
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    format!("{}{last}", &secret[..secret.len() - 1])
}

/// An audit event for writes a test makes on the store directly.
pub fn test_event() -> patd_core::audit::AuditEvent {
    patd_core::audit::AuditEvent::new(
        patd_core::audit::EventType::PatCreated,
        patd_core::audit::Actor::system("test"),
        None,
        time::OffsetDateTime::now_utc(),
        &mut rand::rng(),
    )
}
