//! Ed25519 signing keys: generated on first start and kept in the database (sealed with the
//! key-encryption key when there is one, see `kek`), or loaded from a PEM file; JWTs minted with
//! the active key and verified against every known key by `kid`.

use crate::kek::{self, KeyEncryptionKey};
use anyhow::{anyhow, Context};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use patd_proto::{AccessTokenClaims, SigningKeyView};
use patd_store::{Retirement, SigningKeyReplacement, Store, StoredSigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

const PEM_TAG: &str = "PRIVATE KEY";

/// The `typ` of patd's access tokens (RFC 9068 §2.1). Tokens minted before patd 0.13 say `JWT`,
/// and are accepted until they expire; any other `typ` (a SET's `secevent+jwt`, say) is not an
/// access token and is refused, whatever key signed it.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
const LEGACY_TOKEN_TYPE: &str = "JWT";

/// One Ed25519 key pair, parsed once: signing reuses the expanded key. aws-lc-rs signs: its
/// assembly base-point multiplication is about twice as fast as ed25519-dalek or ring here, and
/// signing is most of the cost of a token exchange.
pub struct SigningKey {
    kid: String,
    signer: Ed25519KeyPair,
    /// `base64url({"typ":"at+jwt","alg":"EdDSA","kid":…})` (RFC 9068 §2.1), the same for every
    /// token.
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
        let header = json!({"typ": ACCESS_TOKEN_TYPE, "alg": "EdDSA", "kid": kid});
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

/// The active signing key, every key a token may be verified with, and every issuer (`iss`) a
/// node of this deployment signs as.
pub struct KeyRing {
    active: SigningKey,
    /// The other keys that verify (`verify` says how: with their private halves).
    others: Vec<SigningKey>,
    /// Where each verifying key is, by `kid`: `None` the active one, else its place in `others`.
    verifying: HashMap<String, Option<usize>>,
    jwks: Value,
    /// The `iss` values a token may carry: this deployment's issuers.
    issuers: Vec<String>,
    /// The `aud` values a token may carry to be accepted here: this node's `--audience`s and
    /// every registered issuer (the default audience of the node that minted it).
    audiences: Vec<String>,
    /// Counts reloads, so that concurrent requests that met an unknown `kid` share one.
    generation: u64,
}

/// Why a bearer token was refused; the text follows `JWT validation failed: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    Expired,
    /// `nbf` or `iat` is later than now, past the leeway.
    NotYetValid,
    /// The header names a critical extension (`crit`, RFC 7515 §4.1.11); patd knows none.
    Critical,
    Malformed,
    Algorithm,
    UnknownKid,
    Signature,
    Issuer,
    /// `aud` names none of the audiences accepted here.
    Audience,
    /// The header's `typ` is not an access token's.
    Type,
}

impl JwtRejection {
    pub fn reason(self) -> &'static str {
        match self {
            JwtRejection::Expired => "JWT is expired",
            JwtRejection::NotYetValid => "JWT is not valid yet",
            JwtRejection::Critical => "JWT has a critical header parameter that is not supported",
            JwtRejection::Malformed => "JWT is malformed",
            JwtRejection::Algorithm => "JWT algorithm is not allowed",
            JwtRejection::UnknownKid => "JWT key id is unknown",
            JwtRejection::Signature => "JWT signature is invalid",
            JwtRejection::Issuer => "JWT issuer is invalid",
            JwtRejection::Audience => "JWT audience is invalid",
            JwtRejection::Type => "JWT type is not an access token's",
        }
    }
}

impl KeyRing {
    /// Reads the stored keys, opening the sealed ones with `kek`, and the issuers. The PEM key
    /// signs if one is given; otherwise the newest stored key does (rotation adds a newer one).
    /// Every stored key verifies tokens, and every registered issuer is accepted besides
    /// `own_issuer`; `aud` may name any of `audiences` or of the issuers.
    pub async fn read(
        store: &dyn Store,
        pem_text: Option<&str>,
        kek: Option<&KeyEncryptionKey>,
        own_issuer: &str,
        audiences: &[String],
        generation: u64,
    ) -> anyhow::Result<KeyRing> {
        let stored = store.signing_keys().await?;
        // A retired key neither signs nor verifies.
        let mut keys = stored
            .iter()
            .filter(|key| key.retired.is_none())
            .map(|key| open(kek, key))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let active = match (pem_text, keys.pop()) {
            (Some(text), newest) => {
                keys.extend(newest);
                SigningKey::from_pem(text)?
            }
            (None, Some(newest)) => newest,
            (None, None) => {
                return Err(anyhow!(
                    "no signing key in the database; add one with `patd key rotate`"
                ))
            }
        };
        let mut issuers: Vec<String> = store.issuers().await?;
        issuers.push(own_issuer.to_owned());
        let mut ring = KeyRing::new(active, keys, &issuers, audiences);
        ring.generation = generation;
        Ok(ring)
    }

