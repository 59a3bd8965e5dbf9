//! The Shared Signals transmitter's JSON (EXTENSIONS E11): transmitter metadata, stream
//! configuration, status, verification and RFC 8936 polling. Field names are SSF 1.0's and the
//! SailPoint SDK's (`shared_signals_framework_ssf`, 2.1.72), snake_case but for `updatedAt` and
//! RFC 8936's `maxEvents`, `returnImmediately`, `setErrs` and `moreAvailable`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// `GET /.well-known/ssf-configuration` (SSF 1.0 §7.1).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransmitterMetadata {
    pub spec_version: String,
    pub issuer: String,
    pub jwks_uri: String,
    pub delivery_methods_supported: Vec<String>,
    pub configuration_endpoint: String,
    pub status_endpoint: String,
    pub verification_endpoint: String,
    pub authorization_schemes: Vec<AuthorizationScheme>,
}

/// One way a receiver authenticates to the transmitter's endpoints.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationScheme {
    /// `urn:ietf:rfc:6749` (OAuth 2.0) or `urn:ietf:rfc:6750` (bearer token).
    pub spec_urn: String,
}

/// A delivery as a create, a replace or a patch sends it; every member optional here so that
/// patd names what is missing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    #[serde(default)]
    pub method: Option<String>,
    /// The receiver's URL (push); ignored for poll, whose endpoint patd supplies.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Sent as `Authorization` with every push; never shown back.
    #[serde(default)]
    pub authorization_header: Option<String>,
}

impl std::fmt::Debug for DeliveryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryRequest")
            .field("method", &self.method)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// `POST /ssf/v1/streams`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateStreamRequest {
    #[cfg_attr(feature = "openapi", schema(required = true))]
    #[serde(default)]
    pub delivery: Option<DeliveryRequest>,
    /// CAEP event type URIs; absent: every supported one.
    #[serde(default)]
    pub events_requested: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `PUT /ssf/v1/streams` (replace) and `PATCH /ssf/v1/streams` (the members given change).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfigurationRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    #[serde(default)]
    pub stream_id: Option<String>,
    /// Required by a replace.
    #[serde(default)]
    pub delivery: Option<DeliveryRequest>,
    #[serde(default)]
    pub events_requested: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A stream's delivery as it is shown: never its authorization header.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResponse {
    pub method: String,
    pub endpoint_url: String,
}

/// A stream's configuration (SSF 1.0 §8.1.1); `updatedAt` only on a replace or a patch.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfigResponse {
    pub stream_id: String,
    pub iss: String,
    pub aud: String,
    pub delivery: DeliveryResponse,
    pub events_supported: Vec<String>,
    pub events_requested: Vec<String>,
    pub events_delivered: Vec<String>,
    pub description: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(
        rename = "updatedAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamp::option"
    )]
    pub updated_at: Option<OffsetDateTime>,
}

/// `GET|POST /ssf/v1/streams/status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatusResponse {
    pub stream_id: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /ssf/v1/streams/status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStreamStatusRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    #[serde(default)]
    pub stream_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /ssf/v1/streams/verify`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    #[serde(default)]
    pub stream_id: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// RFC 8936 §2.4: what a polling receiver sends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollRequest {
    /// The SETs to return at most; 0 only acknowledges.
    #[serde(default)]
    pub max_events: Option<u32>,
    /// `false` (the default) waits a little for a SET when none is pending.
    #[serde(default)]
    pub return_immediately: Option<bool>,
    /// The `jti`s of SETs received: they are never sent again.
    #[serde(default)]
    pub ack: Vec<String>,
    /// SETs the receiver could not accept, by `jti`: they are not sent again either.
    #[serde(default)]
    pub set_errs: BTreeMap<String, SetError>,
}

/// RFC 8936 §2.4.2: why a receiver refused a SET.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetError {
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub description: String,
}

/// RFC 8936 §2.5: the SETs pending, by `jti`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    pub sets: BTreeMap<String, String>,
    pub more_available: bool,
}
