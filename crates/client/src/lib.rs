//! `patd-client`: an async Rust SDK for the Personal Access Tokens API, on reqwest and
//! `patd-proto`. It talks to patd and to a SailPoint tenant alike: the same paths, the same
//! client-credentials exchange.
//!
//! **API boundary**: the public types here are what Rust users build against.
//!
//! A [`Client`] is built from the server's base URL and a client id and secret (a PAT's id and
//! secret). It exchanges them at `/oauth/token` itself, caches the access token and refreshes it
//! before it expires, and waits out a 429's `Retry-After` up to [`ClientBuilder::max_retries`]
//! times. Each call names the API version ([`ApiVersion`]); answers are the wire types of
//! `patd-proto`, and a refusal is an [`Error`] typed by status, carrying the server's
//! [`ErrorResponseDto`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), patd_client::Error> {
//! use patd_client::{
//!     ApiVersion, Client, CreatePersonalAccessTokenRequest, Error, JsonPatchOperation,
//!     ListOptions,
//! };
//!
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .credentials("<client id>", "<client secret>")
//!     .build()?;
//!
//! // Create a PAT: its secret is in this answer and nowhere else.
//! let created = client
//!     .create(
//!         ApiVersion::V2025,
//!         &CreatePersonalAccessTokenRequest {
//!             name: Some("nightly".into()),
//!             scope: Some(vec!["sp:scopes:all".into()]),
//!             user_aware_token_never_expires: Some(true),
//!             ..Default::default()
//!         },
//!     )
//!     .await?;
//! println!("{} {}", created.id, created.secret);
//!
//! // List the caller's own PATs.
//! let page = client.list(ApiVersion::V2025, &ListOptions::mine()).await?;
//! for pat in page.items {
//!     println!("{} {}", pat.id, pat.name);
//! }
//!
//! // Rename it with a JSON Patch, then delete it.
//! let rename = JsonPatchOperation {
//!     op: "replace".into(),
//!     path: "/name".into(),
//!     from: None,
//!     value: Some("nightly-prod".into()),
//! };
//! client.patch(ApiVersion::V2025, &created.id, &[rename]).await?;
//! match client.delete(ApiVersion::V2025, &created.id).await {
//!     Ok(()) | Err(Error::NotFound(_)) => {}
//!     Err(other) => return Err(other),
//! }
//! # Ok(()) }
//! ```

/// The error type: one variant per kind of answer.
mod error;

pub use error::Error;
pub use patd_proto::{
    BulkUpdateRequest, CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse,
    ErrorResponseDto, GetPersonalAccessTokenResponse, JsonPatchOperation,
    RotatePersonalAccessTokenRequest, TokenResponse,
};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Which prefix a call goes to. They differ in expiry rules and patchable paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V3,
    Beta,
    V2024,
    V2025,
    /// `/personal-access-tokens/v1`.
    V1,
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 5] = [
        ApiVersion::V3,
        ApiVersion::Beta,
        ApiVersion::V2024,
        ApiVersion::V2025,
        ApiVersion::V1,
    ];

    /// The collection path, e.g. `/v3/personal-access-tokens`.
    pub fn collection(self) -> &'static str {
        match self {
            ApiVersion::V3 => "/v3/personal-access-tokens",
            ApiVersion::Beta => "/beta/personal-access-tokens",
            ApiVersion::V2024 => "/v2024/personal-access-tokens",
            ApiVersion::V2025 => "/v2025/personal-access-tokens",
            ApiVersion::V1 => "/personal-access-tokens/v1",
        }
    }

    /// Reads `v3`, `beta`, `v2024`, `v2025` or `v1`.
    pub fn parse(raw: &str) -> Option<ApiVersion> {
        match raw.to_ascii_lowercase().as_str() {
            "v3" => Some(ApiVersion::V3),
            "beta" => Some(ApiVersion::Beta),
            "v2024" => Some(ApiVersion::V2024),
            "v2025" => Some(ApiVersion::V2025),
            "v1" => Some(ApiVersion::V1),
            _ => None,
        }
    }
}

/// Query parameters of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `me`, an identity id, or `None` for the whole tenant.
    pub owner_id: Option<String>,
    pub filters: Option<String>,
    pub sorters: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
    /// Ask for the total (`X-Total-Count`).
    pub count: bool,
}

