//! The `patd` binary itself, run as a process.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn patd() -> Command {
    patd_under(&[])
}

/// `patd` run by `prefix`, a program and its arguments that exec it (`prlimit --nofile=… --`).
pub fn patd_under(prefix: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_patd");
    let mut command = match prefix.split_first() {
        Some((program, arguments)) => {
            let mut command = Command::new(program);
            command.args(arguments).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .env_remove("PATD_DATABASE_URL")
        .env_remove("PATD_LISTEN")
        .env_remove("PATD_KEY_ENCRYPTION_KEY")
        .env_remove("PATD_KEY_ENCRYPTION_KEY_FILE")
        .env("NO_COLOR", "1");
    command
}

/// A `patd serve` process with its output collected.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn start(database: &str, extra: &[&str], log_level: &str) -> ServerProcess {
        let mut server = ServerProcess::spawn(database, extra, log_level);
        server.wait_listening();
        server
    }

    /// Starts the process without waiting for it to listen (`base` is empty until
    /// `wait_listening`), so that several can start at the same moment.
    pub fn spawn(database: &str, extra: &[&str], log_level: &str) -> ServerProcess {
        ServerProcess::spawn_under(&[], database, extra, log_level)
    }

    /// As `start`, run by `prefix` (see `patd_under`).
    pub fn start_under(
        prefix: &[&str],
        database: &str,
        extra: &[&str],
        log_level: &str,
    ) -> ServerProcess {
        let mut server = ServerProcess::spawn_under(prefix, database, extra, log_level);
        server.wait_listening();
        server
    }

    fn spawn_under(
        prefix: &[&str],
        database: &str,
        extra: &[&str],
        log_level: &str,
    ) -> ServerProcess {
        let mut child = patd_under(prefix)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                stdout.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut sink = sink.lock().unwrap();
                    sink.push_str(&line);
                    sink.push('\n');
                }
            });
        }
        ServerProcess {
            child,
            base: String::new(),
            stdout,
            stderr,
        }
    }

    /// Waits for the "patd listening on" line and reads the base URL from it.
    pub fn wait_listening(&mut self) {
        let started = Instant::now();
        self.base = loop {
            let text = self.stderr.lock().unwrap().clone();
            if let Some(at) = text.find("patd listening on ") {
                let rest = &text[at + "patd listening on ".len()..];
                // Text logs end the URL with a space, JSON logs with a quote.
                let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap();
                break rest[..end].to_owned();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("the server did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
    }

    /// The `bootstrap client_id=… client_secret=…` line, if the server printed one. It is
    /// printed before the server listens, but the thread reading stdout may lag behind the one
    /// reading stderr, so give it a moment.
    pub fn bootstrap(&self) -> Option<(String, String)> {
        let started = Instant::now();
        let stdout = loop {
            let stdout = self.stdout.lock().unwrap().clone();
            if stdout.contains("bootstrap ") || started.elapsed() > Duration::from_secs(2) {
                break stdout;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let line = stdout.lines().find(|line| line.starts_with("bootstrap "))?;
        let id = line
            .split("client_id=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .to_owned();
        let secret = line.split("client_secret=").nth(1)?.trim().to_owned();
        Some((id, secret))
    }

    /// SIGTERM, then waits; returns whether it exited successfully.
    pub fn stop(mut self) -> (bool, String, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        (status.success(), stdout, stderr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The test's database: a SQLite file in `dir`, or a fresh schema on the PostgreSQL run.
async fn database_url(dir: &Path) -> String {
    crate::helpers::fresh_database_url(dir).await
}

pub fn run_json(args: &[&str]) -> Value {
    let output = patd().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

pub fn run_error(args: &[&str]) -> String {
    let output = patd().args(args).output().unwrap();
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one clear line: {stderr}"
    );
    assert!(output.stdout.is_empty());
    stderr
}

pub async fn exchange(base: &str, id: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
}

/// The access token an exchange at `base` answers, panicking unless it succeeds.
pub async fn access_token(base: &str, id: &str, secret: &str) -> String {
    let body: Value = exchange(base, id, secret).await.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {body}"))
        .to_owned()
}

#[tokio::test]
async fn identity_and_token_commands_print_json_and_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let user = run_json(&["identity", "create", "--name", "alice", "--database", &db]);
    assert_eq!(user["name"], "alice");
    assert_eq!(user["type"], "IDENTITY");
    assert_eq!(user["levels"], serde_json::json!(["USER"]));
    assert_eq!(
        user["rights"],
        serde_json::json!([
            "idn:my-personal-access-tokens:read",
            "idn:my-personal-access-tokens:manage"
        ])
    );
    let auditor = run_json(&[
        "identity",
        "create",
        "--name",
        "audit",
        "--right",
        "sp:all-personal-access-tokens:read",
        "--database",
        &db,
    ]);
    assert_eq!(auditor["rights"].as_array().unwrap().len(), 3);
    // An address for owners' mail: checked before anything is stored.
    let error = run_error(&[
        "identity",
        "create",
        "--name",
        "mailless",
        "--email",
        "not an address",
        "--database",
        &db,
    ]);
    assert!(error.contains("email must be an address"), "{error}");
    let mailed = run_json(&[
        "identity",
        "create",
        "--name",
        "mailed",
        "--email",
        "mailed@example.com",
        "--database",
        &db,
    ]);
    assert_eq!(mailed["name"], "mailed");
    // The refused create stored nothing: the name is still free.
    let mailless = run_json(&[
        "identity",
        "create",
        "--name",
        "mailless",
        "--database",
        &db,
    ]);
    assert_eq!(mailless["name"], "mailless");
    let admin = run_json(&[
        "identity",
        "create",
        "--name",
        "root",
        "--level",
        "ORG_ADMIN",
        "--database",
        &db,
    ]);
    assert_eq!(admin["rights"].as_array().unwrap().len(), 10);

    assert!(
        run_error(&["identity", "create", "--name", "alice", "--database", &db])
            .contains("already taken")
    );
    assert!(run_error(&[
        "identity",
        "create",
        "--name",
        "x",
        "--level",
        "GOD",
        "--database",
        &db
    ])
    .contains("unknown user level"));
    assert!(run_error(&[
        "identity",
        "create",
        "--name",
        "y",
        "--right",
        "idn:everything",
        "--database",
        &db
    ])
    .contains("unknown right"));

    let token = run_json(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "ci",
        "--scope",
        "sp:scopes:default",
        "--validity",
        "600",
        "--database",
        &db,
    ]);
    assert_eq!(token["owner"]["id"], user["id"]);
    assert_eq!(token["scope"], serde_json::json!(["sp:scopes:default"]));
    assert_eq!(token["accessTokenValiditySeconds"], 600);
    assert!(token["secret"].as_str().unwrap().starts_with("patd_"));
    assert!(token["expirationDate"].is_string());
    let forever = run_json(&[
        "token",
        "create",
        "--owner",
        user["id"].as_str().unwrap(),
        "--name",
        "forever",
        "--expires",
        "never",
        "--managed",
        "--database",
        &db,
    ]);
    assert_eq!(forever["expirationDate"], Value::Null);
    let dated = run_json(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "dated",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--database",
        &db,
    ]);
    assert_eq!(dated["expirationDate"], "2099-01-01T00:00:00.000Z");
    let powershell = run_json(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "powershell",
        "--expires",
        "2099-01-01T10:00:00.1234567",
        "--database",
        &db,
    ]);
    assert_eq!(powershell["expirationDate"], "2099-01-01T10:00:00.123Z");

    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "nobody",
        "--name",
        "x",
        "--database",
        &db
    ])
    .contains("no identity 'nobody'"));
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "ci",
        "--database",
        &db
    ])
    .contains("already used"));
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "v",
        "--validity",
        "5",
        "--database",
        &db
    ])
    .contains("between 15 and 43200"));
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "e",
        "--expires",
        "tomorrow",
        "--database",
        &db
    ])
    .contains("RFC 3339"));
    // --expires reads date-times by the server's one rule: a tenth fractional digit is refused.
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "e",
        "--expires",
        "2099-01-01T00:00:00.1234567890Z",
        "--database",
        &db
    ])
    .contains("at most 9 fractional digits"));
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "alice",
        "--name",
        "e",
        "--expires",
        "2001-01-01T00:00:00Z",
        "--database",
        &db
    ])
    .contains("in the future"));

    // The tokens work against a server on the same database.
    let server = ServerProcess::start(&db, &[], "info");
    assert!(
        server.bootstrap().is_none(),
        "a database with identities is not bootstrapped"
    );
    let response = exchange(
        &server.base,
        token["id"].as_str().unwrap(),
        token["secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 600);
    let (ok, _, _) = server.stop();
    assert!(ok, "SIGTERM stops the server cleanly");
}

#[tokio::test]
async fn the_signing_key_is_kept_across_restarts_and_a_pem_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let first = ServerProcess::start(&db, &[], "info");
    let (id, secret) = first
        .bootstrap()
        .expect("an empty database prints the bootstrap line");
    let body: Value = exchange(&first.base, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let first_jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", first.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    first.stop();

    // Same database, new process, same public URL: the old token still verifies.
    let public_url = "http://patd.test";
    let second = ServerProcess::start(&db, &["--public-url", public_url], "info");
    assert!(
        second.bootstrap().is_none(),
        "the bootstrap line is printed once"
    );
    let second_jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", second.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first_jwks, second_jwks);
    let body: Value = exchange(&second.base, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let claims = body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], public_url);
    let info: Value = reqwest::get(format!("{}/oauth/info", second.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["tokenEndpoint"], "http://patd.test/oauth/token");
    // The first token's issuer was the first node's address. That node served this database, so
    // its issuer is registered there and its tokens stay good after a restart under a new URL.
    let response = reqwest::Client::new()
        .get(format!("{}/v3/personal-access-tokens", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    second.stop();

    // A PEM key file replaces the stored key for signing.
    let pair =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pem_path = dir.path().join("key.pem");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pair.as_ref())
    );
    std::fs::write(&pem_path, pem).unwrap();
    let third = ServerProcess::start(&db, &["--signing-key", pem_path.to_str().unwrap()], "info");
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", third.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body: Value = exchange(&third.base, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let header = body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"], "the PEM key signs");
    assert_ne!(header["kid"], first_jwks["keys"][0]["kid"]);
    let response = reqwest::Client::new()
        .get(format!("{}/v3/personal-access-tokens", third.base))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    third.stop();

    // A bad key file is one clear error.
    std::fs::write(&pem_path, "not a key").unwrap();
    let output = patd()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--signing-key",
            pem_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("signing key"));
}

