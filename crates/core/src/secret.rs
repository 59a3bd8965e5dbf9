//! PAT secrets: how they are made, the scannable format, and the digest that is all we keep.
//!
//! Format: `patd_` + 32 base62 characters of CSPRNG output (≈190 bits) + a 6-character base62
//! checksum, the first 32 bits of SHA-256 over the prefix and body. A secret scanner finds them
//! with `\bpatd_[0-9A-Za-z]{38}\b` and can reject a near miss offline by recomputing the checksum.

use rand::{CryptoRng, Rng};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The fixed prefix. Changing it revokes every secret ever issued: the checksum covers it.
pub const SECRET_PREFIX: &str = "patd_";
const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// The total length of a secret.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A plaintext secret. It exists only while a PAT is created or presented; its `Debug` prints
/// nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a presented string is not a patd secret. Reported to clients as a plain bad credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormatError {
    Prefix,
    Length,
    Alphabet,
    Checksum,
}

impl Secret {
    /// A fresh secret from a CSPRNG.
    pub fn generate(rng: &mut impl CryptoRng) -> Secret {
        let mut value = String::with_capacity(SECRET_LEN);
        value.push_str(SECRET_PREFIX);
        for _ in 0..BODY_LEN {
            value.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
        }
        let checksum = checksum(&value);
        value.push_str(&checksum);
        Secret(value)
    }

    /// Checks the prefix, length, alphabet and checksum, without any lookup.
    pub fn parse(raw: &str) -> Result<Secret, SecretFormatError> {
        let body_and_sum = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretFormatError::Prefix)?;
        if raw.len() != SECRET_LEN {
            return Err(SecretFormatError::Length);
        }
        if !body_and_sum.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretFormatError::Alphabet);
        }
        let (head, sum) = raw.split_at(SECRET_LEN - CHECKSUM_LEN);
        if checksum(head).as_bytes().ct_eq(sum.as_bytes()).into() {
            Ok(Secret(raw.to_owned()))
        } else {
            Err(SecretFormatError::Checksum)
        }
    }

    /// The plaintext, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// SHA-256 of a secret: what the store keeps. The secrets carry 190 random bits, so a plain
/// digest cannot be reversed by guessing and needs no salt or slow hash.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn from_bytes(bytes: &[u8]) -> Option<SecretDigest> {
        <[u8; 32]>::try_from(bytes).ok().map(SecretDigest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time.
    pub fn matches(&self, secret: &Secret) -> bool {
        secret.digest().0.ct_eq(&self.0).into()
    }

    /// A digest no secret has, to compare against when the id is unknown, so that an unknown id
    /// costs the same work as a wrong secret.
    pub fn dummy() -> SecretDigest {
        SecretDigest([0u8; 32])
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

/// `text` with every string that passes the secret checksum replaced by `pat_…` and its last
/// four characters, so that a secret pasted into the wrong field is never echoed or logged.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(SECRET_PREFIX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SECRET_PREFIX) {
        out.push_str(&rest[..at]);
        let candidate = rest.get(at..at + SECRET_LEN);
        match candidate.filter(|raw| Secret::parse(raw).is_ok()) {
            Some(secret) => {
                out.push_str("pat_…");
                out.push_str(&secret[SECRET_LEN - 4..]);
                rest = &rest[at + SECRET_LEN..];
            }
            None => {
                out.push_str(SECRET_PREFIX);
                rest = &rest[at + SECRET_PREFIX.len()..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Whether `text` holds a string that passes the secret checksum anywhere in it.
pub fn holds_secret(text: &str) -> bool {
    text.contains(SECRET_PREFIX) && redact(text) != text
}

fn checksum(head: &str) -> String {
    let hash = Sha256::digest(head.as_bytes());
    let mut value = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_pinned() {
        // Changing the prefix invalidates every secret already issued and breaks scanners' rules.
        assert_eq!(SECRET_PREFIX, "patd_");
        assert_eq!(SECRET_LEN, 43);
    }

    #[test]
    fn a_generated_secret_parses_and_matches_its_digest() {
        let secret = Secret::generate(&mut rand::rng());
        assert_eq!(secret.expose().len(), SECRET_LEN);
        let parsed = Secret::parse(secret.expose()).unwrap();
        assert!(secret.digest().matches(&parsed));
        assert!(!SecretDigest::dummy().matches(&parsed));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn typos_are_caught_offline() {
        let secret = Secret::generate(&mut rand::rng());
        let raw = secret.expose();
        let check = |input: &str, want: SecretFormatError| {
            assert_eq!(Secret::parse(input), Err(want), "{input}")
        };
        check(&raw.replacen("patd_", "ghp_", 1), SecretFormatError::Prefix);
        check(&raw[..SECRET_LEN - 1], SecretFormatError::Length);
        check(
            &format!("{}!{}", &raw[..10], &raw[11..]),
            SecretFormatError::Alphabet,
        );
        let mut flipped = raw.as_bytes().to_vec();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        check(
            std::str::from_utf8(&flipped).unwrap(),
            SecretFormatError::Checksum,
        );
    }

    #[test]
    fn the_checksum_is_stable() {
        // A known vector, so a scanner written from the README can be checked against it.
        assert_eq!(checksum("patd_00000000000000000000000000000000").len(), 6);
        let known = format!("patd_{}", "0".repeat(32));
        let full = format!("{known}{}", checksum(&known));
        assert!(Secret::parse(&full).is_ok());
    }

    #[test]
    fn secrets_are_redacted_wherever_they_appear() {
        let secret = Secret::generate(&mut rand::rng());
        let raw = secret.expose();
        let text = format!("scope entry '{raw}' and patd_notasecret");
        let redacted = redact(&text);
        assert!(!redacted.contains(raw));
        assert!(redacted.contains(&format!("pat_…{}", &raw[raw.len() - 4..])));
        assert!(redacted.contains("patd_notasecret"));
        assert_eq!(redact("nothing here"), "nothing here");
        assert!(holds_secret(&text));
        assert!(!holds_secret("patd_notasecret"));
        assert!(!holds_secret(&typo(raw)));
    }

    fn typo(raw: &str) -> String {
        let mut chars: Vec<char> = raw.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        chars.into_iter().collect()
    }
}