    /// A ring from keys in hand: `active` signs, all verify; tokens of any of `issuers`, for
    /// any of `audiences` or of the issuers, pass.
    pub fn new(
        active: SigningKey,
        others: Vec<SigningKey>,
        issuers: &[String],
        audiences: &[String],
    ) -> KeyRing {
        let others: Vec<SigningKey> = others
            .into_iter()
            .filter(|key| key.kid != active.kid)
            .collect();
        let all = std::iter::once(&active).chain(&others);
        let jwks = json!({"keys": all.map(SigningKey::jwk).collect::<Vec<_>>()});
        let mut verifying: HashMap<String, Option<usize>> = others
            .iter()
            .enumerate()
            .map(|(index, key)| (key.kid.clone(), Some(index)))
            .collect();
        verifying.insert(active.kid.clone(), None);
        let mut accepted: Vec<String> = audiences.to_vec();
        accepted.extend(issuers.iter().cloned());
        accepted.sort();
        accepted.dedup();
        KeyRing {
            active,
            others,
            verifying,
            jwks,
            issuers: issuers.to_vec(),
            audiences: accepted,
            generation: 0,
        }
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Whether a token signed with `kid` can verify.
    fn verifies(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
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

    /// Checks the header's algorithm, `typ`, `crit` and `kid`, the signature, `iss`, `aud`, and
    /// the times (`check_times`), in that order. The compact JWS (RFC 7515 §7.1) is read here:
    /// three base64url segments, the signature checked over the first two (by making it again
    /// with the `kid`'s key, parsed once) before the claims are read at all.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<AccessTokenClaims<'static>, JwtRejection> {
        let mut segments = token.split('.');
        let (Some(header_segment), Some(payload_segment), Some(signature_segment), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwtRejection::Malformed);
        };
        let header: JwsHeader = URL_SAFE_NO_PAD
            .decode(header_segment)
            .ok()
            // serde would read a JSON array into a struct member by member: an object only.
            .filter(|bytes| bytes.trim_ascii_start().first() == Some(&b'{'))
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtRejection::Malformed)?;
        // The algorithm is pinned: the header cannot choose HS256, `none` or anything else. A
        // name that is no JWS signature algorithm (`none` among them) is no token at all.
        if header.alg != "EdDSA" {
            return Err(if KNOWN_ALGORITHMS.contains(&header.alg.as_str()) {
                JwtRejection::Algorithm
            } else {
                JwtRejection::Malformed
            });
        }
        // RFC 9068 §4: only an access token is taken for one.
        if !matches!(
            header.typ.as_deref(),
            Some(ACCESS_TOKEN_TYPE | LEGACY_TOKEN_TYPE)
        ) {
            return Err(JwtRejection::Type);
        }
        // patd understands no JWS extension, so any critical one is unknown to it.
        if header.crit.0 {
            return Err(JwtRejection::Critical);
        }
        let kid = header.kid.ok_or(JwtRejection::UnknownKid)?;
        let key = match self.verifying.get(&kid).ok_or(JwtRejection::UnknownKid)? {
            None => &self.active,
            Some(index) => self.others.get(*index).ok_or(JwtRejection::UnknownKid)?,
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature_segment)
            .map_err(|_| JwtRejection::Malformed)?;
        let signed = &token[..header_segment.len() + 1 + payload_segment.len()];
        // Ed25519 signing is deterministic (RFC 8032 §5.1.6): the one signature patd makes of
        // these bytes with this key is the one to find. Making it again costs a quarter of
        // checking one against the public key, and it proves as much: a signature this key
        // made is valid, and no one without the key can make it. Any other signature of the
        // same bytes, even one that verifies, is one patd never made. Compared in constant
        // time.
        let expected = key.signer.sign(signed.as_bytes());
        if !bool::from(expected.as_ref().ct_eq(signature.as_slice())) {
            return Err(JwtRejection::Signature);
        }
        let claims: AccessTokenClaims<'static> = URL_SAFE_NO_PAD
            .decode(payload_segment)
            .ok()
            .filter(|bytes| bytes.trim_ascii_start().first() == Some(&b'{'))
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtRejection::Malformed)?;
        if !self.issuers.iter().any(|issuer| *issuer == claims.iss) {
            return Err(JwtRejection::Issuer);
        }
        // Tokens minted before patd 0.13 carry no `aud` (nor `sub`); they are honoured until
        // their `exp`, at most 12 hours after an upgrade. Every newer token names its audience.
        if !claims.aud.is_empty() && !claims.aud.any_of(&self.audiences) {
            return Err(JwtRejection::Audience);
        }
        check_times(&claims, now)?;
        Ok(claims)
    }
}

