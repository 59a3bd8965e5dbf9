//! Whether a presented PAT secret may mint an access token, and what the token may do.
//! Every refusal looks the same from outside.

use crate::identity::Identity;
use crate::ids::PatId;
use crate::pat::PatRecord;
use crate::rights::Rights;
use crate::scope::Scope;
use crate::secret::{Secret, SecretDigest};
use time::{Duration, OffsetDateTime};

/// How often `lastUsed` is written: at most once per this span per PAT.
pub const LAST_USED_INTERVAL: Duration = Duration::hours(24);

/// What the store returns for an exchange: the PAT, its digest and its owner.
#[derive(Debug, Clone)]
pub struct ExchangeRecord {
    pub pat: PatRecord,
    pub digest: SecretDigest,
    pub owner: Identity,
    /// The last five addresses the PAT was used from, newest first (GitLab's `last_used_ips`),
    /// parsed once when the record is read so that an exchange compares them without allocating.
    pub recent_ips: Vec<std::net::IpAddr>,
    /// The secret a rotation replaced, while its grace period lasts.
    pub previous: Option<PreviousSecret>,
    /// Set by a rotation with `revokeIssuedTokens`: access tokens issued before this second are
    /// refused. A whole second, so that tokens minted later in that second get it as `iat`.
    pub tokens_valid_after: Option<OffsetDateTime>,
    /// The `jti`s of this PAT's access tokens revoked one by one and not yet expired (at most
    /// [`MAX_REVOKED_PER_PAT`]; those `tokens_valid_after` already refuses are left out).
    pub revoked_jtis: Vec<String>,
}

/// The most access tokens of one PAT that are kept revoked one by one. One more revocation
/// refuses every token the PAT minted up to the newest revoked one instead (through
/// `tokens_valid_after`): more is refused than was asked, never less, and the list a node
/// caches per PAT stays small however many tokens its holder mints and revokes.
pub const MAX_REVOKED_PER_PAT: usize = 100;

/// An access token to be refused from now until its `exp` (RFC 7009, EXTENSIONS E10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRevocation {
    pub pat_id: PatId,
    pub jti: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A rotated-out secret that still exchanges until `until` (the grace period).
#[derive(Debug, Clone)]
pub struct PreviousSecret {
    pub digest: SecretDigest,
    pub until: OffsetDateTime,
}

impl ExchangeRecord {
    /// Whether an access token minted from this PAT with `iat` (seconds) was revoked by a
    /// rotation since.
    pub fn revokes_token_issued_at(&self, iat: i64) -> bool {
        self.tokens_valid_after
            .is_some_and(|after| iat < after.unix_timestamp())
    }

    /// Whether the access token `jti`, issued at `iat`, was revoked: by a rotation, or by
    /// itself.
    pub fn revokes_token(&self, jti: &str, iat: i64) -> bool {
        self.revokes_token_issued_at(iat) || self.revoked_jtis.iter().any(|revoked| revoked == jti)
    }
}

/// Permission to mint an access token, with everything its claims need, borrowed from the
/// record it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    pub pat_id: &'a PatId,
    pub owner: &'a Identity,
    pub scope: &'a Scope,
    pub rights: Rights,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Decides an exchange. `record` is `None` when the id is unknown; the digest comparison runs
/// all the same so that an unknown id and a wrong secret take the same time.
pub fn decide<'a>(
    record: Option<&'a ExchangeRecord>,
    secret: &Secret,
    now: OffsetDateTime,
) -> Option<Grant<'a>> {
    let dummy = SecretDigest::dummy();
    let digest = record.map_or(&dummy, |record| &record.digest);
    // Both comparisons always run, so that timing tells nothing of a rotation either.
    let previous = record.and_then(|record| record.previous.as_ref());
    let previous_matches = previous
        .map_or(&dummy, |previous| &previous.digest)
        .matches(secret)
        && previous.is_some_and(|previous| now < previous.until);
    let secret_matches = digest.matches(secret) | previous_matches;
    let record = record?;
    if !secret_matches || record.pat.expiry.is_expired(now) {
        return None;
    }
    let validity = Duration::seconds(i64::from(record.pat.validity.seconds()));
    // The token never outlives the PAT it came from.
    let mut expires_at = now + validity;
    if let Some(pat_expiry) = record.pat.expiry.date() {
        expires_at = expires_at.min(pat_expiry);
    }
    Some(Grant {
        pat_id: &record.pat.id,
        owner: &record.owner,
        scope: &record.pat.scope,
        rights: record.pat.scope.effective_rights(record.owner.rights()),
        // Never before the revocation second, which is at most a second ahead.
        issued_at: record
            .tokens_valid_after
            .map_or(now, |after| now.max(after)),
        expires_at,
    })
}

