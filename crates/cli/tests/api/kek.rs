//! Signing keys at rest: sealed with the key-encryption key, opened here with `ring`'s
//! AES-256-GCM (independent of the aws-lc-rs the server seals with), never in the database
//! files in the clear, and refused whole when the key-encryption key is wrong or missing.

use crate::cli::{exchange, patd, run_error, run_json, ServerProcess};
use crate::helpers::{fresh_database_url, on_postgres};
use crate::nodes::list_status;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use patd_server::keys::SigningKey;
use patd_store::StoredSigningKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The warning `serve` logs once without a key-encryption key.
const NO_KEK_WARNING: &str = "no key-encryption key";

/// A key-encryption key written to a file as an operator would make it
/// (`head -c 32 /dev/urandom | base64`, trailing newline included).
struct Kek {
    path: PathBuf,
    bytes: [u8; 32],
}

impl Kek {
    fn new(dir: &Path, name: &str) -> Kek {
        let bytes: [u8; 32] = rand::random();
        let path = dir.join(name);
        std::fs::write(&path, format!("{}\n", STANDARD.encode(bytes))).unwrap();
        Kek { path, bytes }
    }

    fn file(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The id the server names it by, computed here from its bytes.
    fn id(&self) -> String {
        Sha256::digest(self.bytes)[..4]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Opens a stored text with ring: `sealed:v1:<id>:<base64(nonce ‖ ciphertext ‖ tag)>`, with
    /// the kid as additional data. Returns the PEM.
    fn open(&self, kid: &str, stored: &str) -> String {
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
        let prefix = format!("sealed:v1:{}:", self.id());
        let body = stored
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{kid} is not sealed with {}: {stored}", self.id()));
        let mut bytes = STANDARD.decode(body).unwrap();
        let mut sealed = bytes.split_off(12);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.bytes).unwrap());
        let nonce = Nonce::try_assume_unique_for_key(&bytes).unwrap();
        let plain = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut sealed)
            .unwrap();
        String::from_utf8(plain.to_vec()).unwrap()
    }
}

/// Every signing key's stored text by kid, read with plain SQL.
async fn stored_texts(url: &str) -> BTreeMap<String, String> {
    let sql = "SELECT kid, private_pem FROM signing_keys";
    let rows: Vec<(String, String)> = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    };
    rows.into_iter().collect()
}

/// The DER of a PKCS#8 PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).unwrap()
}

/// The JWK `x` of an Ed25519 PKCS#8 key.
fn public_x(der: &[u8]) -> String {
    use ring::signature::KeyPair;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).unwrap();
    URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
}

/// What of a private key must never be found in the database files: each base64 line of its
/// PEM, its DER, and the 32-byte seed inside the DER.
fn traces_of(pem: &str) -> Vec<Vec<u8>> {
    let der = pem_der(pem);
    let at = der
        .windows(4)
        .position(|window| window == [0x04, 0x22, 0x04, 0x20])
        .unwrap()
        + 4;
    let mut traces: Vec<Vec<u8>> = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----") && line.len() >= 24)
        .map(|line| line.as_bytes().to_vec())
        .collect();
    traces.push(der[at..at + 32].to_vec());
    traces.push(der);
    traces
}

/// The database files (`patd.db`, `-wal`, `-shm`) that contain any of `traces`.
fn files_containing(dir: &Path, traces: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("patd.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if traces.iter().any(|trace| {
            bytes
                .windows(trace.len())
                .any(|window| window == trace.as_slice())
        }) {
            found.push(name);
        }
    }
    found
}

