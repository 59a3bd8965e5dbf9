//! The JSON shapes of patd's wire contract (CONTRACT.md), and their serde: nothing else.
//!
//! This crate is an API boundary: the server and the Rust client both depend on it, so a field
//! renamed here is a change to the wire. It knows no HTTP framework, no database and no rule.
//!
//! The types follow SailPoint's Personal Access Tokens API: field names in camelCase, date-times
//! written with milliseconds and `Z` ([`timestamp::format`]), and every date-time a client sends
//! read by one function ([`timestamp::parse`]).
//!
//! ```
//! use patd_proto::{timestamp, CreatePersonalAccessTokenRequest, ErrorResponseDto};
//!
//! // A create body, as a client sends it.
//! let request: CreatePersonalAccessTokenRequest = serde_json::from_str(
//!     r#"{"name": "ci-deploy", "scope": ["sp:scopes:all"], "expirationDate": "2027-01-01T00:00:00Z"}"#,
//! )?;
//! assert_eq!(request.name.as_deref(), Some("ci-deploy"));
//! let expires = request.expiration_date.map(timestamp::format);
//! assert_eq!(expires.as_deref(), Some("2027-01-01T00:00:00.000Z"));
//!
//! // The body of every 400, 403, 404, 405 and 500.
//! let error: ErrorResponseDto = serde_json::from_str(
//!     r#"{"detailCode": "400.1 Bad request content", "trackingId": "0c1d",
//!         "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": "bad name"}],
//!         "causes": []}"#,
//! )?;
//! assert_eq!(error.messages[0].text, "bad name");
//! # Ok::<(), serde_json::Error>(())
//! ```

/// **[patd]** The Shared Signals transmitter's bodies (EXTENSIONS E11), in the shape of the
/// models of SailPoint's `shared_signals_framework_ssf` SDK module: snake_case, as SSF 1.0 is.
pub mod ssf;
/// Timestamps: printed with millisecond precision and a `Z` suffix; every client date-time read
/// by one rule (`timestamp::parse`).
pub mod timestamp;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use time::OffsetDateTime;

/// The owner of a PAT as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatOwner {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// Body of `POST …/personal-access-tokens`. Every field is optional here so that the domain,
/// not serde, decides what a missing value means.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePersonalAccessTokenRequest {
    // The document says what the domain requires (CONTRACT §2), though serde takes any.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, min_length = 1)
    )]
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 50))]
    pub scope: Option<Vec<String>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 15, maximum = 43200))]
    pub access_token_validity_seconds: Option<i64>,
    #[serde(default, with = "timestamp::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expiration_date: Option<OffsetDateTime>,
    #[serde(default)]
    pub user_aware_token_never_expires: Option<bool>,
}

/// **[patd]** Body of `POST /patd/v1/personal-access-tokens/{id}/rotate` and `…/self/rotate`
/// (EXTENSIONS E5); every member may be left out, and so may the body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatePersonalAccessTokenRequest {
    /// How long the old secret keeps exchanging; 0 (the default) ends it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400))]
    pub grace_period_seconds: Option<i64>,
    /// A new expiry (in the future); left out, the PAT keeps its own.
    #[serde(
        default,
        with = "timestamp::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expiration_date: Option<OffsetDateTime>,
    /// Whether the access tokens minted before stop working at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_issued_tokens: Option<bool>,
}

/// Answer to a create: the only place the secret is ever shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePersonalAccessTokenResponse {
    pub id: String,
    pub secret: String,
    pub scope: Vec<String>,
    pub name: String,
    pub owner: PatOwner,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
    pub access_token_validity_seconds: i64,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    pub expiration_date: Option<OffsetDateTime>,
}

impl std::fmt::Debug for CreatePersonalAccessTokenResponse {
    // The secret must never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePersonalAccessTokenResponse")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One PAT in a list, or the answer to a patch.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPersonalAccessTokenResponse {
    pub id: String,
    pub name: String,
    pub scope: Vec<String>,
    pub owner: PatOwner,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    pub last_used: Option<OffsetDateTime>,
    pub managed: bool,
    pub access_token_validity_seconds: i64,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    pub expiration_date: Option<OffsetDateTime>,
    /// Present only in the never-expires-aware family (`/v2025`, `/personal-access-tokens/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_aware_token_never_expires: Option<bool>,
}

/// One localized message inside an [`ErrorResponseDto`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageDto {
    pub locale: String,
    pub locale_origin: String,
    pub text: String,
}

