//! Ed25519 signing keys: generated on first start and kept in the database, or loaded from a
//! PEM file; JWTs minted with the active key and verified against every known key by `kid`.

use anyhow::{anyhow, Context};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use patd_proto::AccessTokenClaims;
use patd_store::{Store, StoredSigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use time::OffsetDateTime;

const PEM_TAG: &str = "PRIVATE KEY";

/// One Ed25519 key pair, parsed once: signing reuses the expanded key. aws-lc-rs signs: its
/// assembly base-point multiplication is about twice as fast as ed25519-dalek or ring here, and
/// signing is most of the cost of a token exchange.
pub struct SigningKey {
    kid: String,
    signer: Ed25519KeyPair,
    /// `base64url({"typ":"JWT","alg":"EdDSA","kid":…})`, the same for every token.
    header_segment: String,
    /// The public key, base64url: the JWK's `x`.
    public_x: String,
    pkcs8_der: Vec<u8>,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey -algorithm
    /// ed25519` writes it.
    pub fn from_pem(pem_text: &str) -> anyhow::Result<SigningKey> {
        let parsed = pem::parse(pem_text).context("the signing key is not PEM")?;
        if parsed.tag() != PEM_TAG {
            return Err(anyhow!(
                "the signing key PEM is '{}', expected '{PEM_TAG}' (PKCS#8 Ed25519)",
                parsed.tag()
            ));
        }
        SigningKey::from_pkcs8(parsed.contents().to_vec())
    }

    fn from_pkcs8(pkcs8_der: Vec<u8>) -> anyhow::Result<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8_der)
            .map_err(|err| anyhow!("the signing key is not a PKCS#8 Ed25519 key: {err}"))?;
        let public_x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&public_x);
        let header = json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
        Ok(SigningKey {
            header_segment: URL_SAFE_NO_PAD.encode(header.to_string()),
            kid,
            signer: pair,
            public_x,
            pkcs8_der,
        })
    }

    /// A new key from the OS CSPRNG.
    pub fn generate() -> anyhow::Result<SigningKey> {
        let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|err| anyhow!("could not generate a signing key: {err}"))?;
        SigningKey::from_pkcs8(document.as_ref().to_vec())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new(PEM_TAG, self.pkcs8_der.clone()))
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid,
               "alg": "EdDSA", "use": "sig"})
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: a `kid` that names the key itself.
fn thumbprint(public_x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{public_x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The active signing key and every key a token may be verified with.
pub struct KeyRing {
    active: SigningKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
}

/// Why a bearer token was refused; the text follows `JWT validation failed: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    Expired,
    Malformed,
    Algorithm,
    UnknownKid,
    Signature,
    Issuer,
}

impl JwtRejection {
    pub fn reason(self) -> &'static str {
        match self {
            JwtRejection::Expired => "JWT is expired",
            JwtRejection::Malformed => "JWT is malformed",
            JwtRejection::Algorithm => "JWT algorithm is not allowed",
            JwtRejection::UnknownKid => "JWT key id is unknown",
            JwtRejection::Signature => "JWT signature is invalid",
            JwtRejection::Issuer => "JWT issuer is invalid",
        }
    }
}

impl KeyRing {
    /// Uses the PEM key if one is given; otherwise the newest key in the database (rotation adds
    /// a newer one), generating and storing one on an empty database. Every stored key verifies
    /// tokens.
    pub async fn load(store: &dyn Store, pem_text: Option<&str>) -> anyhow::Result<KeyRing> {
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() && pem_text.is_none() {
            let fresh = SigningKey::generate()?;
            store
                .insert_signing_key(&StoredSigningKey {
                    kid: fresh.kid.clone(),
                    private_pem: fresh.to_pem(),
                    created: OffsetDateTime::now_utc(),
                })
                .await?;
            // Read back: if another node stored a key at the same moment, all agree on the newest.
            stored = store.signing_keys().await?;
        }
        let mut keys = stored
            .iter()
            .map(|key| SigningKey::from_pem(&key.private_pem))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("a signing key in the database is unreadable")?;
        let active = match (pem_text, keys.pop()) {
            (Some(text), newest) => {
                keys.extend(newest);
                SigningKey::from_pem(text)?
            }
            (None, Some(newest)) => newest,
            (None, None) => return Err(anyhow!("no signing key in the database")),
        };
        Ok(KeyRing::new(active, keys))
    }