async fn jwks(base: &str) -> Value {
    reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

async fn access_token(base: &str, id: &str, secret: &str) -> String {
    let response = exchange(base, id, secret).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn bearer_status(base: &str, token: &str) -> u16 {
    list_status(&reqwest::Client::new(), base, token).await
}

fn kek_args(kek: &Kek) -> [&str; 2] {
    ["--key-encryption-key-file", kek.file()]
}

/// `patd serve` that must fail at start: returns its one line of stderr (with warnings on:
/// PostgreSQL's notices during migrations are logged at the info level).
fn serve_fails(database: &str, extra: &[&str]) -> String {
    let output = patd()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve {extra:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("patd: "), "{stderr}");
    stderr
}

/// Adds a key stored in the clear, as a node without a key-encryption key would have.
async fn insert_plain_key(database: &str) -> String {
    let store = patd_store::connect(database).await.unwrap();
    let key = SigningKey::generate().unwrap();
    store
        .insert_signing_key(
            &StoredSigningKey {
                kid: key.kid().to_owned(),
                private_key: key.to_pem(),
                created: time::OffsetDateTime::now_utc(),
                retired: None,
            },
            &crate::helpers::test_event(),
        )
        .await
        .unwrap();
    key.kid().to_owned()
}

#[tokio::test]
async fn a_new_database_started_with_a_kek_never_holds_its_signing_key_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let kek = Kek::new(dir.path(), "kek");
    let server = ServerProcess::start(&db, &kek_args(&kek), "info");
    let (id, secret) = server.bootstrap().unwrap();
    let token = access_token(&server.base, &id, &secret).await;
    assert_eq!(bearer_status(&server.base, &token).await, 200);

    let texts = stored_texts(&db).await;
    assert_eq!(texts.len(), 1);
    let (kid, text) = texts.iter().next().unwrap();
    assert!(!text.contains("PRIVATE KEY"), "sealed: {text}");
    let pem = kek.open(kid, text);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let served = jwks(&server.base).await;
    assert_eq!(served["keys"].as_array().unwrap().len(), 1);
    assert_eq!(served["keys"][0]["kid"], kid.as_str());
    assert_eq!(served["keys"][0]["x"], public_x(&pem_der(&pem)));

    let mut traces = traces_of(&pem);
    traces.push(kek.bytes.to_vec());
    traces.push(STANDARD.encode(kek.bytes).into_bytes());
    if !on_postgres() {
        assert_eq!(files_containing(dir.path(), &traces), Vec::<String>::new());
    }
    let (_, _, stderr) = server.stop();
    assert!(!stderr.contains(NO_KEK_WARNING), "{stderr}");
    assert!(!stderr.contains(&STANDARD.encode(kek.bytes)));
    if !on_postgres() {
        assert_eq!(files_containing(dir.path(), &traces), Vec::<String>::new());
    }
}

#[tokio::test]
async fn keys_stored_in_the_clear_are_sealed_at_the_first_start_with_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let plain = ServerProcess::start(&db, &[], "info");
    let (id, secret) = plain.bootstrap().unwrap();
    let token = access_token(&plain.base, &id, &secret).await;
    plain.stop();
    // Rotations made before there was a KEK: three keys in the clear, of different rows.
    run_json(&["key", "rotate", "--database", &db]);
    run_json(&["key", "rotate", "--database", &db]);
    let before = stored_texts(&db).await;
    assert_eq!(before.len(), 3);
    assert!(before
        .values()
        .all(|pem| pem.starts_with("-----BEGIN PRIVATE KEY-----")));
    let traces: Vec<Vec<u8>> = before.values().flat_map(|pem| traces_of(pem)).collect();
    if !on_postgres() {
        assert!(
            !files_containing(dir.path(), &traces).is_empty(),
            "the plain keys are in the files before"
        );
    }

    let kek = Kek::new(dir.path(), "kek");
    let sealed = ServerProcess::start(&db, &kek_args(&kek), "info");
    let after = stored_texts(&db).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same kids"
    );
    for (kid, text) in &after {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert_eq!(
            pem_der(&kek.open(kid, text)),
            pem_der(&before[kid]),
            "{kid}"
        );
    }
    if !on_postgres() {
        assert_eq!(files_containing(dir.path(), &traces), Vec::<String>::new());
    }
    assert_eq!(
        jwks_kids(&jwks(&sealed.base).await),
        before.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        bearer_status(&sealed.base, &token).await,
        200,
        "a token minted before still verifies"
    );
    let fresh = access_token(&sealed.base, &id, &secret).await;
    assert_eq!(bearer_status(&sealed.base, &fresh).await, 200);
    sealed.stop();
    if !on_postgres() {
        assert_eq!(files_containing(dir.path(), &traces), Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_wrong_or_missing_kek_is_refused_at_start_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let right = Kek::new(dir.path(), "right");
    let wrong = Kek::new(dir.path(), "wrong");
    ServerProcess::start(&db, &kek_args(&right), "info").stop();
    // A key stored in the clear beside the sealed one: a start with the wrong KEK must not seal
    // it before finding that the sealed one does not open.
    let plain_kid = insert_plain_key(&db).await;
    let before = stored_texts(&db).await;
    assert!(before[&plain_kid].contains("PRIVATE KEY"));

    let error = serve_fails(&db, &kek_args(&wrong));
    assert!(
        error.contains(&format!("sealed with key-encryption key {}", right.id()))
            && error.contains(&format!("the key-encryption key given is {}", wrong.id())),
        "{error}"
    );
    assert_eq!(stored_texts(&db).await, before, "nothing was written");

    let error = serve_fails(&db, &[]);
    assert!(
        error.contains(&right.id()) && error.contains("no key-encryption key was given"),
        "{error}"
    );
    assert_eq!(stored_texts(&db).await, before);

    let short = dir.path().join("short");
    std::fs::write(&short, STANDARD.encode([1u8; 16])).unwrap();
    let error = serve_fails(&db, &["--key-encryption-key-file", short.to_str().unwrap()]);
    assert!(
        error.contains("16 bytes") && error.contains("32"),
        "{error}"
    );
    assert_eq!(stored_texts(&db).await, before);

    // The right one opens everything and seals the plain key.
    let server = ServerProcess::start(&db, &kek_args(&right), "info");
    let after = stored_texts(&db).await;
    assert_eq!(
        pem_der(&right.open(&plain_kid, &after[&plain_kid])),
        pem_der(&before[&plain_kid])
    );
    assert_eq!(
        jwks_kids(&jwks(&server.base).await),
        before.keys().cloned().collect::<Vec<_>>()
    );
    server.stop();
}

#[tokio::test]
async fn rotate_kek_reseals_every_key_and_nothing_changes_with_a_wrong_old_kek() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let old = Kek::new(dir.path(), "old");
    let new = Kek::new(dir.path(), "new");
    let stranger = Kek::new(dir.path(), "stranger");
    let first = ServerProcess::start(&db, &kek_args(&old), "info");
    let (id, secret) = first.bootstrap().unwrap();
    let token = access_token(&first.base, &id, &secret).await;
    first.stop();
    let mut rotate = vec!["key", "rotate", "--database", &db];
    rotate.extend(kek_args(&old));
    run_json(&rotate);
    insert_plain_key(&db).await;
    let before = stored_texts(&db).await;
    assert_eq!(before.len(), 3);

    let error = run_error(&[
        "key",
        "rotate-kek",
        "--old",
        stranger.file(),
        "--new",
        new.file(),
        "--database",
        &db,
    ]);
    assert!(
        error.contains(&old.id()) && error.contains(&stranger.id()),
        "{error}"
    );
    assert_eq!(stored_texts(&db).await, before, "nothing was written");

    let done = run_json(&[
        "key",
        "rotate-kek",
        "--old",
        old.file(),
        "--new",
        new.file(),
        "--database",
        &db,
    ]);
    assert_eq!(done, json!({"sealed": 3, "sealedWith": new.id()}));
    let after = stored_texts(&db).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (kid, text) in &after {
        let was = &before[kid];
        let was_pem = if was.contains("PRIVATE KEY") {
            was.clone()
        } else {
            old.open(kid, was)
        };
        assert_eq!(pem_der(&new.open(kid, text)), pem_der(&was_pem), "{kid}");
    }

    let error = serve_fails(&db, &kek_args(&old));
    assert!(
        error.contains(&format!("sealed with key-encryption key {}", new.id()))
            && error.contains(&format!("given is {}", old.id())),
        "{error}"
    );
    let server = ServerProcess::start(&db, &kek_args(&new), "info");
    assert_eq!(
        jwks_kids(&jwks(&server.base).await),
        after.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(bearer_status(&server.base, &token).await, 200);
    let fresh = access_token(&server.base, &id, &secret).await;
    assert_eq!(bearer_status(&server.base, &fresh).await, 200);
    server.stop();
}

#[tokio::test]
async fn key_rotate_seals_the_new_key_and_a_sealed_database_refuses_a_plain_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let kek = Kek::new(dir.path(), "kek");
    let stranger = Kek::new(dir.path(), "stranger");
    ServerProcess::start(&db, &kek_args(&kek), "info").stop();
    let before = stored_texts(&db).await;

    let error = run_error(&["key", "rotate", "--database", &db]);
    assert!(
        error.contains("sealed") && error.contains(&kek.id()),
        "{error}"
    );
    let mut with_stranger = vec!["key", "rotate", "--database", &db];
    with_stranger.extend(kek_args(&stranger));
    let error = run_error(&with_stranger);
    assert!(
        error.contains(&kek.id()) && error.contains(&stranger.id()),
        "{error}"
    );
    assert_eq!(stored_texts(&db).await, before, "nothing was added");

    let mut with_kek = vec!["key", "rotate", "--database", &db];
    with_kek.extend(kek_args(&kek));
    let added = run_json(&with_kek);
    assert_eq!(added["sealedWith"], kek.id());
    // The key itself, from the environment, works as well.
    let output = patd()
        .args(["key", "rotate", "--database", &db])
        .env("PATD_KEY_ENCRYPTION_KEY", STANDARD.encode(kek.bytes))
        .output()
        .unwrap();
    assert!(output.status.success());
    let newest: Value = serde_json::from_slice(&output.stdout).unwrap();
    let texts = stored_texts(&db).await;
    assert_eq!(texts.len(), 3);
    for kid in [&added["kid"], &newest["kid"]] {
        let kid = kid.as_str().unwrap();
        assert!(kek
            .open(kid, &texts[kid])
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    // --help names the flags and hides the key given in the environment.
    let help = patd()
        .args(["serve", "--help"])
        .env("PATD_KEY_ENCRYPTION_KEY", STANDARD.encode(kek.bytes))
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--key-encryption-key-file"), "{help}");
    assert!(!help.contains(&STANDARD.encode(kek.bytes)), "{help}");

    // The newest key signs.
    let server = ServerProcess::start(&db, &kek_args(&kek), "info");
    let jwks = jwks(&server.base).await;
    assert_eq!(jwks_kids(&jwks).len(), 3);
    assert_eq!(jwks["keys"][0]["kid"], newest["kid"]);
    server.stop();
}

#[tokio::test]
async fn serve_warns_once_when_started_without_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let server = ServerProcess::start(&db, &[], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let token = access_token(&server.base, &id, &secret).await;
    assert_eq!(bearer_status(&server.base, &token).await, 200);
    let (_, _, stderr) = server.stop();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(NO_KEK_WARNING))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);

    let kek = Kek::new(dir.path(), "kek");
    let (_, _, stderr) = ServerProcess::start(&db, &kek_args(&kek), "info").stop();
    assert!(!stderr.contains(NO_KEK_WARNING), "{stderr}");
}

