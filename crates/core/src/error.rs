//! The errors of the domain. Each names the rule that was broken; its `Display` is the sentence
//! the API puts in `causes`.

use patd_proto::timestamp::DateTimeError;
use thiserror::Error;

/// A rule of the contract that an input broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rule {
    #[error("a sign-in link must be valid for at least one second and at most 24 hours")]
    SignInLinkValidity,
    #[error("the session idle timeout must be at least one second and at most 7 days")]
    SessionIdleTimeout,
    #[error("name is required")]
    NameRequired,
    #[error("name must not be blank")]
    NameEmpty,
    #[error("name must be at most {max} characters")]
    NameTooLong { max: usize },
    #[error("name must not contain control characters")]
    NameControlCharacter,
    #[error("name must not contain invisible or direction-changing characters (Unicode format characters, line or paragraph separators)")]
    NameInvisibleCharacter,
    /// A secret pasted into the wrong field is not stored, which would keep and echo it.
    #[error("name must not hold a personal access token's secret")]
    NameHoldsSecret,
    #[error("name '{0}' is already used by another personal access token of this owner")]
    NameTaken(String),
    #[error("identity name '{0}' is already taken")]
    IdentityNameTaken(String),
    #[error("scope must not be empty")]
    ScopeEmpty,
    #[error("scope must have at most {max} entries")]
    ScopeTooMany { max: usize },
    #[error("scope entry '{0}' must be 1 to 256 characters of A-Z a-z 0-9 : . _ * -")]
    ScopeEntryInvalid(String),
    #[error("a scope entry must not be a personal access token's secret")]
    ScopeEntryHoldsSecret,
    #[error("scope must be an array of strings")]
    ScopeNotStrings,
    #[error("accessTokenValiditySeconds must be between {min} and {max}")]
    ValidityOutOfRange { min: i64, max: i64 },
    #[error("expirationDate must be in the future")]
    ExpirationNotInFuture,
    #[error("expirationDate must be at most 6 months after the creation date")]
    ExpirationTooFar,
    #[error("the lifetime policy (--max-pat-lifetime) allows an expirationDate at most {days} days after {from}, and no PAT that never expires")]
    LifetimePolicy { days: u32, from: &'static str },
    #[error("events must hold 1 to 32 event types (pat.created, pat.expiring, …) or \"*\"; auth.failed and pat.used are not sent")]
    WebhookEvents,
    #[error("url must be an http or https URL of at most 2048 characters")]
    WebhookUrl,
    #[error("url points at a loopback, private or link-local address; patd refuses those unless started with --webhook-allow-private")]
    WebhookPrivateTarget,
    #[error("description must be at most 256 characters without control characters")]
    WebhookDescription,
    #[error("email must be an address such as name@example.com")]
    EmailInvalid,
    #[error("gracePeriodSeconds must be between 0 and {max}")]
    GraceOutOfRange { max: i64 },
    #[error("revokeIssuedTokens must be a boolean")]
    RevokeIssuedNotBoolean,

    #[error("expirationDate must be an RFC 3339 date-time: {0}")]
    ExpirationNotADate(DateTimeError),
    #[error("expirationDate may be null only when userAwareTokenNeverExpires is true")]
    NeverExpiresNotAcknowledged,
    #[error("userAwareTokenNeverExpires must be a boolean")]
    NeverExpiresNotBoolean,
    #[error("an owner may have at most {max} personal access tokens")]
    TooManyTokens { max: u32 },
    #[error("path '{0}' is not patchable")]
    PathNotPatchable(String),
    #[error("a patch may hold at most {max} operations")]
    TooManyOperations { max: usize },
    #[error("copy and move may not write into an array")]
    PatchCopyIntoArray,
    #[error("the patch would make the document too large")]
    PatchTooLarge,
    #[error("the patch could not be applied: {0}")]
    PatchFailed(String),
    #[error("{0}")]
    PatchSyntax(String),
    #[error("{0}")]
    Bulk(String),
    #[error("no personal access tokens with ids: {0}")]
    UnknownIds(String),
    #[error("invalid filter: {0}")]
    Filter(String),
    #[error("{0}")]
    Paging(String),
    #[error("owner-id must be 'me' or an identity id")]
    OwnerIdInvalid,
    #[error("unknown right '{0}'")]
    UnknownRight(String),
    #[error("unknown user level '{0}'")]
    UnknownLevel(String),
    #[error("no identity '{0}'")]
    UnknownIdentity(String),
    #[error("a secret-scanning report may name at most {max} tokens")]
    TooManyReportedTokens { max: usize },
    #[error("delivery.method must be urn:ietf:rfc:8935 (push) or urn:ietf:rfc:8936 (poll)")]
    SsfDeliveryMethod,
    #[error("delivery.endpoint_url must be an http or https URL of at most 2048 characters")]
    SsfEndpointUrl,
    #[error("delivery.authorization_header must be 1 to 4096 visible ASCII characters or spaces")]
    SsfAuthorization,
    #[error("events_requested must hold at most 32 event type URIs of at most 256 characters")]
    SsfEvents,
    #[error("status must be enabled, paused or disabled")]
    SsfStatus,
    #[error("description must be at most 256 characters without control characters")]
    SsfDescription,
    #[error("reason must be at most 256 characters without control characters")]
    SsfReason,
    #[error("state must be at most 256 characters without control characters")]
    SsfState,
    #[error("stream_id is required")]
    SsfStreamIdRequired,
    #[error("delivery is required")]
    SsfDeliveryRequired,
    #[error("this client already has a stream; read it, then update or replace it")]
    SsfStreamExists,
    #[error("the tenant already has {max} streams")]
    SsfTooManyStreams { max: usize },
    #[error("maxEvents must be between 0 and {max}, and ack and setErrs may name at most {max} SETs each")]
    SsfPollBounds { max: usize },
}

impl Rule {
    /// Whether the input could not be read at all (`400.0`), as opposed to read and found to
    /// break a rule (`400.1`).
    pub fn is_syntax(&self) -> bool {
        matches!(self, Rule::PatchSyntax(_))
    }
}
