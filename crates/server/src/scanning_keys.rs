//! The public keys that sign secret-scanning reports (EXTENSIONS E9), read once at start from
//! `--secret-scanning-keys`, and the check of a report's signature: ECDSA P-256 with SHA-256
//! over the raw body, DER-encoded and base64'd in `Github-Public-Key-Signature`, by the key
//! `Github-Public-Key-Identifier` names.
//!
//! The `p256` crate (RustCrypto) verifies: GitHub publishes its keys as PEM SubjectPublicKeyInfo,
//! which p256 reads as it is, while aws-lc-rs and ring (already in the build) take only the raw
//! curve point and would need an SPKI parser of our own in front.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use patd_proto::SecretScanningKeys;
use std::path::Path;

/// The trusted keys, by identifier.
pub struct ScanningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

/// Why a report's signature was refused. Each is answered 401, and nothing is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Github-Public-Key-Identifier` or `Github-Public-Key-Signature` is missing.
    Missing,
    /// No trusted key has that identifier.
    UnknownKey,
    /// The signature is not base64 of a DER ECDSA signature, or does not verify over the body.
    BadSignature,
}

impl Refusal {
    /// What the 401 and the request log say: fixed text, never what the client sent.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "the report has no Github-Public-Key-Identifier or Github-Public-Key-Signature"
            }
            Refusal::UnknownKey => "the report is signed by a key that is not trusted",
            Refusal::BadSignature => "the report's signature does not verify",
        }
    }
}

impl std::fmt::Debug for ScanningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("ScanningKeys")
            .field("key_identifiers", &ids)
            .finish()
    }
}

impl ScanningKeys {
    /// Reads `path`; fails, naming the file, when it cannot be read or holds no usable key.
    pub fn load(path: &Path) -> anyhow::Result<ScanningKeys> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secret-scanning keys {}", path.display()))?;
        ScanningKeys::parse(&text)
            .with_context(|| format!("the secret-scanning keys {}", path.display()))
    }

    /// The keys of a document of GitHub's shape: at least one, each identifier once, each key
    /// a P-256 public key in PEM.
    pub fn parse(text: &str) -> anyhow::Result<ScanningKeys> {
        let document: SecretScanningKeys = serde_json::from_str(text).context(
            "not a JSON document of the form {\"public_keys\": [{\"key_identifier\", \"key\", \
             \"is_current\"}]}",
        )?;
        if document.public_keys.is_empty() {
            anyhow::bail!("public_keys lists no key");
        }
        let mut keys: Vec<(String, VerifyingKey)> = Vec::new();
        for published in document.public_keys {
            let id = published.key_identifier;
            if id.is_empty() {
                anyhow::bail!("a key has an empty key_identifier");
            }
            if keys.iter().any(|(known, _)| *known == id) {
                anyhow::bail!("key_identifier {id} is listed twice");
            }
            let key = VerifyingKey::from_public_key_pem(published.key.trim()).map_err(|err| {
                anyhow::anyhow!("key {id} is not a PEM ECDSA P-256 public key: {err}")
            })?;
            keys.push((id, key));
        }
        Ok(ScanningKeys { keys })
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that `signature` (base64 of a DER ECDSA signature) by the key `key_id` signs
    /// `body`, byte for byte.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return Err(Refusal::Missing);
        };
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id.trim())
            .map(|(_, key)| key)
            .ok_or(Refusal::UnknownKey)?;
        let der = STANDARD
            .decode(signature.trim())
            .map_err(|_| Refusal::BadSignature)?;
        let signature = Signature::from_der(&der).map_err(|_| Refusal::BadSignature)?;
        key.verify(body, &signature)
            .map_err(|_| Refusal::BadSignature)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn document(keys: &[(&str, &SigningKey)]) -> String {
        let listed: Vec<serde_json::Value> = keys
            .iter()
            .map(|(id, key)| {
                let pem = key
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap();
                serde_json::json!({"key_identifier": id, "key": pem, "is_current": true})
            })
            .collect();
        serde_json::json!({ "public_keys": listed }).to_string()
    }

    fn new_key() -> SigningKey {
        // A random scalar is a valid key but for a chance of 2^-128.
        SigningKey::from_slice(&rand::random::<[u8; 32]>()).unwrap()
    }

    fn sign(key: &SigningKey, body: &[u8]) -> String {
        let signature: Signature = key.sign(body);
        STANDARD.encode(signature.to_der().as_bytes())
    }

    #[test]
    fn a_report_verifies_only_with_its_key_and_its_bytes() {
        let (first, second) = (new_key(), new_key());
        let keys = ScanningKeys::parse(&document(&[("k1", &first), ("k2", &second)])).unwrap();
        assert_eq!(keys.len(), 2);
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let signature = sign(&first, body);
        assert_eq!(keys.verify(Some("k1"), Some(&signature), body), Ok(()));
        let check = |id: Option<&str>, signature: Option<&str>, body: &[u8], want: Refusal| {
            assert_eq!(keys.verify(id, signature, body), Err(want), "{id:?}");
        };
        check(Some("k2"), Some(&signature), body, Refusal::BadSignature);
        check(Some("k3"), Some(&signature), body, Refusal::UnknownKey);
        check(None, Some(&signature), body, Refusal::Missing);
        check(Some("k1"), None, body, Refusal::Missing);
        check(Some("k1"), Some("not base64!"), body, Refusal::BadSignature);
        check(Some("k1"), Some("AAAA"), body, Refusal::BadSignature);
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        check(
            Some("k1"),
            Some(&signature),
            &tampered,
            Refusal::BadSignature,
        );
    }

    #[test]
    fn a_bad_document_is_refused_with_a_reason() {
        let key = new_key();
        for (text, reason) in [
            ("not json".to_owned(), "not a JSON document"),
            (r#"{"public_keys": []}"#.to_owned(), "lists no key"),
            (
                r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#.to_owned(),
                "key k is not a PEM",
            ),
            (document(&[("k", &key), ("k", &key)]), "listed twice"),
        ] {
            let err = format!("{:#}", ScanningKeys::parse(&text).unwrap_err());
            assert!(err.contains(reason), "{err}");
        }
    }
}