impl ListOptions {
    /// The caller's own PATs.
    pub fn mine() -> ListOptions {
        ListOptions {
            owner_id: Some("me".to_owned()),
            ..ListOptions::default()
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(owner) = &self.owner_id {
            query.push(("owner-id", owner.clone()));
        }
        if let Some(filters) = &self.filters {
            query.push(("filters", filters.clone()));
        }
        if let Some(sorters) = &self.sorters {
            query.push(("sorters", sorters.clone()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = self.offset {
            query.push(("offset", offset.to_string()));
        }
        if self.count {
            query.push(("count", "true".to_owned()));
        }
        query
    }
}

/// One page of a list, with the total when it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<GetPersonalAccessTokenResponse>,
    pub total: Option<u64>,
}

/// How the client authenticates.
#[derive(Clone)]
enum Auth {
    /// A PAT: exchanged for access tokens, cached and refreshed.
    Credentials {
        client_id: String,
        client_secret: String,
    },
    /// A ready access token, used as is.
    Token(String),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    auth: Option<Auth>,
    max_retries: u32,
    refresh_before: Option<Duration>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Authenticate with a PAT's id and secret (OAuth 2 client credentials).
    pub fn credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.auth = Some(Auth::Credentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// Authenticate with an access token obtained elsewhere.
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Token(token.into()));
        self
    }

    /// How many times a 429 is retried after its `Retry-After` (default 3).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Refresh the access token this long before it expires (default: a tenth of its life, at
    /// most a minute).
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = Some(margin);
        self
    }

    /// Use this reqwest client (timeouts, proxies, TLS roots).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base_url)
            .map_err(|err| Error::Config(format!("base URL '{base_url}': {err}")))?;
        let auth = self.auth.ok_or_else(|| {
            Error::Config(
                "no credentials: give a client id and secret, or an access token".to_owned(),
            )
        })?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base_url,
                auth,
                max_retries: self.max_retries,
                refresh_before: self.refresh_before,
                http,
                token: Mutex::new(None),
            }),
        })
    }
}

/// A client. Cheap to clone; clones share the cached access token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    auth: Auth,
    max_retries: u32,
    refresh_before: Option<Duration>,
    http: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

impl Client {
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            auth: None,
            max_retries: 3,
            refresh_before: None,
            http: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Exchanges the client's PAT for a fresh access token (not cached).
    pub async fn exchange(&self) -> Result<TokenResponse, Error> {
        let Auth::Credentials {
            client_id,
            client_secret,
        } = &self.inner.auth
        else {
            return Err(Error::Config(
                "an access-token client has no credentials to exchange".to_owned(),
            ));
        };
        let url = format!("{}/oauth/token", self.inner.base_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
        ];
        let response = self
            .send_with_retries(|| self.inner.http.post(&url).form(&form))
            .await?;
        decode(response).await
    }

