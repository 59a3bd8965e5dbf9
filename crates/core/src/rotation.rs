//! Rotating a PAT's secret (EXTENSIONS E5): the grace period, the expiry it keeps or gets, the
//! lifetime policy, and whether the access tokens minted before stop working.

use crate::exchange::PreviousSecret;
use crate::expiry::{Expiry, ExpiryRequest, Family, LifetimePolicy, LifetimeStart};
use crate::ids::PatId;
use crate::pat::PatRecord;
use crate::secret::{Secret, SecretDigest};
use crate::{to_millis, Rule};
use rand::CryptoRng;
use time::{Duration, OffsetDateTime};

/// The longest grace period: a day, time enough to roll a new secret out to every job.
pub const MAX_GRACE_SECONDS: i64 = 86_400;

/// What a client asked of a rotation, before any rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotateInput {
    pub grace_period_seconds: Option<i64>,
    pub expiration_date: Option<OffsetDateTime>,
    pub revoke_issued_tokens: bool,
}

/// A rotation ready to be stored: the new secret's digest, and what becomes of the old one.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub id: PatId,
    pub digest: SecretDigest,
    /// When the replaced secret stops exchanging; `None`: at once. The store keeps the digest
    /// it replaces (whatever is stored at that moment) until then.
    pub previous_until: Option<OffsetDateTime>,
    pub expiry: Expiry,
    /// Access tokens issued before this second are refused; `None` leaves them be.
    pub tokens_valid_after: Option<OffsetDateTime>,
    pub grace_period_seconds: i64,
    pub revoke_issued_tokens: bool,
}

impl Rotation {
    /// The record after the rotation, as the API shows it.
    pub fn applied_to(&self, pat: &PatRecord) -> PatRecord {
        PatRecord {
            expiry: self.expiry,
            ..pat.clone()
        }
    }

    /// The previous secret as an exchange sees it once stored, given the digest replaced.
    pub fn previous(&self, replaced: SecretDigest) -> Option<PreviousSecret> {
        self.previous_until.map(|until| PreviousSecret {
            digest: replaced,
            until,
        })
    }
}

/// Applies the rotation rules to `pat` at `now` and mints the new secret, returned once. A new
/// expiry follows the rules of a v2025 create (in the future, no six-month cap); without one the
/// PAT keeps its own. Under a lifetime policy the expiry, kept or new, must lie within the policy
/// counted from `now`, since the new secret is a new credential.
pub fn plan_rotation(
    pat: &PatRecord,
    input: RotateInput,
    policy: LifetimePolicy,
    now: OffsetDateTime,
    rng: &mut impl CryptoRng,
) -> Result<(Rotation, Secret), Rule> {
    let now = to_millis(now);
    let grace = input.grace_period_seconds.unwrap_or(0);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(Rule::GraceOutOfRange {
            max: MAX_GRACE_SECONDS,
        });
    }
    let expiry = match input.expiration_date {
        Some(date) => {
            ExpiryRequest::Api {
                family: Family::NeverExpiresAware,
                date: Some(date),
                never_expires_acknowledged: None,
            }
            .resolve(now)?
            .expiry
        }
        None => pat.expiry,
    };
    policy.check(LifetimeStart::Rotated(now), expiry)?;
    let secret = Secret::generate(rng);
    let rotation = Rotation {
        id: pat.id.clone(),
        digest: secret.digest(),
        previous_until: (grace > 0).then(|| now + Duration::seconds(grace)),
        expiry,
        tokens_valid_after: input.revoke_issued_tokens.then(|| next_whole_second(now)),
        grace_period_seconds: grace,
        revoke_issued_tokens: input.revoke_issued_tokens,
    };
    Ok((rotation, secret))
}