#[test]
fn bad_flags_are_refused() {
    let output = patd()
        .args(["serve", "--rate-limit", "fast"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let output = patd()
        .args([
            "serve",
            "--database",
            "mysql://x",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL"));
}

/// `patd pat …` with the SDK-style environment.
pub fn pat_command(base: &str, id: &str, secret: &str, args: &[&str]) -> std::process::Output {
    patd()
        .arg("pat")
        .args(args)
        .env("SAIL_BASE_URL", base)
        .env("SAIL_CLIENT_ID", id)
        .env("SAIL_CLIENT_SECRET", secret)
        .output()
        .unwrap()
}

pub fn one_line_error(output: &std::process::Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[tokio::test]
async fn pat_commands_work_against_a_server_and_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let server = ServerProcess::start(&db, &["--rate-limit", "12/60"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let base = server.base.clone();

    let output = pat_command(
        &base,
        &id,
        &secret,
        &[
            "create",
            "--name",
            "from cli",
            "--scope",
            "sp:scopes:default",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("patd_"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be shown again"));
    let new_id = created["id"].as_str().unwrap().to_owned();

    let output = pat_command(
        &base,
        &id,
        &secret,
        &["create", "--name", "table", "--expires", "never"],
    );
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("secret") && text.contains("expires   never"),
        "{text}"
    );

    let output = pat_command(&base, &id, &secret, &["list"]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("from cli") && table.contains("bootstrap"));
    let output = pat_command(
        &base,
        &id,
        &secret,
        &["list", "--json", "--filters", "name eq \"from cli\""],
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let output = pat_command(
        &base,
        &id,
        &secret,
        &[
            "patch",
            &new_id,
            "--name",
            "renamed",
            "--expires",
            "2099-01-01T00:00:00Z",
            "--json",
        ],
    );
    let patched: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["expirationDate"], "2099-01-01T00:00:00.000Z");

    let output = pat_command(
        &base,
        &id,
        &secret,
        &[
            "bulk-update",
            "--id",
            &new_id,
            "--expires",
            "2098-01-01T00:00:00Z",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = pat_command(&base, &id, &secret, &["delete", &new_id]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("deleted {new_id}")
    );

    // The failures, each one line.
    assert!(
        one_line_error(&pat_command(&base, &id, &secret, &["delete", &new_id]))
            .contains("not found (404)")
    );
    assert!(
        one_line_error(&pat_command("http://127.0.0.1:9", &id, &secret, &["list"]))
            .contains("cannot reach the server")
    );
    assert!(
        one_line_error(&pat_command(&base, &id, "patd_wrong", &["list"]))
            .contains("invalid_client")
    );
    let reader = run_json(&[
        "token",
        "create",
        "--owner",
        "admin",
        "--name",
        "reader",
        "--scope",
        "sp:my-personal-access-tokens:read",
        "--database",
        &db,
    ]);
    let (reader_id, reader_secret) = (
        reader["id"].as_str().unwrap(),
        reader["secret"].as_str().unwrap(),
    );
    assert!(one_line_error(&pat_command(
        &base,
        reader_id,
        reader_secret,
        &["create", "--name", "nope"]
    ))
    .contains("forbidden (403)"));
    assert!(one_line_error(&pat_command(
        &base,
        &id,
        &secret,
        &["create", "--name", " "]
    ))
    .contains("name must not be blank"));
    let no_env = patd()
        .args(["pat", "list"])
        .env_remove("SAIL_BASE_URL")
        .output()
        .unwrap();
    assert!(one_line_error(&no_env).contains("SAIL_BASE_URL"));
    // Exhaust the 12-per-minute limit; without retries the 429 is reported at once.
    let mut last = None;
    for _ in 0..20 {
        let output = pat_command(
            &base,
            &id,
            &secret,
            &["list", "--json", "--max-retries", "0"],
        );
        if !output.status.success() {
            last = Some(output);
            break;
        }
    }
    let output = last.expect("the rate limit was reached");
    assert!(one_line_error(&output).contains("rate limited (429)"));
    server.stop();
}

#[tokio::test]
async fn pat_rotate_prints_the_new_secret_once_and_the_old_one_ends_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let server = ServerProcess::start(&db, &[], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let base = server.base.clone();
    let output = pat_command(&base, &id, &secret, &["create", "--name", "job", "--json"]);
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let job = created["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap();
    let output = pat_command(
        &base,
        &id,
        &secret,
        &["rotate", job, "--grace", "10m", "--json"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rotated["id"], job);
    let new = rotated["secret"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be shown again"));
    for secret in [old, new] {
        assert_eq!(exchange(&base, job, secret).await.status(), 200);
    }
    // Without a grace the old secret ends at once; as a table, the secret is shown.
    let output = pat_command(&base, &id, &secret, &["rotate", job]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("secret"), "{table}");
    assert_eq!(exchange(&base, job, new).await.status(), 401);
    // Bad flags and refusals are one line.
    let output = pat_command(&base, &id, &secret, &["rotate", job, "--grace", "25h"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at most 24h"));
    let output = pat_command(&base, &id, &secret, &["rotate", "self"]);
    assert!(one_line_error(&output).contains("patd:self-rotate"));
}
