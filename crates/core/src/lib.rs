//! patd's domain: every rule of the PAT contract (validation, expiry, rights, authorization and
//! the token-exchange decision). Pure: no I/O, no clock and no OS randomness; `now` and the RNG
//! come in as arguments, so every rule is testable with fixed inputs.

/// Audit events and the query of the audit log.
pub mod audit;
/// Who may do what to which PAT.
pub mod authz;
/// Bulk update: one patch on up to 25 PATs.
pub mod bulk;
/// The errors a rule can raise: what went wrong, never how to answer it.
pub mod error;
/// Whether a presented secret may mint an access token.
pub mod exchange;
/// When a PAT expires: the two version families' rules and calendar arithmetic.
pub mod expiry;
/// SailPoint's filter grammar, parsed into a typed tree.
pub mod filter;
/// Identities, their user levels and extra rights.
pub mod identity;
/// Identity and PAT ids: 32 lowercase hex characters.
pub mod ids;
/// Filters, sorting and paging of a list.
pub mod listing;
/// PAT names and identity names.
pub mod name;
/// Webhook payloads and subscriptions, delivery retries, and owners' mail.
pub mod notify;
/// A PAT's stored shape and the plan for creating one.
pub mod pat;
/// RFC 6902 patches applied to a PAT's patchable document.
pub mod patch;
/// Rights and user levels.
pub mod rights;
/// Rotating a PAT's secret: grace periods and revoking the tokens minted before.
pub mod rotation;
/// A PAT's scope and the rights it names.
pub mod scope;
/// PAT secrets: generation, the scannable format, digests and constant-time comparison.
pub mod secret;
/// Shared Signals: streams, and the Security Event Tokens audit events become.
pub mod ssf;
/// The web page's sign-in links, sessions and CSRF tokens.
pub mod web;

pub use error::Rule;

use time::OffsetDateTime;

/// Truncates a timestamp to whole milliseconds, the precision the contract shows and the store
/// keeps, so that a value compares the same before and after a round trip.
pub fn to_millis(value: OffsetDateTime) -> OffsetDateTime {
    let nanos = value.nanosecond();
    value
        .replace_nanosecond(nanos - nanos % 1_000_000)
        .unwrap_or(value)
}