/// The first whole second after `at`: every token issued before `at` has an `iat` before it.
fn next_whole_second(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.unix_timestamp() + 1).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{decide, ExchangeRecord};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 10:00:00.250 UTC);

    fn record(secret: &Secret, expiry: Expiry) -> ExchangeRecord {
        crate::exchange::fixture::record(secret, expiry, &["sp:scopes:all"])
    }

    /// The record as the store would hold it after `rotation`.
    fn rotated(before: &ExchangeRecord, rotation: &Rotation) -> ExchangeRecord {
        ExchangeRecord {
            pat: rotation.applied_to(&before.pat),
            digest: rotation.digest.clone(),
            previous: rotation.previous(before.digest.clone()),
            tokens_valid_after: rotation.tokens_valid_after.or(before.tokens_valid_after),
            ..before.clone()
        }
    }

    #[test]
    fn during_the_grace_both_secrets_exchange_and_after_it_only_the_new_one() {
        let old = Secret::generate(&mut rand::rng());
        let before = record(&old, Expiry::At(datetime!(2026-06-01 00:00 UTC)));
        let input = RotateInput {
            grace_period_seconds: Some(60),
            ..RotateInput::default()
        };
        let (rotation, new) = plan_rotation(
            &before.pat,
            input,
            LifetimePolicy(None),
            NOW,
            &mut rand::rng(),
        )
        .unwrap();
        let after = rotated(&before, &rotation);
        assert!(decide(Some(&after), &new, NOW).is_some());
        assert!(decide(Some(&after), &old, NOW + Duration::seconds(59)).is_some());
        assert!(decide(Some(&after), &old, NOW + Duration::seconds(60)).is_none());
        assert!(decide(Some(&after), &new, NOW + Duration::seconds(60)).is_some());
        assert_eq!(after.pat.expiry, before.pat.expiry);
        assert!(!after.revokes_token_issued_at(NOW.unix_timestamp()));

        let (rotation, _) = plan_rotation(
            &before.pat,
            RotateInput::default(),
            LifetimePolicy(None),
            NOW,
            &mut rand::rng(),
        )
        .unwrap();
        let at_once = rotated(&before, &rotation);
        assert!(decide(Some(&at_once), &old, NOW).is_none());
    }

    #[test]
    fn revoking_issued_tokens_refuses_every_earlier_iat_and_none_minted_after() {
        let old = Secret::generate(&mut rand::rng());
        let before = record(&old, Expiry::Never);
        let input = RotateInput {
            revoke_issued_tokens: true,
            ..RotateInput::default()
        };
        let (rotation, new) = plan_rotation(
            &before.pat,
            input,
            LifetimePolicy(None),
            NOW,
            &mut rand::rng(),
        )
        .unwrap();
        let after = rotated(&before, &rotation);
        // Minted earlier in the rotation's own second, and before it.
        assert!(after.revokes_token_issued_at(NOW.unix_timestamp()));
        assert!(after.revokes_token_issued_at(NOW.unix_timestamp() - 3600));
        // Minted just after, in the same second: its iat is the next second.
        let grant = decide(Some(&after), &new, NOW + Duration::milliseconds(10)).unwrap();
        assert!(!after.revokes_token_issued_at(grant.issued_at.unix_timestamp()));
        assert!(grant.issued_at - NOW <= Duration::seconds(1));
    }

    #[test]
    fn the_grace_the_expiry_and_the_policy_are_checked() {
        let secret = Secret::generate(&mut rand::rng());
        let pat = record(&secret, Expiry::Never).pat;
        let plan = |input: RotateInput, policy: LifetimePolicy| {
            plan_rotation(&pat, input, policy, NOW, &mut rand::rng()).map(|(rotation, _)| rotation)
        };
        for grace in [-1, MAX_GRACE_SECONDS + 1] {
            let input = RotateInput {
                grace_period_seconds: Some(grace),
                ..RotateInput::default()
            };
            assert!(matches!(
                plan(input, LifetimePolicy(None)),
                Err(Rule::GraceOutOfRange { .. })
            ));
        }
        let past = RotateInput {
            expiration_date: Some(NOW - Duration::seconds(1)),
            ..RotateInput::default()
        };
        assert_eq!(
            plan(past, LifetimePolicy(None)).err(),
            Some(Rule::ExpirationNotInFuture)
        );
        // A PAT that never expires cannot keep doing so under a policy, nor get a date past it.
        let policy = LifetimePolicy(Some(30));
        assert!(matches!(
            plan(RotateInput::default(), policy),
            Err(Rule::LifetimePolicy { days: 30, .. })
        ));
        let too_far = RotateInput {
            expiration_date: Some(NOW + Duration::days(31)),
            ..RotateInput::default()
        };
        assert!(matches!(
            plan(too_far, policy),
            Err(Rule::LifetimePolicy { .. })
        ));
        let within = RotateInput {
            expiration_date: Some(NOW + Duration::days(30)),
            ..RotateInput::default()
        };
        let rotation = plan(within, policy).unwrap();
        assert_eq!(rotation.expiry, Expiry::At(NOW + Duration::days(30)));
        assert_eq!(rotation.tokens_valid_after, None);
    }
}
