//! Serde for timestamps: RFC 3339 in UTC with exactly three fractional digits and `Z` on output,
//! any RFC 3339 date-time on input.

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const MILLIS: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a timestamp the way the contract prints them: `2017-07-11T18:45:37.098Z`.
pub fn format(value: OffsetDateTime) -> String {
    let utc = value.to_offset(UtcOffset::UTC);
    // Formatting a UTC date with a fixed description only fails for years beyond 9999,
    // which the domain never produces; fall back to the standard form rather than panic.
    utc.format(MILLIS)
        .or_else(|_| utc.format(&Rfc3339))
        .unwrap_or_default()
}

const NAIVE: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");

/// Parses an RFC 3339 date-time. A date-time without an offset, as Python's `isoformat()` prints
/// a naive `datetime`, is read as UTC.
pub fn parse(raw: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(raw, &Rfc3339).or_else(|err| {
        time::PrimitiveDateTime::parse(raw, NAIVE)
            .map(time::PrimitiveDateTime::assume_utc)
            .map_err(|_| err)
    })
}

pub fn serialize<S: Serializer>(value: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse(&raw).map_err(|err| serde::de::Error::custom(format!("not an RFC 3339 date-time: {err}")))
}

/// The same for `Option<OffsetDateTime>`, with `null` for `None`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_str(&format(*value)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(raw) => parse(&raw).map(Some).map_err(|err| {
                serde::de::Error::custom(format!("not an RFC 3339 date-time: {err}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let check = |input: OffsetDateTime, want: &str| assert_eq!(format(input), want);
        check(
            datetime!(2017-07-11 18:45:37.098 UTC),
            "2017-07-11T18:45:37.098Z",
        );
        check(
            datetime!(2017-07-11 18:45:37 UTC),
            "2017-07-11T18:45:37.000Z",
        );
        check(
            datetime!(2017-07-11 20:45:37.5 +02:00),
            "2017-07-11T18:45:37.500Z",
        );
        check(
            datetime!(2017-07-11 18:45:37.0989 UTC),
            "2017-07-11T18:45:37.098Z",
        );
    }

    #[test]
    fn parses_rfc3339_and_naive_utc() {
        assert_eq!(
            parse("2017-07-11T18:45:37.098Z").unwrap(),
            datetime!(2017-07-11 18:45:37.098 UTC)
        );
        assert_eq!(
            parse("2017-07-11T20:45:37+02:00").unwrap(),
            datetime!(2017-07-11 18:45:37 UTC)
        );
        assert_eq!(
            parse("2017-07-11T18:45:37.123456").unwrap(),
            datetime!(2017-07-11 18:45:37.123456 UTC)
        );
        assert_eq!(
            parse("2017-07-11T18:45:37").unwrap(),
            datetime!(2017-07-11 18:45:37 UTC)
        );
        assert!(parse("2017-07-11").is_err());
        assert!(parse("next tuesday").is_err());
    }
}