impl ErrorMessageDto {
    pub fn en(text: impl Into<String>) -> Self {
        ErrorMessageDto {
            locale: "en-US".to_owned(),
            locale_origin: "DEFAULT".to_owned(),
            text: text.into(),
        }
    }
}

/// The body of every 400, 403, 404, 405 and 500.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponseDto {
    pub detail_code: String,
    pub tracking_id: String,
    pub messages: Vec<ErrorMessageDto>,
    pub causes: Vec<ErrorMessageDto>,
}

/// The body of a 401 on the API: `{"error": "..."}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnauthorizedBody {
    pub error: String,
}

/// The body of a failed token exchange (RFC 6749 §5.2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

/// The credentials of a token exchange, wherever they came from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub grant_type: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The answer to a successful token exchange (CONTRACT §5).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub scope: String,
    pub tenant_id: String,
    pub pod: String,
    pub org: String,
    pub identity_id: String,
    pub user_name: String,
    pub internal: bool,
    pub strong_auth: bool,
    pub strong_auth_supported: bool,
    pub enabled: bool,
    pub jti: String,
}

/// The claims of an access token patd mints. Minting borrows every text from where it already
/// lives (no copies on the hot path); verifying reads owned ones (`AccessTokenClaims<'static>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: Cow<'a, str>,
    /// The owner's identity id (RFC 9068 §2.2). Tokens minted before patd 0.13 have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Cow<'a, str>>,
    /// The services the token is for (`--audience`; RFC 9068 §2.2): a string when there is one,
    /// an array when there are several. Tokens minted before patd 0.13 have none.
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience<'a>,
    pub iat: i64,
    pub exp: i64,
    /// patd mints none, but a token that carries one is not used before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Cow<'a, str>,
    pub client_id: Cow<'a, str>,
    pub identity_id: Cow<'a, str>,
    pub user_name: Cow<'a, str>,
    pub tenant_id: Cow<'a, str>,
    pub org: Cow<'a, str>,
    pub pod: Cow<'a, str>,
    pub internal: bool,
    pub strong_auth: bool,
    pub authorities: Vec<Cow<'a, str>>,
    pub scope: Cow<'a, [String]>,
    pub rights: Vec<Cow<'a, str>>,
}

/// A JWT's `aud` (RFC 7519 §4.1.3): one string or an array of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience<'a>(pub Vec<Cow<'a, str>>);

impl Audience<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether it names any of `accepted`.
    pub fn any_of(&self, accepted: &[String]) -> bool {
        self.0
            .iter()
            .any(|aud| accepted.iter().any(|ok| ok == aud.as_ref()))
    }
}

impl Serialize for Audience<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Audience(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![Cow::Owned(one)],
            OneOrMany::Many(many) => many.into_iter().map(Cow::Owned).collect(),
        }))
    }
}

/// `GET /oauth/info`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthInfo {
    pub tenant_id: String,
    pub tenant_name: String,
    pub token_endpoint: String,
    pub pod: String,
    pub org: String,
    pub issuer: String,
    pub jwks_uri: String,
}

/// What `patd identity create` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub levels: Vec<String>,
    pub rights: Vec<String>,
}

/// One signing key, as `patd key list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    /// The JWT header's `kid`: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Always `EdDSA` (Ed25519).
    pub algorithm: String,
    #[serde(with = "timestamp")]
    pub created: OffsetDateTime,
    /// When it was retired; null while it verifies.
    #[serde(with = "timestamp::option")]
    pub retired: Option<OffsetDateTime>,
    /// Whether it is the key new tokens are signed with (the newest; a node started with
    /// `--signing-key` signs with that file's key instead).
    pub current: bool,
    /// The id of the key-encryption key it is sealed with; null when stored in the clear.
    pub sealed_with: Option<String>,
}

/// Body of `/personal-access-tokens/v1/bulk-update`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkUpdateRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 25))]
    pub ids: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<JsonPatchOperation>))]
    pub patch: Vec<serde_json::Value>,
}

/// One RFC 6902 operation, as documented; patches are read as plain JSON and applied by the
/// domain.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonPatchOperation {
    /// `add`, `remove`, `replace`, `move`, `copy` or `test`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(add|remove|replace|move|copy|test)$")
    )]
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Any JSON value: a string for `/name`, an array for `/scope`, null, …
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Option<serde_json::Value>,
}

/// The body of a 429.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitBody {
    pub message: String,
}

/// Who acted, in an audit event (EXTENSIONS E4).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    /// `IDENTITY`, `SYSTEM` or `ANONYMOUS`.
    #[serde(rename = "type")]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
}