#[tokio::test]
async fn a_running_node_keeps_its_keys_when_a_reload_meets_a_key_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let kek = Kek::new(dir.path(), "kek");
    let server = ServerProcess::start(&db, &kek_args(&kek), "info");
    let (id, secret) = server.bootstrap().unwrap();
    let token = access_token(&server.base, &id, &secret).await;
    let jwks_before = jwks(&server.base).await;

    // Another KEK seals a new key (as a node misconfigured with it would).
    let stranger = Kek::new(dir.path(), "stranger");
    let stranger_kek = patd_server::kek::KeyEncryptionKey::from_bytes(&stranger.bytes).unwrap();
    let key = SigningKey::generate().unwrap();
    let store = patd_store::connect(&db).await.unwrap();
    store
        .insert_signing_key(
            &StoredSigningKey {
                kid: key.kid().to_owned(),
                private_key: stranger_kek.seal(key.kid(), &key.to_pem()).unwrap(),
                created: time::OffsetDateTime::now_utc(),
                retired: None,
            },
            &crate::helpers::test_event(),
        )
        .await
        .unwrap();
    // A token under that key's kid makes the node reload its keys.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid().to_owned());
    let claims =
        json!({"iss": server.base, "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 60});
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(key.to_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(bearer_status(&server.base, &forged).await, 401);

    assert_eq!(jwks(&server.base).await, jwks_before, "the ring is kept");
    assert_eq!(bearer_status(&server.base, &token).await, 200);
    let fresh = access_token(&server.base, &id, &secret).await;
    assert_eq!(bearer_status(&server.base, &fresh).await, 200);
    let (_, _, stderr) = server.stop();
    let warning = stderr
        .lines()
        .find(|line| line.contains("could not reload signing keys"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(
        warning.contains("WARN") && warning.contains(&kek.id()) && warning.contains(&stranger.id()),
        "{warning}"
    );
}

#[tokio::test]
async fn replacing_stored_keys_is_all_or_nothing_and_only_over_the_text_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let first = insert_plain_key(&db).await;
    let second = insert_plain_key(&db).await;
    let before = stored_texts(&db).await;
    let store = patd_store::connect(&db).await.unwrap();
    let replace = |kid: &str, old: &str, new: &str| patd_store::SigningKeyReplacement {
        kid: kid.to_owned(),
        old: old.to_owned(),
        new: new.to_owned(),
    };

    // The second key's text is not what the caller read: the first is not written either.
    let stale = [
        replace(&first, &before[&first], "sealed:v1:00000000:AAAA"),
        replace(
            &second,
            "what another process replaced",
            "sealed:v1:00000000:BBBB",
        ),
    ];
    assert!(!store.replace_signing_keys(&stale).await.unwrap());
    assert_eq!(stored_texts(&db).await, before);

    let fresh = [
        replace(&first, &before[&first], "sealed:v1:00000000:AAAA"),
        replace(&second, &before[&second], "sealed:v1:00000000:BBBB"),
    ];
    assert!(store.replace_signing_keys(&fresh).await.unwrap());
    let after = stored_texts(&db).await;
    assert_eq!(after[&first], "sealed:v1:00000000:AAAA");
    assert_eq!(after[&second], "sealed:v1:00000000:BBBB");
}