/// The JWS signature algorithms (RFC 7518 §3.1, RFC 8037) a header may name without being
/// malformed; patd takes only `EdDSA`.
const KNOWN_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384",
    "PS512", "EdDSA",
];

/// The members of a JWS header that patd reads; any other is ignored, and a member given twice
/// is refused (serde), as is a header that is not a JSON object.
#[derive(serde::Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Present,
}

/// Whether a header member is there at all, whatever its value (`"crit": null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

/// How far ahead of this node's clock a token's `iat` or `nbf` may be: another node's clock
/// may run a little ahead. `exp` gets none: a token is refused from its `exp` second on (RFC
/// 7519 §4.1.4).
pub const CLOCK_LEEWAY_SECONDS: i64 = 60;

/// The one clock rule, for tokens just verified and tokens from the cache alike: refused from
/// `exp` on, and while `nbf` or `iat` lies more than [`CLOCK_LEEWAY_SECONDS`] ahead.
pub fn check_times(claims: &AccessTokenClaims<'_>, now: i64) -> Result<(), JwtRejection> {
    if claims.exp <= now {
        return Err(JwtRejection::Expired);
    }
    let latest_start = now.saturating_add(CLOCK_LEEWAY_SECONDS);
    if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
        return Err(JwtRejection::NotYetValid);
    }
    Ok(())
}

/// Adds a fresh key to the database; every node signs with it once it reloads its keys. With a
/// key-encryption key the new key is sealed (and so is any key still stored in the clear);
/// without one, a database whose keys are sealed is refused a plain key.
pub async fn rotate(store: &dyn Store, kek: Option<&KeyEncryptionKey>) -> anyhow::Result<String> {
    match kek {
        Some(kek) => {
            reseal(store, kek, kek, Reseal::PlainOnly).await?;
        }
        None => {
            let keys = store.signing_keys().await?;
            if let Some(sealed) = keys.iter().find(|key| kek::is_sealed(&key.private_key)) {
                return Err(anyhow!(
                    "the signing keys in this database are sealed with key-encryption key {}: \
                     give it (--key-encryption-key-file) so that the new key is sealed too",
                    kek::sealed_with(&sealed.private_key).unwrap_or("(unknown)")
                ));
            }
        }
    }
    let fresh = SigningKey::generate()?;
    let event = key_created(&fresh.kid, "cli");
    store
        .insert_signing_key(&stored(&fresh, kek)?, &event)
        .await?;
    crate::audit::committed(&event);
    Ok(fresh.kid)
}

/// The `key.created` event of a key made by `by` (the command line, or a node's first start).
fn key_created(kid: &str, by: &str) -> patd_core::audit::AuditEvent {
    let target = patd_core::audit::Target {
        kind: patd_core::audit::Target::SIGNING_KEY,
        id: kid.to_owned(),
        name: None,
        owner_id: None,
    };
    crate::audit::event(
        patd_core::audit::EventType::KeyCreated,
        patd_core::audit::Actor::system(by),
        Some(target),
    )
}

/// Every stored key, oldest first, for `patd key list`.
pub async fn list(store: &dyn Store) -> anyhow::Result<Vec<SigningKeyView>> {
    let stored = store.signing_keys().await?;
    let newest = stored.last().map(|key| key.kid.clone());
    Ok(stored
        .into_iter()
        .map(|key| SigningKeyView {
            current: newest.as_deref() == Some(key.kid.as_str()),
            algorithm: "EdDSA".to_owned(),
            created: key.created,
            retired: key.retired,
            sealed_with: kek::sealed_with(&key.private_key).map(str::to_owned),
            kid: key.kid,
        })
        .collect())
}