/// What was acted on, in an audit event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditTarget {
    /// `PERSONAL_ACCESS_TOKEN`, `IDENTITY` or `SIGNING_KEY`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub owner_id: Option<String>,
}

/// One audit event, as `GET /patd/v1/audit-events` lists them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventDto {
    pub id: String,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub time: OffsetDateTime,
    /// `pat.created`, `pat.updated`, `pat.deleted`, `pat.used`, `auth.failed`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: AuditActor,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub target: Option<AuditTarget>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub source_ip: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub user_agent: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub tracking_id: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub outcome: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// **[patd]** Body of `POST /patd/v1/webhooks` (EXTENSIONS E7).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookRequest {
    /// An http or https URL; loopback, private and link-local targets are refused.
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    #[serde(default)]
    pub url: Option<String>,
    /// Event types (`pat.expiring`, `pat.deleted`, …) or `["*"]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, required = true))]
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// **[patd]** Body of `PATCH /patd/v1/webhooks/{id}`: the members given replace the webhook's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// **[patd]** A webhook, as listed; its secret is shown only when it is created.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
}

/// **[patd]** Answer to a webhook's creation: the only place its signing secret is shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
    /// `whsec_…`: the Standard Webhooks signing secret.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// **[patd]** One delivery of a webhook: its message, and how its attempts went.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    pub id: String,
    /// The `webhook-id` header: the same on a redelivery.
    pub message_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    #[serde(with = "timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt: Option<OffsetDateTime>,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_attempt: Option<OffsetDateTime>,
    /// The HTTP status the receiver last answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "timestamp::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered: Option<OffsetDateTime>,
}

/// One token found in public content, as a secret-scanning service reports it to the token's
/// issuer (GitHub's secret scanning partner program, EXTENSIONS E9): its members are GitHub's,
/// in snake_case. Only `token` is required.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedToken {
    /// The string found.
    pub token: String,
    /// The reporter's name for the kind of token (the pattern that matched).
    #[serde(rename = "type", default)]
    pub token_type: Option<String>,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What was scanned (`content`, `commit`, `npm`, …).
    #[serde(default)]
    pub source: Option<String>,
}

impl std::fmt::Debug for ReportedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedToken")
            .field("token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

/// What the issuer found a reported token to be.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLabel {
    /// A live PAT's secret, revoked now.
    TruePositive,
    /// Anything else: nothing was changed.
    FalsePositive,
}

/// The answer for one reported token, in the report's order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedTokenLabel {
    /// The reported string, as it was sent.
    pub token_raw: String,
    /// The reported `type`, as it was sent (empty when none was).
    pub token_type: String,
    pub label: TokenLabel,
}

impl std::fmt::Debug for ReportedTokenLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedTokenLabel")
            .field("token_raw", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("label", &self.label)
            .finish()
    }
}

/// The form of `POST /oauth/revoke` (RFC 7009 §2.1).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRequest {
    /// The token to revoke: a PAT's secret. Required (RFC 7009 §2.1); optional here only so
    /// that a form without it is answered `invalid_request` rather than refused by serde.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    pub token: Option<String>,
    /// `refresh_token`, `access_token` or anything else: a hint only (RFC 7009 §2.1), and every
    /// kind is looked for whatever it says.
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// The client's PAT id, when it authenticates in the form rather than with HTTP Basic
    /// (needed to revoke an access token, not a PAT secret).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client's PAT secret, with `client_id`.
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for RevocationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationRequest")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// **[patd]** The answer of `POST /oauth/introspect` (RFC 7662 §2.2): `active` alone for
/// anything but a live access token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    pub active: bool,
    /// The PAT's scope, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The PAT that minted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The owner's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The owner's identity id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub aud: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

/// **[patd]** The RFC 8414 authorization server metadata, at
/// `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Empty: patd has no authorization endpoint (RFC 8414 makes the member required).
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
}

/// The public keys that sign secret-scanning reports, as GitHub publishes them
/// (`/meta/public_keys/secret_scanning`) and `--secret-scanning-keys` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretScanningKeys {
    pub public_keys: Vec<SecretScanningKey>,
}

/// One signing key of a secret-scanning service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretScanningKey {
    /// What `Github-Public-Key-Identifier` names.
    pub key_identifier: String,
    /// The ECDSA P-256 public key, PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
    pub key: String,
    /// Whether the service signs with it now. Every listed key verifies: a service keeps
    /// signing with the old key for a while when it rotates.
    #[serde(default)]
    pub is_current: bool,
}
