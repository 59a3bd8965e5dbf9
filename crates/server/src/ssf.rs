//! The Shared Signals transmitter's signing and pushing (EXTENSIONS E11): the SETs' key (an RSA
//! key of its own, made once per database and sealed like the signing keys, or patd's Ed25519
//! keys with `--ssf-signing-alg EdDSA`), its JWK set, each SET addressed (`iss`, `aud`, `jti`)
//! and signed as it leaves, and the RFC 8935 push of one outbox row.

use crate::kek::{self, KeyEncryptionKey};
use crate::state::AppState;
use anyhow::{anyhow, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use patd_core::notify::WebhookUrl;
use patd_store::{Delivery, Store};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The setting that holds the SSF RSA key: its PKCS#1 PEM, sealed with the KEK when there is one.
const RSA_KEY_SETTING: &str = "ssf_rsa_key";
/// The additional data the RSA key is sealed with: its stored text opens only as this key.
const RSA_KEY_NAME: &str = "ssf-rsa";
/// The RSA key's size: what RS256 deployments use, and what SailPoint's own transmitter does.
const RSA_BITS: usize = 2048;
/// The SET's media type (RFC 8417 §2.3), also its `typ`.
pub const SET_TYP: &str = "secevent+jwt";

/// Which key signs the SETs (`--ssf-signing-alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// RS256 with the transmitter's own RSA key: SailPoint's SDK reads only RSA JWKs.
    #[default]
    Rs256,
    /// EdDSA with patd's access-token keys.
    EdDsa,
}

impl SigningAlg {
    pub fn parse(raw: &str) -> Result<SigningAlg, String> {
        match raw {
            "RS256" => Ok(SigningAlg::Rs256),
            "EdDSA" => Ok(SigningAlg::EdDsa),
            _ => Err("expected RS256 or EdDSA".to_owned()),
        }
    }
}

/// The RSA key, parsed once.
struct RsaKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl RsaKey {
    fn from_pem(pem_text: &str) -> anyhow::Result<RsaKey> {
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(pem_text)
            .map_err(|err| anyhow!("the SSF RSA key is not a PKCS#1 PEM: {err}"))?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        // RFC 7638: the members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let der = private
            .to_pkcs1_der()
            .map_err(|err| anyhow!("the SSF RSA key could not be encoded: {err}"))?;
        Ok(RsaKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig"}),
            kid,
        })
    }
}

/// The SETs' key of this node: read (or, on a new database, made) on first use, so that a
/// node that never signals pays nothing.
pub struct SsfKeys {
    alg: SigningAlg,
    rsa: tokio::sync::OnceCell<Arc<RsaKey>>,
}

impl SsfKeys {
    pub fn new(alg: SigningAlg) -> SsfKeys {
        SsfKeys {
            alg,
            rsa: tokio::sync::OnceCell::new(),
        }
    }

    /// `/ssf/v1/jwks`: the key SETs are signed with.
    pub async fn jwks(&self, state: &AppState) -> anyhow::Result<Value> {
        match self.alg {
            SigningAlg::Rs256 => {
                let key = self.rsa_key(state).await?;
                Ok(json!({"keys": [key.jwk]}))
            }
            SigningAlg::EdDsa => Ok(state.keys.current().jwks().clone()),
        }
    }

    /// Signs one SET: header `typ: secevent+jwt`, the key's `kid`.
    pub async fn sign(&self, state: &AppState, claims: &Value) -> anyhow::Result<String> {
        let (mut header, key) = match self.alg {
            SigningAlg::Rs256 => {
                let key = self.rsa_key(state).await?;
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(key.kid.clone());
                (header, key.encoding.clone())
            }
            SigningAlg::EdDsa => {
                let ring = state.keys.current();
                let active = ring.active();
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(active.kid().to_owned());
                let key = EncodingKey::from_ed_pem(active.to_pem().as_bytes())
                    .context("the signing key could not sign a SET")?;
                (header, key)
            }
        };
        header.typ = Some(SET_TYP.to_owned());
        jsonwebtoken::encode(&header, claims, &key).context("signing a SET")
    }

    async fn rsa_key(&self, state: &AppState) -> anyhow::Result<Arc<RsaKey>> {
        let kek = state.config.key_encryption_key.clone();
        self.rsa
            .get_or_try_init(|| load_rsa(state.store.as_ref(), kek))
            .await
            .cloned()
    }
}

