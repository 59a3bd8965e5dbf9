//! When a PAT expires: the rules of the two version families, and calendar months.

use crate::{to_millis, Rule};
use time::{Date, Month, OffsetDateTime};

/// How many calendar months a classic PAT lives by default, and at most.
pub const CLASSIC_MONTHS: u32 = 6;

/// The version families differ only in expiry rules and patchable paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/v3`, `/beta`, `/v2024`.
    Classic,
    /// `/v2025`, `/personal-access-tokens/v1`.
    NeverExpiresAware,
}

/// When a PAT stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    At(OffsetDateTime),
    Never,
}

impl Expiry {
    pub fn date(self) -> Option<OffsetDateTime> {
        match self {
            Expiry::At(at) => Some(at),
            Expiry::Never => None,
        }
    }

    pub fn from_date(date: Option<OffsetDateTime>) -> Expiry {
        date.map_or(Expiry::Never, Expiry::At)
    }

    /// Expired means `now` is at or past the expiration date.
    pub fn is_expired(self, now: OffsetDateTime) -> bool {
        matches!(self, Expiry::At(at) if at <= now)
    }
}

/// The expiry a client asked for, before the rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryRequest {
    /// Through the API: the family decides what a missing date means.
    Api {
        family: Family,
        date: Option<OffsetDateTime>,
        never_expires_acknowledged: Option<bool>,
    },
    /// Through `patd token create`: the administrator's choice stands for the acknowledgement.
    Admin(AdminExpiry),
}

/// `patd token create --expires …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminExpiry {
    /// No `--expires`: the classic default.
    Default,
    At(OffsetDateTime),
    Never,
}

/// The outcome: when it expires and whether the owner acknowledged a never-expiring token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedExpiry {
    pub expiry: Expiry,
    pub never_expires_acknowledged: bool,
}

impl ExpiryRequest {
    /// Applies the family's rules for a PAT created at `now`.
    pub fn resolve(self, now: OffsetDateTime) -> Result<ResolvedExpiry, Rule> {
        let now = to_millis(now);
        match self {
            ExpiryRequest::Api {
                family: Family::Classic,
                date,
                ..
            } => {
                let cap = add_months(now, CLASSIC_MONTHS);
                let at = match date.map(to_millis) {
                    None => cap,
                    Some(at) if at <= now => return Err(Rule::ExpirationNotInFuture),
                    Some(at) if at > cap => return Err(Rule::ExpirationTooFar),
                    Some(at) => at,
                };
                Ok(ResolvedExpiry {
                    expiry: Expiry::At(at),
                    never_expires_acknowledged: false,
                })
            }
            ExpiryRequest::Api {
                family: Family::NeverExpiresAware,
                date,
                never_expires_acknowledged,
            } => {
                let acknowledged = never_expires_acknowledged.unwrap_or(false);
                let expiry = match date.map(to_millis) {
                    None if acknowledged => Expiry::Never,
                    None => return Err(Rule::NeverExpiresNotAcknowledged),
                    Some(at) if at <= now => return Err(Rule::ExpirationNotInFuture),
                    Some(at) => Expiry::At(at),
                };
                Ok(ResolvedExpiry {
                    expiry,
                    never_expires_acknowledged: acknowledged,
                })
            }
            ExpiryRequest::Admin(AdminExpiry::Default) => Ok(ResolvedExpiry {
                expiry: Expiry::At(add_months(now, CLASSIC_MONTHS)),
                never_expires_acknowledged: false,
            }),
            ExpiryRequest::Admin(AdminExpiry::At(at)) => {
                let at = to_millis(at);
                if at <= now {
                    return Err(Rule::ExpirationNotInFuture);
                }
                Ok(ResolvedExpiry {
                    expiry: Expiry::At(at),
                    never_expires_acknowledged: false,
                })
            }
            ExpiryRequest::Admin(AdminExpiry::Never) => Ok(ResolvedExpiry {
                expiry: Expiry::Never,
                never_expires_acknowledged: true,
            }),
        }
    }
}

/// The deployment's longest PAT lifetime (`--max-pat-lifetime DAYS`); `None` sets no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimePolicy(pub Option<u32>);

/// What a lifetime is counted from: a PAT's creation, or the moment a rotation gave it a new
/// secret (a fresh credential, as GitHub counts a regenerated token's expiry from then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeStart {
    Created(OffsetDateTime),
    Rotated(OffsetDateTime),
}

impl LifetimePolicy {
    /// Refuses an expiry past `start` + the policy's days, or none at all.
    pub fn check(self, start: LifetimeStart, expiry: Expiry) -> Result<(), Rule> {
        let Some(days) = self.0 else {
            return Ok(());
        };
        let (from, label) = match start {
            LifetimeStart::Created(at) => (at, "the creation date"),
            LifetimeStart::Rotated(at) => (at, "the rotation"),
        };
        let refused = Rule::LifetimePolicy { days, from: label };
        match expiry {
            Expiry::Never => Err(refused),
            Expiry::At(at) if at > to_millis(from) + time::Duration::days(i64::from(days)) => {
                Err(refused)
            }
            Expiry::At(_) => Ok(()),
        }
    }
}

