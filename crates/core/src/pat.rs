//! A PAT as the domain sees it, and the plan for creating one.

use crate::expiry::{Expiry, ExpiryRequest};
use crate::ids::{IdentityId, PatId};
use crate::name::PatName;
use crate::scope::Scope;
use crate::secret::{Secret, SecretDigest};
use crate::{to_millis, Rule};
use rand::CryptoRng;
use time::OffsetDateTime;

/// How long an access token minted from a PAT lives, in seconds: 15 to 43200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity(u32);

impl Validity {
    pub const MIN: u32 = 15;
    pub const MAX: u32 = 43_200;

    /// `None` (omitted or null) means the maximum, 43200.
    pub fn parse(raw: Option<i64>) -> Result<Validity, Rule> {
        let seconds = raw.unwrap_or(i64::from(Validity::MAX));
        u32::try_from(seconds)
            .ok()
            .filter(|s| (Validity::MIN..=Validity::MAX).contains(s))
            .map(Validity)
            .ok_or(Rule::ValidityOutOfRange {
                min: i64::from(Validity::MIN),
                max: i64::from(Validity::MAX),
            })
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

/// A stored PAT, without its secret digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatRecord {
    pub id: PatId,
    pub owner_id: IdentityId,
    pub name: PatName,
    pub scope: Scope,
    pub validity: Validity,
    pub expiry: Expiry,
    /// `userAwareTokenNeverExpires` as the owner last set it.
    pub never_expires_acknowledged: bool,
    pub managed: bool,
    pub created: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
}

/// What a client sent to create a PAT, before any rule is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateInput {
    pub name: Option<String>,
    pub scope: Option<Vec<String>>,
    pub validity_seconds: Option<i64>,
    pub expiry: ExpiryRequest,
    pub managed: bool,
}

/// A PAT ready to be stored: the record and the digest of its secret.
#[derive(Debug, Clone)]
pub struct NewPat {
    pub record: PatRecord,
    pub digest: SecretDigest,
}

impl CreateInput {
    /// Under a lifetime policy, a classic create that leaves the date out gets the nearer of its
    /// six months and the policy's bound, rather than a refusal of a date it never asked for.
    pub fn within(mut self, policy: crate::expiry::LifetimePolicy, now: OffsetDateTime) -> Self {
        if let (
            Some(days),
            ExpiryRequest::Api {
                family: crate::expiry::Family::Classic,
                date: date @ None,
                ..
            },
        ) = (policy.0, &mut self.expiry)
        {
            let now = to_millis(now);
            let bound = now + time::Duration::days(i64::from(days));
            *date = Some(crate::expiry::add_months(now, crate::expiry::CLASSIC_MONTHS).min(bound));
        }
        self
    }
}

/// Applies every create rule and mints the id and secret. The plaintext secret is returned once,
/// beside the [`NewPat`] that holds only its digest.
pub fn plan_create(
    owner_id: IdentityId,
    input: CreateInput,
    now: OffsetDateTime,
    rng: &mut impl CryptoRng,
) -> Result<(NewPat, Secret), Rule> {
    let now = to_millis(now);
    let name = PatName::parse(input.name.as_deref().ok_or(Rule::NameRequired)?)?;
    let scope = Scope::parse(input.scope)?;
    let validity = Validity::parse(input.validity_seconds)?;
    let resolved = input.expiry.resolve(now)?;
    let secret = Secret::generate(rng);
    let record = PatRecord {
        id: PatId::generate(rng),
        owner_id,
        name,
        scope,
        validity,
        expiry: resolved.expiry,
        never_expires_acknowledged: resolved.never_expires_acknowledged,
        managed: input.managed,
        created: now,
        last_used: None,
    };
    let new_pat = NewPat {
        record,
        digest: secret.digest(),
    };
    Ok((new_pat, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::{AdminExpiry, Family};
    use time::macros::datetime;

    #[test]
    fn validity_bounds() {
        let check = |raw: Option<i64>, ok: Option<u32>| {
            assert_eq!(
                Validity::parse(raw).ok().map(Validity::seconds),
                ok,
                "{raw:?}"
            )
        };
        check(None, Some(43_200));
        check(Some(15), Some(15));
        check(Some(14), None);
        check(Some(43_200), Some(43_200));
        check(Some(43_201), None);
        check(Some(-1), None);
        check(Some(i64::MAX), None);
    }

    #[test]
    fn create_applies_the_rules_in_order() {
        let now = datetime!(2026-01-01 00:00:00.123456 UTC);
        let owner = IdentityId::generate(&mut rand::rng());
        let input = |name: Option<&str>, validity| CreateInput {
            name: name.map(str::to_owned),
            scope: None,
            validity_seconds: validity,
            expiry: ExpiryRequest::Api {
                family: Family::Classic,
                date: None,
                never_expires_acknowledged: None,
            },
            managed: false,
        };
        let plan = |input| plan_create(owner.clone(), input, now, &mut rand::rng());
        assert_eq!(plan(input(None, None)).err(), Some(Rule::NameRequired));
        assert_eq!(plan(input(Some(" "), None)).err(), Some(Rule::NameEmpty));
        assert!(matches!(
            plan(input(Some("ok"), Some(5))).err(),
            Some(Rule::ValidityOutOfRange { .. })
        ));
        let (new_pat, secret) = plan(input(Some("ok"), None)).unwrap();
        assert!(new_pat.digest.matches(&secret));
        assert_eq!(
            new_pat.record.created,
            datetime!(2026-01-01 00:00:00.123 UTC)
        );
        assert_eq!(
            new_pat.record.expiry,
            Expiry::At(datetime!(2026-07-01 00:00:00.123 UTC))
        );
        assert_eq!(new_pat.record.scope, Scope::all());

        let mut never = input(Some("forever"), None);
        never.expiry = ExpiryRequest::Admin(AdminExpiry::Never);
        let (new_pat, _) = plan(never).unwrap();
        assert_eq!(new_pat.record.expiry, Expiry::Never);
        assert!(new_pat.record.never_expires_acknowledged);
    }
}