/// Whether `secret` would exchange at `now`: it is the record's current secret, or its replaced
/// one while the grace lasts, and the PAT has not expired. What makes a reported secret a true
/// positive (EXTENSIONS E9) and lets `POST /oauth/revoke` delete its PAT: the same rule as an
/// exchange, so a secret is revocable exactly while it is usable.
pub fn is_live(record: &ExchangeRecord, secret: &Secret, now: OffsetDateTime) -> bool {
    decide(Some(record), secret, now).is_some()
}

/// Whether an exchange at `now` must record `lastUsed`, given the stored value.
pub fn last_used_due(previous: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    previous.is_none_or(|previous| now - previous >= LAST_USED_INTERVAL)
}

/// A live record for `secret` to decide exchanges on, in this module's and `rotation`'s tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::expiry::Expiry;
    use crate::ids::IdentityId;
    use crate::name::{IdentityName, PatName};
    use crate::pat::Validity;
    use crate::rights::Level;
    use time::macros::datetime;

    pub(crate) fn record(secret: &Secret, expiry: Expiry, scope: &[&str]) -> ExchangeRecord {
        let mut rng = rand::rng();
        let owner = Identity {
            id: IdentityId::generate(&mut rng),
            name: IdentityName::parse("alice").unwrap(),
            levels: vec![Level::User],
            extra_rights: Rights::NONE,
        };
        ExchangeRecord {
            recent_ips: Vec::new(),
            previous: None,
            tokens_valid_after: None,
            revoked_jtis: Vec::new(),
            pat: PatRecord {
                id: PatId::generate(&mut rng),
                owner_id: owner.id.clone(),
                name: PatName::parse("ci").unwrap(),
                scope: Scope::parse(Some(scope.iter().map(|s| (*s).to_owned()).collect())).unwrap(),
                validity: Validity::parse(Some(600)).unwrap(),
                expiry,
                never_expires_acknowledged: false,
                managed: false,
                created: datetime!(2026-01-01 00:00 UTC),
                last_used: None,
            },
            digest: secret.digest(),
            owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::record;
    use super::*;
    use crate::expiry::Expiry;
    use crate::rights::{Level, Right};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn exchange_decisions() {
        let mut rng = rand::rng();
        let secret = Secret::generate(&mut rng);
        let other = Secret::generate(&mut rng);
        let live = record(
            &secret,
            Expiry::At(datetime!(2026-06-01 00:00 UTC)),
            &["sp:scopes:all"],
        );
        let grant = decide(Some(&live), &secret, NOW).unwrap();
        assert_eq!(grant.rights, Level::User.rights());
        assert!(is_live(&live, &secret, NOW) && !is_live(&live, &other, NOW));
        assert_eq!(grant.expires_at, NOW + Duration::seconds(600));
        assert!(decide(Some(&live), &other, NOW).is_none());
        assert!(decide(None, &secret, NOW).is_none());
        let expired = record(&secret, Expiry::At(NOW), &["sp:scopes:all"]);
        assert!(decide(Some(&expired), &secret, NOW).is_none());
        assert!(!is_live(&expired, &secret, NOW));
        let soon = record(
            &secret,
            Expiry::At(NOW + Duration::seconds(60)),
            &["sp:scopes:default"],
        );
        let grant = decide(Some(&soon), &secret, NOW).unwrap();
        assert_eq!(grant.expires_at, NOW + Duration::seconds(60));
        assert_eq!(grant.rights, [Right::MyRead].into_iter().collect());
    }

    #[test]
    fn last_used_once_a_day() {
        assert!(last_used_due(None, NOW));
        assert!(!last_used_due(Some(NOW - Duration::hours(23)), NOW));
        assert!(last_used_due(Some(NOW - Duration::hours(24)), NOW));
    }
}