/// Retires the key `kid`: every node stops verifying the tokens it signed as soon as it hears
/// (PostgreSQL's `NOTIFY`, the SQLite watcher) and drops it from the JWK set. The current key is
/// refused; retiring a retired key again changes nothing. Returns the key as it now is.
pub async fn retire(store: &dyn Store, kid: &str) -> anyhow::Result<SigningKeyView> {
    match store
        .retire_signing_key(kid, OffsetDateTime::now_utc())
        .await?
    {
        Retirement::Retired(_) | Retirement::AlreadyRetired(_) => {}
        Retirement::Current => {
            return Err(anyhow!(
                "signing key {kid} is the current signing key, which signs every new token: \
                 add a new one with `patd key rotate`, then retire this one"
            ))
        }
        Retirement::NotFound => {
            return Err(anyhow!(
                "no signing key '{kid}' in this database (see `patd key list`)"
            ))
        }
    }
    list(store)
        .await?
        .into_iter()
        .find(|key| key.kid == kid)
        .ok_or_else(|| anyhow!("signing key {kid} was retired, then could not be read back"))
}

/// Seals every stored key again, from `old` to `new`, in one transaction; keys stored in the
/// clear are sealed too. Nothing is written unless every key opens with `old`. Returns how many
/// keys were sealed.
pub async fn rotate_kek(
    store: &dyn Store,
    old: &KeyEncryptionKey,
    new: &KeyEncryptionKey,
) -> anyhow::Result<usize> {
    reseal(store, old, new, Reseal::Every).await
}

/// Which stored keys `reseal` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reseal {
    /// Those stored in the clear: a KEK is given for the first time.
    PlainOnly,
    /// All of them: the KEK changes.
    Every,
}

/// How often `reseal` starts over when another process changed a key under it.
const RESEAL_ATTEMPTS: usize = 3;

/// Opens every stored key with `old` (a plain one as it is) before anything is written, then
/// replaces the chosen ones with their texts sealed by `new` in one transaction. If another
/// process changed a key meanwhile (another node sealing the same keys as it starts), nothing
/// is written and it starts over from what is stored now.
async fn reseal(
    store: &dyn Store,
    old: &KeyEncryptionKey,
    new: &KeyEncryptionKey,
    which: Reseal,
) -> anyhow::Result<usize> {
    for _ in 0..RESEAL_ATTEMPTS {
        let mut replacements = Vec::new();
        for key in store.signing_keys().await? {
            let opened = open(Some(old), &key)?;
            if which == Reseal::Every || !kek::is_sealed(&key.private_key) {
                replacements.push(SigningKeyReplacement {
                    new: new.seal(&key.kid, &opened.to_pem())?,
                    kid: key.kid,
                    old: key.private_key,
                });
            }
        }
        if replacements.is_empty() || store.replace_signing_keys(&replacements).await? {
            return Ok(replacements.len());
        }
    }
    Err(anyhow!(
        "the signing keys kept changing while they were being sealed; nothing was written"
    ))
}

/// A stored key, opened with `kek` if it is sealed, and parsed.
fn open(kek: Option<&KeyEncryptionKey>, key: &StoredSigningKey) -> anyhow::Result<SigningKey> {
    let pem = kek::reveal(kek, &key.kid, &key.private_key)?;
    SigningKey::from_pem(&pem)
        .with_context(|| format!("signing key {} in the database is unreadable", key.kid))
}

/// A key as it is stored: sealed with `kek` when there is one.
fn stored(key: &SigningKey, kek: Option<&KeyEncryptionKey>) -> anyhow::Result<StoredSigningKey> {
    let pem = key.to_pem();
    Ok(StoredSigningKey {
        private_key: match kek {
            Some(kek) => kek.seal(&key.kid, &pem)?,
            None => pem,
        },
        kid: key.kid.clone(),
        created: OffsetDateTime::now_utc(),
        retired: None,
    })
}