/// Reads the database's SSF RSA key, making it first if there is none: of nodes doing so at
/// once, the first stored wins and every node reads that one back.
async fn load_rsa(
    store: &dyn Store,
    kek: Option<Arc<KeyEncryptionKey>>,
) -> anyhow::Result<Arc<RsaKey>> {
    let stored = match store.setting(RSA_KEY_SETTING).await? {
        Some(stored) => stored,
        None => {
            let pem_text = tokio::task::spawn_blocking(|| {
                rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                    .map_err(|err| anyhow!("could not generate the SSF RSA key: {err}"))?
                    .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                    .map(|pem_text| pem_text.to_string())
                    .map_err(|err| anyhow!("could not encode the SSF RSA key: {err}"))
            })
            .await
            .context("generating the SSF RSA key")??;
            let fresh = match &kek {
                Some(kek) => kek.seal(RSA_KEY_NAME, &pem_text)?,
                None => pem_text,
            };
            store.setting_or_insert(RSA_KEY_SETTING, &fresh).await?
        }
    };
    let pem_text = kek::reveal(kek.as_deref(), RSA_KEY_NAME, &stored)?;
    let key = Arc::new(RsaKey::from_pem(&pem_text)?);
    if let (Some(kek), false) = (&kek, kek::is_sealed(&stored)) {
        // A key-encryption key given for the first time seals the key stored in the clear, as
        // it does the signing keys. Nodes racing here write texts that all open with it.
        store
            .set_setting(RSA_KEY_SETTING, &kek.seal(RSA_KEY_NAME, &pem_text)?)
            .await?;
    }
    Ok(key)
}

/// The SSF RSA key's stored text sealed again from `old` to `new`, for `patd key rotate-kek`:
/// computed before anything is written, so that a key that does not open with `old` stops the
/// rotation first. `None`: no key yet.
pub async fn resealed_rsa_key(
    store: &dyn Store,
    old: &KeyEncryptionKey,
    new: &KeyEncryptionKey,
) -> anyhow::Result<Option<String>> {
    let Some(stored) = store.setting(RSA_KEY_SETTING).await? else {
        return Ok(None);
    };
    let pem_text =
        kek::reveal(Some(old), RSA_KEY_NAME, &stored).context("the Shared Signals RSA key")?;
    Ok(Some(new.seal(RSA_KEY_NAME, &pem_text)?))
}

/// Stores the SSF RSA key's text `resealed_rsa_key` made.
pub async fn store_rsa_key(store: &dyn Store, stored: &str) -> anyhow::Result<()> {
    Ok(store.set_setting(RSA_KEY_SETTING, stored).await?)
}

/// The signed SET of an outbox row for `audience`: its claims with `iss` (this node's public
/// URL), `aud` and `jti` (the row's id, the same on every retry).
pub async fn signed_set(
    state: &AppState,
    delivery: &Delivery,
    audience: &str,
) -> anyhow::Result<String> {
    let mut claims: Value =
        serde_json::from_str(&delivery.payload).context("an unreadable SET payload")?;
    let members = claims
        .as_object_mut()
        .ok_or_else(|| anyhow!("a SET payload that is not an object"))?;
    members.insert("iss".to_owned(), Value::String(issuer(state)));
    members.insert("aud".to_owned(), Value::String(audience.to_owned()));
    members.insert("jti".to_owned(), Value::String(delivery.id.clone()));
    state.ssf.sign(state, &claims).await
}

/// The transmitter's issuer: the public URL.
pub fn issuer(state: &AppState) -> String {
    state.config.public_url.trim_end_matches('/').to_owned()
}

/// Pushes one SET (RFC 8935 §2): POSTed as `application/secevent+jwt` with the stream's
/// `Authorization`; 202 (or 200) is success. The status, or what went wrong.
pub(crate) async fn push(
    state: &AppState,
    http: &reqwest::Client,
    delivery: &Delivery,
) -> Result<u16, (Option<u16>, String)> {
    let failed = |error: &str| (None, error.to_owned());
    let Some(stream_id) = &delivery.stream_id else {
        return Err(failed("not a SET"));
    };
    let stream = match state.store.stream(stream_id).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return Err(failed("the stream was deleted")),
        Err(err) => return Err(failed(&format!("the database: {err}"))),
    };
    let Some(url) = &stream.delivery.endpoint_url else {
        return Err(failed("the stream has no push endpoint"));
    };
    if WebhookUrl::parse(url.as_str(), state.config.webhook_allow_private).is_err() {
        return Err(failed("the stream's endpoint is not allowed"));
    }
    let set = signed_set(state, delivery, &stream.audience)
        .await
        .map_err(|err| failed(&format!("{err:#}")))?;
    let mut request = http
        .post(url.as_str())
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json")
        .body(set);
    if let Some(authorization) = &stream.delivery.authorization_header {
        request = request.header("authorization", authorization);
    }
    let response = request
        .send()
        .await
        .map_err(|err| (None, crate::outbox::describe(&err)))?;
    let status = response.status().as_u16();
    if status == 202 || status == 200 {
        Ok(status)
    } else {
        Err((Some(status), format!("the receiver answered {status}")))
    }
}