    /// A ring from keys in hand: `active` signs, all verify.
    pub fn new(active: SigningKey, others: Vec<SigningKey>) -> KeyRing {
        let mut all: Vec<&SigningKey> = vec![&active];
        all.extend(others.iter().filter(|key| key.kid != active.kid));
        let jwks = json!({"keys": all.iter().map(|key| key.jwk()).collect::<Vec<_>>()});
        let verifying = all
            .iter()
            .filter_map(|key| {
                DecodingKey::from_ed_components(&key.public_x)
                    .ok()
                    .map(|decoding| (key.kid.clone(), decoding))
            })
            .collect();
        KeyRing {
            active,
            verifying,
            jwks,
        }
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs `claims` as a compact JWS (RFC 7515) with the active key: the same bytes
    /// jsonwebtoken would produce, without re-parsing the key for every token.
    pub fn mint(&self, claims: &AccessTokenClaims<'_>) -> anyhow::Result<String> {
        let key = &self.active;
        let payload = serde_json::to_vec(claims).context("encoding JWT claims")?;
        let mut token =
            String::with_capacity(key.header_segment.len() + payload.len() * 4 / 3 + 90);
        token.push_str(&key.header_segment);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key.signer.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// Checks the header's algorithm and `kid`, the signature, `iss` and `exp`, in that order.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<AccessTokenClaims<'static>, JwtRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejection::Malformed)?;
        // The algorithm is pinned: the header cannot choose HS256, `none` or anything else.
        if header.alg != Algorithm::EdDSA {
            return Err(JwtRejection::Algorithm);
        }
        let kid = header.kid.ok_or(JwtRejection::UnknownKid)?;
        let key = self.verifying.get(&kid).ok_or(JwtRejection::UnknownKid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        jsonwebtoken::decode::<AccessTokenClaims<'static>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => JwtRejection::Expired,
                ErrorKind::InvalidIssuer => JwtRejection::Issuer,
                ErrorKind::InvalidSignature => JwtRejection::Signature,
                ErrorKind::InvalidAlgorithm => JwtRejection::Algorithm,
                _ => JwtRejection::Malformed,
            })
    }
}

/// Adds a fresh key to the database; every node signs with it once it reloads its keys.
pub async fn rotate(store: &dyn Store) -> anyhow::Result<String> {
    let fresh = SigningKey::generate()?;
    store
        .insert_signing_key(&StoredSigningKey {
            kid: fresh.kid.clone(),
            private_pem: fresh.to_pem(),
            created: OffsetDateTime::now_utc(),
        })
        .await?;
    Ok(fresh.kid)
}

/// Tokens already verified, by their exact text: a bearer token is checked once, not on every
/// request. `exp` and `iss` are still compared on every use.
type Verified = moka::sync::Cache<String, std::sync::Arc<AccessTokenClaims<'static>>>;

/// The key ring a node uses now, replaced whole when the keys change.
pub struct Keys {
    current: std::sync::RwLock<std::sync::Arc<KeyRing>>,
    verified: Verified,
    pem_text: Option<String>,
    /// When the keys were last read, so an unknown `kid` triggers at most one read a second.
    last_reload: std::sync::Mutex<std::time::Instant>,
}

impl Keys {
    pub async fn load(store: &dyn Store, pem_text: Option<&str>) -> anyhow::Result<Keys> {
        let ring = KeyRing::load(store, pem_text).await?;
        Ok(Keys {
            current: std::sync::RwLock::new(std::sync::Arc::new(ring)),
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(300))
                .build(),
            pem_text: pem_text.map(str::to_owned),
            last_reload: std::sync::Mutex::new(std::time::Instant::now()),
        })
    }

    pub fn current(&self) -> std::sync::Arc<KeyRing> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the keys from the database again.
    pub async fn reload(&self, store: &dyn Store) -> anyhow::Result<()> {
        let ring = std::sync::Arc::new(KeyRing::load(store, self.pem_text.as_deref()).await?);
        match self.current.write() {
            Ok(mut guard) => *guard = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = std::time::Instant::now();
        }
        Ok(())
    }

    /// Verifies a token; a `kid` this node has not seen yet (a key another node just added)
    /// prompts one reload before the token is refused.
    pub async fn verify(
        &self,
        store: &dyn Store,
        token: &str,
        issuer: &str,
    ) -> Result<std::sync::Arc<AccessTokenClaims<'static>>, JwtRejection> {
        if let Some(claims) = self.verified.get(token) {
            if claims.exp <= OffsetDateTime::now_utc().unix_timestamp() {
                return Err(JwtRejection::Expired);
            }
            if claims.iss != issuer {
                return Err(JwtRejection::Issuer);
            }
            return Ok(claims);
        }
        let claims = std::sync::Arc::new(self.verify_uncached(store, token, issuer).await?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    async fn verify_uncached(
        &self,
        store: &dyn Store,
        token: &str,
        issuer: &str,
    ) -> Result<AccessTokenClaims<'static>, JwtRejection> {
        match self.current().verify(token, issuer) {
            Err(JwtRejection::UnknownKid) if self.may_reload() => {
                if let Err(err) = self.reload(store).await {
                    tracing::warn!(error = %err, "could not reload signing keys");
                }
                self.current().verify(token, issuer)
            }
            other => other,
        }
    }

    fn may_reload(&self) -> bool {
        self.last_reload
            .lock()
            .map(|last| last.elapsed() >= std::time::Duration::from_secs(1))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_pem() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert!(SigningKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        assert!(SigningKey::from_pem("garbage").is_err());
    }
}
