//! The key-encryption key (KEK): seals the signing keys kept in the database with AES-256-GCM,
//! as Ory Hydra's `secrets.system` does, so that a copy of the database alone cannot mint tokens.
//!
//! A sealed key is stored as text, in place of its PEM:
//! `sealed:v1:<KEK id>:<base64 of nonce ‖ ciphertext ‖ tag>`, with a fresh random 96-bit nonce
//! per seal and the key's `kid` as additional authenticated data, so that a sealed text moved to
//! another row does not open. The KEK id is the first 8 hex digits of SHA-256 of the KEK: it
//! names the KEK in errors without revealing it.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The length of a key-encryption key, in bytes (AES-256).
pub const KEK_LEN: usize = 32;

/// What every sealed text starts with, whatever its version.
const SEALED: &str = "sealed:";
/// The prefix of the one format this version writes and reads.
const SEALED_V1: &str = "sealed:v1:";

/// A 256-bit key that seals and opens the stored signing keys. Its `Debug` shows its id only.
pub struct KeyEncryptionKey {
    key: RandomizedNonceKey,
    id: String,
}

/// Why a key-encryption key or a sealed signing key could not be used. Each message is one line
/// that names the KEKs involved by their ids.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KekError {
    #[error("the key-encryption key is not base64 (standard alphabet)")]
    NotBase64,
    #[error("the key-encryption key is {0} bytes long once decoded, expected {KEK_LEN}")]
    WrongLength(usize),
    #[error(
        "signing key {kid} is sealed with key-encryption key {sealed_with}, but the \
         key-encryption key given is {given}"
    )]
    WrongKek {
        kid: String,
        sealed_with: String,
        given: String,
    },
    #[error(
        "signing key {kid} is sealed with key-encryption key {sealed_with}, but no \
         key-encryption key was given (--key-encryption-key-file)"
    )]
    Missing { kid: String, sealed_with: String },
    #[error(
        "signing key {kid} does not open with key-encryption key {kek}: its stored text was \
         altered or belongs to another key"
    )]
    DoesNotOpen { kid: String, kek: String },
    #[error("signing key {kid} is sealed in a format this patd does not know")]
    UnknownFormat { kid: String },
    #[error("could not seal signing key {kid}")]
    Seal { kid: String },
}

impl KeyEncryptionKey {
    /// Reads a KEK written as base64 (standard alphabet, padded), as
    /// `head -c 32 /dev/urandom | base64` prints it; whitespace around it is ignored.
    pub fn from_base64(text: &str) -> Result<KeyEncryptionKey, KekError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KekError::NotBase64)?;
        KeyEncryptionKey::from_bytes(&bytes)
    }

    /// A KEK from its raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyEncryptionKey, KekError> {
        if bytes.len() != KEK_LEN {
            return Err(KekError::WrongLength(bytes.len()));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| KekError::WrongLength(bytes.len()))?;
        Ok(KeyEncryptionKey {
            key,
            id: hex::encode(&Sha256::digest(bytes)[..4]),
        })
    }

    /// The KEK's id: the first 8 hex digits of SHA-256 of its bytes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals the private key of signing key `kid` under a fresh random nonce.
    pub fn seal(&self, kid: &str, plaintext: &str) -> Result<String, KekError> {
        let mut in_out = plaintext.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| KekError::Seal {
                kid: kid.to_owned(),
            })?;
        let mut envelope = nonce.as_ref().to_vec();
        envelope.extend_from_slice(&in_out);
        Ok(format!(
            "{SEALED_V1}{}:{}",
            self.id,
            STANDARD.encode(envelope)
        ))
    }

    /// Opens the stored text of signing key `kid`, which must be sealed.
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, KekError> {
        let (sealed_with, body) = envelope(kid, stored)?;
        if sealed_with != self.id {
            return Err(KekError::WrongKek {
                kid: kid.to_owned(),
                sealed_with: sealed_with.to_owned(),
                given: self.id.clone(),
            });
        }
        let does_not_open = || KekError::DoesNotOpen {
            kid: kid.to_owned(),
            kek: self.id.clone(),
        };
        let mut bytes = STANDARD.decode(body).map_err(|_| does_not_open())?;
        if bytes.len() < NONCE_LEN {
            return Err(does_not_open());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| does_not_open())?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut sealed)
            .map_err(|_| does_not_open())?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| does_not_open())
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Whether a stored signing key is sealed (rather than a plain PEM).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED)
}

/// The id of the KEK a stored signing key is sealed with; `None` for a plain or unknown text.
pub fn sealed_with(stored: &str) -> Option<&str> {
    stored.strip_prefix(SEALED_V1)?.split(':').next()
}