impl LifetimePolicy {
    /// A patch or bulk update is judged only when it moves the expiry: PATs made before the
    /// policy keep theirs through a rename.
    pub fn check_patched(
        self,
        before: &crate::pat::PatRecord,
        after: &crate::pat::PatRecord,
    ) -> Result<(), Rule> {
        if before.expiry == after.expiry {
            return Ok(());
        }
        self.check(LifetimeStart::Created(after.created), after.expiry)
    }
}

/// Adds calendar months, keeping the time of day; a day that does not exist in the target month
/// becomes that month's last day (31 August + 6 months = 28 or 29 February).
pub fn add_months(start: OffsetDateTime, months: u32) -> OffsetDateTime {
    let date = start.date();
    let zero_based = date.month() as i32 - 1 + months as i32;
    let year = date.year() + zero_based.div_euclid(12);
    let month_index = zero_based.rem_euclid(12) + 1;
    let month = Month::try_from(month_index as u8).unwrap_or(Month::January);
    let last_day = time::util::days_in_month(month, year);
    let day = date.day().min(last_day);
    match Date::from_calendar_date(year, month, day) {
        Ok(new_date) => start.replace_date(new_date),
        // Only reachable past year 9999; keep the start rather than panic.
        Err(_) => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn calendar_months() {
        let check = |start: OffsetDateTime, months: u32, want: OffsetDateTime| {
            assert_eq!(add_months(start, months), want, "{start} + {months}")
        };
        check(
            datetime!(2026-01-15 10:00 UTC),
            6,
            datetime!(2026-07-15 10:00 UTC),
        );
        check(
            datetime!(2026-08-31 10:00 UTC),
            6,
            datetime!(2027-02-28 10:00 UTC),
        );
        check(
            datetime!(2027-08-31 10:00 UTC),
            6,
            datetime!(2028-02-29 10:00 UTC),
        );
        check(
            datetime!(2026-11-24 23:59:59.999 UTC),
            6,
            datetime!(2027-05-24 23:59:59.999 UTC),
        );
        check(
            datetime!(2026-12-31 00:00 UTC),
            2,
            datetime!(2027-02-28 00:00 UTC),
        );
    }

    #[test]
    fn family_rules() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let api = |family, date, ack| ExpiryRequest::Api {
            family,
            date,
            never_expires_acknowledged: ack,
        };
        let at = |t| {
            Ok(ResolvedExpiry {
                expiry: Expiry::At(t),
                never_expires_acknowledged: false,
            })
        };
        let check = |request: ExpiryRequest, want: Result<ResolvedExpiry, Rule>| {
            assert_eq!(request.resolve(now), want, "{request:?}")
        };
        use Family::*;
        check(
            api(Classic, None, None),
            at(datetime!(2026-07-01 00:00 UTC)),
        );
        check(
            api(Classic, None, Some(true)),
            at(datetime!(2026-07-01 00:00 UTC)),
        );
        check(
            api(Classic, Some(datetime!(2026-07-01 00:00 UTC)), None),
            at(datetime!(2026-07-01 00:00 UTC)),
        );
        check(
            api(Classic, Some(datetime!(2026-07-01 00:00:00.001 UTC)), None),
            Err(Rule::ExpirationTooFar),
        );
        check(
            api(Classic, Some(now), None),
            Err(Rule::ExpirationNotInFuture),
        );
        check(
            api(NeverExpiresAware, None, None),
            Err(Rule::NeverExpiresNotAcknowledged),
        );
        check(
            api(NeverExpiresAware, None, Some(false)),
            Err(Rule::NeverExpiresNotAcknowledged),
        );
        check(
            api(NeverExpiresAware, None, Some(true)),
            Ok(ResolvedExpiry {
                expiry: Expiry::Never,
                never_expires_acknowledged: true,
            }),
        );
        check(
            api(
                NeverExpiresAware,
                Some(datetime!(2036-01-01 00:00 UTC)),
                None,
            ),
            at(datetime!(2036-01-01 00:00 UTC)),
        );
        check(
            api(
                NeverExpiresAware,
                Some(datetime!(2025-01-01 00:00 UTC)),
                Some(true),
            ),
            Err(Rule::ExpirationNotInFuture),
        );
        check(
            ExpiryRequest::Admin(AdminExpiry::Default),
            at(datetime!(2026-07-01 00:00 UTC)),
        );
        check(
            ExpiryRequest::Admin(AdminExpiry::Never),
            Ok(ResolvedExpiry {
                expiry: Expiry::Never,
                never_expires_acknowledged: true,
            }),
        );
    }
}