/// Tokens already verified, by their exact text: a bearer token is checked once, not on every
/// request. `exp` is still compared on every use, and the retirement epoch the token was
/// verified in (see `Keys::retirements`).
type Verified = moka::sync::Cache<String, (Arc<AccessTokenClaims<'static>>, u64)>;

/// The most memory the verified-token cache may take, in bytes (about 40,000 tokens).
const VERIFIED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Reloads prompted by tokens start at most this often; requests that need one wait for it.
const RELOAD_INTERVAL: Duration = Duration::from_millis(100);

/// The key ring a node uses now, replaced whole when the keys or issuers change.
pub struct Keys {
    current: RwLock<Arc<KeyRing>>,
    verified: Verified,
    pem_text: Option<String>,
    kek: Option<Arc<KeyEncryptionKey>>,
    own_issuer: String,
    /// `--audience`: what this node's tokens are for, besides the issuers.
    audiences: Vec<String>,
    /// Held while the ring is read again, so one reload runs at a time; holds when the last one
    /// ended.
    reloading: tokio::sync::Mutex<Option<Instant>>,
    /// Counts the reloads that took a key away (`patd key retire`). A verified token is trusted
    /// from the cache only in the epoch it was verified in, so a retired key's tokens are
    /// checked again, against the new ring, and refused. Bumped after the new ring is in place:
    /// a token verified with the old ring carries an older epoch.
    retirements: AtomicU64,
}

impl Keys {
    /// With a key-encryption key, first seals the keys stored in the clear (only once every
    /// sealed key has opened with it). Creates the deployment's first key if the database has
    /// none (exactly once, however many nodes start together), then reads the ring.
    pub async fn load(
        store: &dyn Store,
        pem_text: Option<&str>,
        kek: Option<Arc<KeyEncryptionKey>>,
        own_issuer: &str,
        audiences: &[String],
    ) -> anyhow::Result<Keys> {
        if let Some(kek) = &kek {
            let sealed = reseal(store, kek, kek, Reseal::PlainOnly).await?;
            if sealed > 0 {
                tracing::info!(
                    keys = sealed,
                    kek = kek.id(),
                    "sealed the signing keys stored in the clear"
                );
            }
        }
        if pem_text.is_none() && store.signing_keys().await?.is_empty() {
            let fresh = SigningKey::generate()?;
            let event = key_created(&fresh.kid, "patd");
            // Lost or won, the key to use is read back below.
            if store
                .insert_first_signing_key(&stored(&fresh, kek.as_deref())?, &event)
                .await?
            {
                crate::audit::committed(&event);
            }
        }
        let ring = KeyRing::read(store, pem_text, kek.as_deref(), own_issuer, audiences, 0).await?;
        Ok(Keys {
            current: RwLock::new(Arc::new(ring)),
            // Weighed by bytes: every exchange mints a new token, so clients decide how many
            // there are. A token and its claims take about twice its text.
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE_BYTES)
                .weigher(|token: &String, _| {
                    u32::try_from(token.len() * 2 + 256).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(300))
                .build(),
            pem_text: pem_text.map(str::to_owned),
            kek,
            own_issuer: own_issuer.to_owned(),
            audiences: audiences.to_vec(),
            reloading: tokio::sync::Mutex::new(None),
            retirements: AtomicU64::new(0),
        })
    }

    pub fn current(&self) -> Arc<KeyRing> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the keys and issuers from the database again (a key was added, a node registered,
    /// or announcements may have been missed).
    pub async fn reload(&self, store: &dyn Store) -> anyhow::Result<()> {
        let mut last = self.reloading.lock().await;
        let result = self.read_and_install(store).await;
        *last = Some(Instant::now());
        result
    }

    /// Reloads unless the ring has changed since `seen` was current. Waits for a reload already
    /// running, and starts a new one at most every `RELOAD_INTERVAL`, so a flood of unknown
    /// `kid`s costs the database a few reads a second however many requests carry them.
    async fn reload_after(&self, store: &dyn Store, seen: u64) {
        let mut last = self.reloading.lock().await;
        if self.current().generation != seen {
            return;
        }
        if let Some(ended) = *last {
            tokio::time::sleep_until((ended + RELOAD_INTERVAL).into()).await;
        }
        if let Err(err) = self.read_and_install(store).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "could not reload signing keys; keeping the current ones"
            );
        }
        *last = Some(Instant::now());
    }

    async fn read_and_install(&self, store: &dyn Store) -> anyhow::Result<()> {
        let generation = self.current().generation + 1;
        let ring = KeyRing::read(
            store,
            self.pem_text.as_deref(),
            self.kek.as_deref(),
            &self.own_issuer,
            &self.audiences,
            generation,
        )
        .await?;
        let ring = Arc::new(ring);
        let previous = match self.current.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, ring.clone()),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), ring.clone()),
        };
        if previous.verifying.keys().any(|kid| !ring.verifies(kid)) {
            self.retirements.fetch_add(1, Ordering::SeqCst);
            tracing::info!("a signing key was retired; its tokens are refused from now on");
        }
        Ok(())
    }

    /// Verifies a token. A `kid` or an `iss` this node has not seen yet (a key another node just
    /// added, a node that just started) prompts a reload before the token is refused.
    pub async fn verify(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<Arc<AccessTokenClaims<'static>>, JwtRejection> {
        // A token in the cache passed every check once; issuers are only ever added, so only
        // its expiry can have changed since.
        let epoch = self.retirements.load(Ordering::SeqCst);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if let Some((claims, verified_in)) = self.verified.get(token) {
            if verified_in == epoch {
                check_times(&claims, now)?;
                return Ok(claims);
            }
        }
        let ring = self.current();
        let claims = match ring.verify(token, now) {
            Err(JwtRejection::UnknownKid | JwtRejection::Issuer) => {
                self.reload_after(store, ring.generation).await;
                self.current().verify(token, now)
            }
            other => other,
        };
        let claims = Arc::new(claims?);
        self.verified
            .insert(token.to_owned(), (claims.clone(), epoch));
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://127.0.0.1:8080";

    fn claims_json(now: i64) -> Value {
        json!({
            "iss": ISSUER, "sub": "i", "aud": ISSUER, "iat": now, "exp": now + 600,
            "jti": "j", "client_id": "c", "identity_id": "i", "user_name": "u",
            "tenant_id": "t", "org": "o", "pod": "p", "internal": false, "strong_auth": false,
            "authorities": [], "scope": ["sp:scopes:all"], "rights": []
        })
    }

    /// A compact JWS of `header` and `claims`, signed by `key` whatever the header says.
    fn signed(key: &SigningKey, header: &str, claims: &Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = key.signer.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        token
    }

    #[test]
    fn the_verifier_reads_only_what_patd_signs() {
        let key = SigningKey::generate().unwrap();
        let kid = key.kid().to_owned();
        let ring = KeyRing::new(key, Vec::new(), &[ISSUER.to_owned()], &[]);
        let key = ring.active();
        let now = 1_800_000_000;
        let good = format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}"}}"#);
        let token = signed(key, &good, &claims_json(now));
        assert!(ring.verify(&token, now).is_ok());
        let header = |text: &str| signed(key, text, &claims_json(now));
        let cases = [
            (format!("{token}.x"), JwtRejection::Malformed),
            (token.replacen('.', "", 1), JwtRejection::Malformed),
            (
                header(&format!(r#"{{"typ":"at+jwt","alg":"none","kid":"{kid}"}}"#)),
                JwtRejection::Malformed,
            ),
            (
                header(&format!(
                    r#"{{"typ":"at+jwt","alg":"HS256","kid":"{kid}"}}"#
                )),
                JwtRejection::Algorithm,
            ),
            (
                header(&format!(
                    r#"{{"typ":"secevent+jwt","alg":"EdDSA","kid":"{kid}"}}"#
                )),
                JwtRejection::Type,
            ),
            (
                header(&format!(
                    r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}","crit":null}}"#
                )),
                JwtRejection::Critical,
            ),
            (
                header(&format!(
                    r#"{{"typ":"at+jwt","alg":"EdDSA","alg":"EdDSA","kid":"{kid}"}}"#
                )),
                JwtRejection::Malformed,
            ),
            (
                header(r#"{"typ":"at+jwt","alg":"EdDSA"}"#),
                JwtRejection::UnknownKid,
            ),
            (header(r#"["EdDSA"]"#), JwtRejection::Malformed),
            (
                signed(key, &good, &json!({"iss": ISSUER})),
                JwtRejection::Malformed,
            ),
        ];
        for (token, want) in cases {
            assert_eq!(ring.verify(&token, now).unwrap_err(), want, "{token}");
        }
        // A byte of the payload changed: the signature no longer holds.
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut claims = claims_json(now);
        claims["rights"] = json!(["idn:all-personal-access-tokens:manage"]);
        let forged = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_ne!(forged.split('.').nth(1), Some(payload));
        assert_eq!(
            ring.verify(&forged, now).unwrap_err(),
            JwtRejection::Signature
        );
        let mut elsewhere = claims_json(now);
        elsewhere["iss"] = json!("https://other.example");
        assert_eq!(
            ring.verify(&signed(key, &good, &elsewhere), now)
                .unwrap_err(),
            JwtRejection::Issuer
        );
        assert_eq!(
            ring.verify(&token, now + 600).unwrap_err(),
            JwtRejection::Expired
        );
    }

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
