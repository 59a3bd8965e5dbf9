//! Identity and PAT ids: 32 lowercase hex characters, the shape of a dashless UUID v4.

use rand::CryptoRng;
use std::fmt;

macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts exactly 32 lowercase hex characters.
            pub fn parse(raw: &str) -> Option<$name> {
                is_hex_id(raw).then(|| $name(raw.to_owned()))
            }

            /// A fresh random id laid out as a UUID v4.
            pub fn generate(rng: &mut impl CryptoRng) -> $name {
                $name(random_hex_id(rng))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

hex_id!(
    /// The id of a PAT, which is also its OAuth `client_id`.
    PatId
);
hex_id!(
    /// The id of an identity, the owner of PATs.
    IdentityId
);

pub(crate) fn is_hex_id(raw: &str) -> bool {
    raw.len() == 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// 16 random bytes with the UUID v4 version and variant bits, as 32 hex characters.
pub fn random_hex_id(rng: &mut impl CryptoRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex_id(bytes)
}

/// A UUID v7 (RFC 9562) as 32 lowercase hex characters: the Unix time in milliseconds, then 74
/// random bits. Ids made later sort later, so rows keyed by them are appended to their index
/// rather than written all over it (audit events arrive by the tens of thousands a second).
pub fn time_ordered_hex_id(at: time::OffsetDateTime, rng: &mut impl CryptoRng) -> String {
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex_id(bytes)
}

fn hex_id(bytes: [u8; 16]) -> String {
    let mut out = String::with_capacity(32);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_sort_by_their_millisecond_and_read_as_uuid_v7() {
        let mut rng = rand::rng();
        let at = time::macros::datetime!(2026-12-07 10:00:00.123 UTC);
        let first = time_ordered_hex_id(at, &mut rng);
        let later = time_ordered_hex_id(at + time::Duration::milliseconds(1), &mut rng);
        assert!(first < later, "{first} {later}");
        assert!(PatId::parse(&first).is_some(), "32 lowercase hex: {first}");
        // The 48-bit millisecond first, then version 7 and the RFC variant.
        assert_eq!(&first[..12], format!("{:012x}", 1_796_637_600_123_u64));
        assert_eq!(&first[12..13], "7");
        assert!(matches!(&first[16..17], "8" | "9" | "a" | "b"), "{first}");
    }

    #[test]
    fn parses_only_32_lowercase_hex() {
        let check = |raw: &str, ok: bool| assert_eq!(PatId::parse(raw).is_some(), ok, "{raw}");
        check("86f1dc6fe8f54414950454cbb11278fa", true);
        check("86F1DC6FE8F54414950454CBB11278FA", false);
        check("86f1dc6fe8f54414950454cbb11278f", false);
        check("86f1dc6f-e8f5-4414-9504-54cbb11278fa", false);
        check("zzf1dc6fe8f54414950454cbb11278fa", false);
        check("", false);
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let mut rng = rand::rng();
        let first = PatId::generate(&mut rng);
        let second = PatId::generate(&mut rng);
        assert!(PatId::parse(first.as_str()).is_some());
        assert_ne!(first, second);
        assert_eq!(&first.as_str()[12..13], "4");
    }
}