    /// A valid access token: the cached one, or a new one when it is within a tenth of its life
    /// (at most a minute) of expiring.
    pub async fn access_token(&self) -> Result<String, Error> {
        if let Auth::Token(token) = &self.inner.auth {
            return Ok(token.clone());
        }
        let mut cached = self.inner.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| Instant::now() < token.refresh_at)
        {
            return Ok(token.value.clone());
        }
        let fresh = self.exchange().await?;
        let lifetime = Duration::from_secs(u64::try_from(fresh.expires_in).unwrap_or_default());
        let margin = self
            .inner
            .refresh_before
            .unwrap_or_else(|| (lifetime / 10).min(Duration::from_secs(60)));
        *cached = Some(CachedToken {
            value: fresh.access_token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(fresh.access_token)
    }

    async fn forget_token(&self) {
        *self.inner.token.lock().await = None;
    }

    pub async fn create(
        &self,
        version: ApiVersion,
        request: &CreatePersonalAccessTokenRequest,
    ) -> Result<CreatePersonalAccessTokenResponse, Error> {
        let response = self
            .call(Method::POST, version.collection(), |builder| {
                builder.json(request)
            })
            .await?;
        decode(response).await
    }

    pub async fn list(&self, version: ApiVersion, options: &ListOptions) -> Result<Page, Error> {
        let query = options.query();
        let response = self
            .call(Method::GET, version.collection(), |builder| {
                builder.query(&query)
            })
            .await?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let items = decode(response).await?;
        Ok(Page { items, total })
    }

    pub async fn patch(
        &self,
        version: ApiVersion,
        id: &str,
        operations: &[JsonPatchOperation],
    ) -> Result<GetPersonalAccessTokenResponse, Error> {
        let path = format!("{}/{}", version.collection(), encode_segment(id));
        let body = serde_json::to_vec(operations).map_err(|err| Error::Decode(err.to_string()))?;
        let response = self
            .call(Method::PATCH, &path, |builder| {
                builder
                    .header("content-type", "application/json-patch+json")
                    .body(body.clone())
            })
            .await?;
        decode(response).await
    }

    pub async fn delete(&self, version: ApiVersion, id: &str) -> Result<(), Error> {
        let path = format!("{}/{}", version.collection(), encode_segment(id));
        self.call(Method::DELETE, &path, |builder| builder).await?;
        Ok(())
    }

    /// **patd only** `POST /patd/v1/personal-access-tokens/{id}/rotate`: a new secret for the
    /// PAT, in the answer and nowhere else. The old secret keeps exchanging for the request's
    /// `grace_period_seconds`. A SailPoint tenant has no such route (404).
    pub async fn rotate(
        &self,
        id: &str,
        request: &RotatePersonalAccessTokenRequest,
    ) -> Result<CreatePersonalAccessTokenResponse, Error> {
        let path = format!(
            "/patd/v1/personal-access-tokens/{}/rotate",
            encode_segment(id)
        );
        let response = self
            .call(Method::POST, &path, |builder| builder.json(request))
            .await?;
        decode(response).await
    }

    /// **patd only** `POST /patd/v1/personal-access-tokens/self/rotate`: rotates the PAT this
    /// client authenticates with (its scope must hold `patd:self-rotate`). Build a new client
    /// with the answer's secret; this one's secret stops exchanging after the grace period.
    pub async fn rotate_self(
        &self,
        request: &RotatePersonalAccessTokenRequest,
    ) -> Result<CreatePersonalAccessTokenResponse, Error> {
        let response = self
            .call(
                Method::POST,
                "/patd/v1/personal-access-tokens/self/rotate",
                |builder| builder.json(request),
            )
            .await?;
        decode(response).await
    }

    /// `PATCH /personal-access-tokens/v1/bulk-update`: one patch on up to 25 PATs.
    pub async fn bulk_update(
        &self,
        ids: &[String],
        operations: &[JsonPatchOperation],
    ) -> Result<Vec<GetPersonalAccessTokenResponse>, Error> {
        let patch = operations
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::Decode(err.to_string()))?;
        let request = BulkUpdateRequest {
            ids: ids.to_vec(),
            patch,
        };
        let response = self
            .call(
                Method::PATCH,
                "/personal-access-tokens/v1/bulk-update",
                |builder| builder.json(&request),
            )
            .await?;
        decode(response).await
    }

    /// Sends an authenticated request: a 401 once refreshes the token and retries, a 429 waits
    /// for `Retry-After`, and any other error status becomes an [`Error`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let url = format!("{}{}", self.inner.base_url, path);
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let result = self
                .send_with_retries(|| {
                    build(
                        self.inner
                            .http
                            .request(method.clone(), &url)
                            .bearer_auth(&token),
                    )
                })
                .await;
            match result {
                Err(Error::Unauthorized(_))
                    if !refreshed && matches!(self.inner.auth, Auth::Credentials { .. }) =>
                {
                    // The cached token may have been revoked or expired early: try a fresh one once.
                    self.forget_token().await;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    async fn send_with_retries(
        &self,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Error> {
        let mut attempt = 0;
        loop {
            let response = build().send().await.map_err(Error::Transport)?;
            if response.status() == StatusCode::TOO_MANY_REQUESTS
                && attempt < self.inner.max_retries
            {
                let wait = retry_after(response.headers()).unwrap_or(Duration::from_secs(1));
                tracing::debug!(?wait, attempt, "rate limited; waiting");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return check(response).await;
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(300)))
}

/// Percent-encodes a path segment, so an id can never change the path.
fn encode_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn check(response: Response) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry = retry_after(response.headers());
    let body = response.text().await.map_err(Error::Transport)?;
    Err(Error::from_status(status, &body, retry))
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    let bytes = response.bytes().await.map_err(Error::Transport)?;
    serde_json::from_slice(&bytes).map_err(|err| Error::Decode(err.to_string()))
}
