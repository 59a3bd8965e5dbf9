//! Timestamps on the wire: printed as RFC 3339 in UTC with exactly three fractional digits and
//! `Z`; read by [`parse`](crate::timestamp::parse), the one rule for every date-time a client
//! sends (bodies, patches, bulk updates, filters, the CLI).

use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;
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

/// Why [`parse`] refused a date-time. `Display` is the reason, to follow "not an RFC 3339
/// date-time: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeError {
    /// Not shaped `YYYY-MM-DDThh:mm:ss[.fraction][Z|±hh:mm]`.
    Syntax,
    /// More than 9 fractional digits: finer than the nanosecond, which nothing needs.
    TooManyDigits,
    /// Shaped right but names no instant: month 13, 30 February, 24:00, an offset past ±23:59,
    /// or a leap second where none can occur.
    OutOfRange,
}

impl fmt::Display for DateTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DateTimeError::Syntax => {
                "expected YYYY-MM-DDThh:mm:ss, then optionally '.' and 1 to 9 digits, then optionally Z or ±hh:mm"
            }
            DateTimeError::TooManyDigits => "at most 9 fractional digits are allowed",
            DateTimeError::OutOfRange => "a field is out of range",
        })
    }
}

impl std::error::Error for DateTimeError {}

/// Parses a client's date-time: RFC 3339's `date-time`, with the offset optional.
///
/// - `YYYY-MM-DD`, then `T`, `t` or a space (RFC 3339 §5.6 allows the last two), then
///   `hh:mm:ss`;
/// - then optionally `.` and 1 to 9 digits (.NET writes 7, Python 6 or none); more are refused,
///   not silently dropped;
/// - then `Z`, `z`, `±hh:mm`, or nothing, which means UTC (.NET's unspecified kind and Python's
///   naive `isoformat()` write no offset);
/// - a leap second (`:60`) only where UTC can have one (the last second of a month), read as
///   the nanosecond before it.
pub fn parse(raw: &str) -> Result<OffsetDateTime, DateTimeError> {
    // The shape is checked here because `time`'s RFC 3339 parser is looser: it takes any byte
    // as the separator and ignores fractional digits past the ninth. It then checks the ranges.
    let parsed = if has_offset(raw.as_bytes())? {
        OffsetDateTime::parse(raw, &Rfc3339)
    } else {
        OffsetDateTime::parse(&format!("{raw}Z"), &Rfc3339)
    };
    parsed.map_err(|_| DateTimeError::OutOfRange)
}

/// Checks the shape [`parse`] accepts and says whether an offset is given.
fn has_offset(raw: &[u8]) -> Result<bool, DateTimeError> {
    let (head, rest) = raw
        .split_at_checked(DATE_TIME.len())
        .ok_or(DateTimeError::Syntax)?;
    if !fits(head, DATE_TIME) {
        return Err(DateTimeError::Syntax);
    }
    let rest = match rest.strip_prefix(b".") {
        Some(fraction) => {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            match digits {
                0 => return Err(DateTimeError::Syntax),
                1..=9 => fraction.split_at(digits).1,
                _ => return Err(DateTimeError::TooManyDigits),
            }
        }
        None => rest,
    };
    match rest {
        [] => Ok(false),
        [b'Z' | b'z'] => Ok(true),
        [b'+' | b'-', offset @ ..] if fits(offset, OFFSET) => Ok(true),
        _ => Err(DateTimeError::Syntax),
    }
}

/// Templates for [`fits`]: `d` is an ASCII digit, `T` the date-time separator.
const DATE_TIME: &[u8] = b"dddd-dd-ddTdd:dd:dd";
const OFFSET: &[u8] = b"dd:dd";

fn fits(text: &[u8], template: &[u8]) -> bool {
    text.len() == template.len()
        && text.iter().zip(template).all(|(&c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            b'T' => matches!(c, b'T' | b't' | b' '),
            _ => c == want,
        })
}

pub fn serialize<S: Serializer>(value: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse(&raw).map_err(refused)
}