/// The private key PEM of a stored signing key: opened with `kek` if it is sealed, as stored if
/// it is plain.
pub fn reveal(kek: Option<&KeyEncryptionKey>, kid: &str, stored: &str) -> Result<String, KekError> {
    match kek {
        _ if !is_sealed(stored) => Ok(stored.to_owned()),
        Some(kek) => kek.open(kid, stored),
        None => Err(KekError::Missing {
            kid: kid.to_owned(),
            sealed_with: envelope(kid, stored)?.0.to_owned(),
        }),
    }
}

/// Splits a sealed text into the KEK id and the base64 body.
fn envelope<'s>(kid: &str, stored: &'s str) -> Result<(&'s str, &'s str), KekError> {
    stored
        .strip_prefix(SEALED_V1)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| KekError::UnknownFormat {
            kid: kid.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIP8h\n-----END PRIVATE KEY-----\n";

    fn kek(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes(&[byte; KEK_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_its_kek_and_kid_only() {
        let first = kek(1);
        let sealed = first.seal("kid-a", PEM).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("PRIVATE KEY"));
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", first.id())));
        assert_eq!(sealed_with(&sealed), Some(first.id()));
        assert_eq!(first.open("kid-a", &sealed).unwrap(), PEM);
        assert_eq!(reveal(Some(&first), "kid-a", &sealed).unwrap(), PEM);
        // The kid is authenticated: the text of one row does not open as another's.
        assert_eq!(
            first.open("kid-b", &sealed),
            Err(KekError::DoesNotOpen {
                kid: "kid-b".into(),
                kek: first.id().into()
            })
        );
        let second = kek(2);
        assert_eq!(
            second.open("kid-a", &sealed),
            Err(KekError::WrongKek {
                kid: "kid-a".into(),
                sealed_with: first.id().into(),
                given: second.id().into()
            })
        );
        assert_eq!(
            reveal(None, "kid-a", &sealed),
            Err(KekError::Missing {
                kid: "kid-a".into(),
                sealed_with: first.id().into()
            })
        );
    }

    #[test]
    fn every_seal_has_a_fresh_nonce() {
        let key = kek(3);
        let one = key.seal("kid", PEM).unwrap();
        let two = key.seal("kid", PEM).unwrap();
        assert_ne!(one, two);
        let body = STANDARD.decode(one.rsplit(':').next().unwrap()).unwrap();
        assert_eq!(
            body.len(),
            NONCE_LEN + PEM.len() + 16,
            "nonce, ciphertext, tag"
        );
    }

    #[test]
    fn an_altered_or_unknown_text_does_not_open() {
        let key = kek(4);
        let sealed = key.seal("kid", PEM).unwrap();
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = STANDARD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{head}:{}", STANDARD.encode(&bytes));
        let does_not_open = Err(KekError::DoesNotOpen {
            kid: "kid".into(),
            kek: key.id().into(),
        });
        assert_eq!(key.open("kid", &altered), does_not_open);
        assert_eq!(key.open("kid", &format!("{head}:AAAA")), does_not_open);
        assert_eq!(
            key.open("kid", &format!("{head}:not base64!")),
            does_not_open
        );
        let unknown = Err(KekError::UnknownFormat { kid: "kid".into() });
        assert_eq!(key.open("kid", "sealed:v2:abcd:AAAA"), unknown);
        assert_eq!(reveal(Some(&key), "kid", "sealed:v2:abcd:AAAA"), unknown);
        assert_eq!(reveal(None, "kid", "sealed:v2"), unknown);
        assert_eq!(key.open("kid", PEM), unknown);
        // A plain PEM is returned as it is.
        assert_eq!(reveal(Some(&key), "kid", PEM).unwrap(), PEM);
        assert_eq!(reveal(None, "kid", PEM).unwrap(), PEM);
    }

    #[test]
    fn a_kek_is_32_bytes_of_standard_base64() {
        let bytes: Vec<u8> = (0..32).collect();
        let text = STANDARD.encode(&bytes);
        let from_text = KeyEncryptionKey::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(from_text.id(), kek_id_of(&bytes));
        assert_eq!(from_text.id().len(), 8);
        assert!(format!("{from_text:?}").contains(from_text.id()));
        for (text, want) in [
            (STANDARD.encode([7u8; 31]), KekError::WrongLength(31)),
            (STANDARD.encode([7u8; 33]), KekError::WrongLength(33)),
            (String::new(), KekError::WrongLength(0)),
            ("not base64!".to_owned(), KekError::NotBase64),
            // The URL-safe alphabet is not the standard one.
            (
                STANDARD
                    .encode([0xfbu8; 32])
                    .replace('+', "-")
                    .replace('/', "_"),
                KekError::NotBase64,
            ),
        ] {
            assert_eq!(
                KeyEncryptionKey::from_base64(&text).unwrap_err(),
                want,
                "{text}"
            );
        }
    }

    fn kek_id_of(bytes: &[u8]) -> String {
        hex::encode(&Sha256::digest(bytes)[..4])
    }
}