fn refused<E: serde::de::Error>(err: DateTimeError) -> E {
    E::custom(format!("not an RFC 3339 date-time: {err}"))
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
            Some(raw) => parse(&raw).map(Some).map_err(refused),
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
    fn parses_every_client_form_by_one_rule() {
        use DateTimeError::{OutOfRange, Syntax, TooManyDigits};
        let check = |input: &str, want: Result<OffsetDateTime, DateTimeError>| {
            assert_eq!(parse(input), want, "{input:?}");
        };
        // The contract's own form, and RFC 3339 with offsets.
        check(
            "2017-07-11T18:45:37.098Z",
            Ok(datetime!(2017-07-11 18:45:37.098 UTC)),
        );
        check(
            "2017-07-11T20:45:37+02:00",
            Ok(datetime!(2017-07-11 18:45:37 UTC)),
        );
        check(
            "2017-07-11T13:15:37-05:30",
            Ok(datetime!(2017-07-11 18:45:37 UTC)),
        );
        check(
            "2017-07-11T18:45:37-00:00",
            Ok(datetime!(2017-07-11 18:45:37 UTC)),
        );
        check(
            "2017-07-11T18:45:37+00:00",
            Ok(datetime!(2017-07-11 18:45:37 UTC)),
        );
        // .NET and PowerShell: 7 digits, with kind Unspecified, Utc and Local.
        check(
            "2026-12-08T10:00:00.1234567",
            Ok(datetime!(2026-12-08 10:00:00.1234567 UTC)),
        );
        check(
            "2026-12-08T10:00:00.1234567Z",
            Ok(datetime!(2026-12-08 10:00:00.1234567 UTC)),
        );
        check(
            "2026-12-08T10:00:00.1234567+01:00",
            Ok(datetime!(2026-12-08 09:00:00.1234567 UTC)),
        );
        check(
            "2026-12-08T10:00:00.0000000",
            Ok(datetime!(2026-12-08 10:00 UTC)),
        );
        // Python's naive isoformat(): 6 digits, or none when the microseconds are zero.
        check(
            "2026-12-08T10:00:00.123456",
            Ok(datetime!(2026-12-08 10:00:00.123456 UTC)),
        );
        check("2026-12-08T10:00:00", Ok(datetime!(2026-12-08 10:00 UTC)));
        // 1 to 9 fractional digits; a tenth is refused rather than dropped.
        check(
            "2026-12-08T10:00:00.5",
            Ok(datetime!(2026-12-08 10:00:00.5 UTC)),
        );
        check(
            "2026-12-08T10:00:00.000000001Z",
            Ok(datetime!(2026-12-08 10:00:00.000000001 UTC)),
        );
        check(
            "2026-12-08T10:00:00.123456789",
            Ok(datetime!(2026-12-08 10:00:00.123456789 UTC)),
        );
        check("2026-12-08T10:00:00.1234567890", Err(TooManyDigits));
        check("2026-12-08T10:00:00.1234567890Z", Err(TooManyDigits));
        check("2026-12-08T10:00:00.0000000000+01:00", Err(TooManyDigits));
        check("2026-12-08T10:00:00.", Err(Syntax));
        check("2026-12-08T10:00:00.Z", Err(Syntax));
        check("2026-12-08T10:00:00,5Z", Err(Syntax));
        // RFC 3339 §5.6: `t` and `z` in lower case, and a space as the separator.
        check("2026-12-08t10:00:00z", Ok(datetime!(2026-12-08 10:00 UTC)));
        check(
            "2026-12-08 10:00:00.123456",
            Ok(datetime!(2026-12-08 10:00:00.123456 UTC)),
        );
        check("2026-12-08_10:00:00Z", Err(Syntax));
        check("2026-12-08x10:00:00Z", Err(Syntax));
        // Offsets: ±hh:mm only, within ±23:59.
        check("2026-12-08T10:00:00+0100", Err(Syntax));
        check("2026-12-08T10:00:00+01", Err(Syntax));
        check("2026-12-08T10:00:00+01:00:00", Err(Syntax));
        check("2026-12-08T10:00:00UTC", Err(Syntax));
        check("2026-12-08T10:00:00ZZ", Err(Syntax));
        check(
            "2026-12-08T10:00:00+23:59",
            Ok(datetime!(2026-12-07 10:01 UTC)),
        );
        check("2026-12-08T10:00:00+24:00", Err(OutOfRange));
        check("2026-12-08T10:00:00+01:60", Err(OutOfRange));
        // Leap seconds: only where UTC can have one, read as the nanosecond before it.
        let leap = Ok(datetime!(2016-12-31 23:59:59.999999999 UTC));
        check("2016-12-31T23:59:60Z", leap);
        check("2016-12-31T23:59:60", leap);
        check("2016-12-31T23:59:60.5Z", leap);
        check("2017-01-01T00:59:60+01:00", leap);
        check("2016-12-30T23:59:60Z", Err(OutOfRange));
        check("2016-12-31T22:59:60Z", Err(OutOfRange));
        check("2016-12-31T23:59:61Z", Err(OutOfRange));
        // Calendar ranges.
        check("2024-02-29T00:00:00Z", Ok(datetime!(2024-02-29 00:00 UTC)));
        check("2026-02-29T00:00:00Z", Err(OutOfRange));
        check("2026-13-01T00:00:00Z", Err(OutOfRange));
        check("2026-00-01T00:00:00Z", Err(OutOfRange));
        check("2026-12-00T00:00:00Z", Err(OutOfRange));
        check("2026-12-08T24:00:00Z", Err(OutOfRange));
        check("2026-12-08T10:60:00Z", Err(OutOfRange));
        // Everything else about the shape.
        check("2026-12-08", Err(Syntax));
        check("2026-12-08T10:00Z", Err(Syntax));
        check("2026-12-8T10:00:00Z", Err(Syntax));
        check("+2026-12-08T10:00:00Z", Err(Syntax));
        check("12026-12-08T10:00:00Z", Err(Syntax));
        check(" 2026-12-08T10:00:00Z", Err(Syntax));
        check("2026-12-08T10:00:00Z ", Err(Syntax));
        check("2026-12-08T10:00:00 ", Err(Syntax));
        check("２０２６-12-08T10:00:00Z", Err(Syntax));
        check("2026-12-08T10:00:00.١٢٣Z", Err(Syntax));
        check("", Err(Syntax));
        check("next tuesday", Err(Syntax));
    }

    #[test]
    fn serde_reads_the_rule_and_writes_milliseconds() {
        #[derive(Deserialize, serde::Serialize)]
        struct Body {
            #[serde(default, with = "option")]
            at: Option<OffsetDateTime>,
        }
        let read = |json: &str| serde_json::from_str::<Body>(json).map(|body| body.at);
        assert_eq!(
            read(r#"{"at": "2026-12-08T10:00:00.1234567"}"#).unwrap(),
            Some(datetime!(2026-12-08 10:00:00.1234567 UTC))
        );
        assert_eq!(read(r#"{"at": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        let err = read(r#"{"at": "2026-12-08T10:00:00.1234567890"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not an RFC 3339 date-time: at most 9 fractional digits"),
            "{err}"
        );
        let body = Body {
            at: Some(datetime!(2026-12-08 11:00:00.1234567 +01:00)),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"at":"2026-12-08T10:00:00.123Z"}"#
        );
    }
}
