//! Leaked-secret reports (EXTENSIONS E9) and `POST /oauth/revoke` (RFC 7009): a signed report
//! revokes exactly the live PAT secrets it names, and nothing else; a bad signature revokes
//! nothing; whoever holds a secret can revoke its PAT. The reports are signed with keys the
//! `openssl` command line makes and signs with, so patd's verification is checked against an
//! implementation of ECDSA that is not its own.

use crate::cli::{patd, ServerProcess};
use crate::helpers::*;
use patd_server::ratelimit::Limit;
use patd_server::scanning_keys::ScanningKeys;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tempfile::TempDir;

const REPORTS: &str = "/patd/v1/secret-scanning/reports";
const EVENTS: &str = "/patd/v1/audit-events";

/// A secret-scanning service: its P-256 key, made by openssl, and the identifier it signs as.
pub(crate) struct Reporter {
    id: String,
    dir: TempDir,
}

impl Reporter {
    pub(crate) fn new(id: &str) -> Reporter {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "key.pem",
            ],
        );
        openssl(
            dir.path(),
            &["ec", "-in", "key.pem", "-pubout", "-out", "public.pem"],
        );
        Reporter {
            id: id.to_owned(),
            dir,
        }
    }

    /// The public key as GitHub lists it: PEM SubjectPublicKeyInfo.
    fn public_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("public.pem")).unwrap()
    }

    /// `openssl dgst -sha256 -sign key.pem body | base64 -w0`: the DER signature, base64.
    fn sign(&self, body: &[u8]) -> String {
        let body_path = self.dir.path().join("body.json");
        std::fs::write(&body_path, body).unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg("openssl dgst -sha256 -sign key.pem body.json | base64 -w0")
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The keys document of `reporters`, written to a file in `dir`, in GitHub's shape.
pub(crate) fn keys_file(dir: &Path, reporters: &[&Reporter]) -> PathBuf {
    let keys: Vec<Value> = reporters
        .iter()
        .enumerate()
        .map(|(index, reporter)| {
            json!({
                "key_identifier": reporter.id,
                "key": reporter.public_pem(),
                // Every listed key verifies, current or not.
                "is_current": index == 0,
            })
        })
        .collect();
    let path = dir.join("secret-scanning-keys.json");
    std::fs::write(&path, json!({ "public_keys": keys }).to_string()).unwrap();
    path
}

/// A server that trusts `reporters`.
async fn spawn_trusting(reporters: &[&Reporter]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let keys = ScanningKeys::load(&keys_file(dir.path(), reporters)).unwrap();
    spawn_app_with(|config| config.secret_scanning_keys = Some(Arc::new(keys))).await
}

/// The report body GitHub would send for `tokens`.
fn report_body(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|token| {
            json!({
                "token": token,
                "type": "patd_personal_access_token",
                "url": "https://github.com/octo-org/octo-repo/blob/abcdef/config.yml",
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

/// POSTs `body` with the given key id and signature headers (either may be left out).
async fn post_report(
    client: &reqwest::Client,
    base: &str,
    body: &[u8],
    key_id: Option<&str>,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}{REPORTS}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(key_id) = key_id {
        request = request.header("Github-Public-Key-Identifier", key_id);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Sends `tokens` signed by `reporter` and returns the labels, panicking unless it is a 200.
pub(crate) async fn report_ok(app: &TestApp, reporter: &Reporter, tokens: &[&str]) -> Vec<Value> {
    let body = report_body(tokens);
    let signature = reporter.sign(&body);
    let response = post_report(
        &app.client,
        &app.base,
        &body,
        Some(&reporter.id),
        Some(&signature),
    )
    .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer.as_array().unwrap().clone()
}

fn labels(answer: &[Value]) -> Vec<&str> {
    answer
        .iter()
        .map(|item| item["label"].as_str().unwrap())
        .collect()
}

async fn bearer_status(app: &TestApp, token: &str) -> u16 {
    app.list(token, CLASSIC, "owner-id=me")
        .await
        .status()
        .as_u16()
}

/// The audit events about one target, oldest first.
async fn events_about(app: &TestApp, target: &str) -> Vec<Value> {
    let filter = format!("target.id eq \"{target}\"");
    let response = app
        .client
        .get(app.url(EVENTS))
        .bearer_auth(&app.admin_token)
        .query(&[("filters", filter.as_str()), ("sorters", "time")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["type"] == kind)
        .collect()
}

/// A string that passes the secret checksum but was never issued.
fn made_up_secret() -> String {
    patd_core::secret::Secret::generate(&mut rand::rng())
        .expose()
        .to_owned()
}

#[tokio::test]
async fn a_reported_live_secret_is_revoked_at_once_and_audited_as_leaked() {
    let reporter = Reporter::new("github-1");
    let app = spawn_trusting(&[&reporter]).await;
    let user = app.actor("leaky", "USER", &[], &["sp:scopes:all"]).await;
    assert_eq!(bearer_status(&app, &user.token).await, 200);

    let answer = report_ok(&app, &reporter, &[&user.pat.secret]).await;
    assert_eq!(
        answer,
        [json!({
            "token_raw": user.pat.secret,
            "token_type": "patd_personal_access_token",
            "label": "true_positive",
        })]
    );
    // Gone: its secret no longer exchanges, and a token minted from it before is refused.
    assert_eq!(
        app.exchange_status(&user.pat.id, &user.pat.secret).await,
        401
    );
    assert_eq!(bearer_status(&app, &user.token).await, 401);
    assert_eq!(
        app.list(&app.admin_token, CLASSIC, "")
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .iter()
            .filter(|pat| pat["id"] == user.pat.id.as_str())
            .count(),
        0
    );
    let events = events_about(&app, &user.pat.id).await;
    let leaked = of_type(&events, "pat.leaked");
    assert_eq!(leaked.len(), 1, "{events:?}");
    let leaked = leaked[0];
    assert_eq!(leaked["actor"]["type"], "SYSTEM");
    assert_eq!(leaked["actor"]["name"], "secret-scanning");
    assert_eq!(leaked["target"]["ownerId"], user.identity.id.as_str());
    assert_eq!(
        leaked["details"]["url"],
        "https://github.com/octo-org/octo-repo/blob/abcdef/config.yml"
    );
    assert_eq!(leaked["details"]["source"], "content");
    assert_eq!(leaked["outcome"], "SUCCESS");
    assert!(
        !leaked.to_string().contains(&user.pat.secret),
        "the event never holds the secret"
    );
    // A leak is a delete of its own kind, not a second event.
    assert!(of_type(&events, "pat.deleted").is_empty(), "{events:?}");
    // Reported again: already revoked, so nothing is left to revoke.
    let again = report_ok(&app, &reporter, &[&user.pat.secret]).await;
    assert_eq!(labels(&again), ["false_positive"]);
}

/// A report as sent: what it is, its body, its key id and its signature.
type Case<'a> = (&'a str, &'a [u8], Option<&'a str>, Option<&'a str>);

#[tokio::test]
async fn a_report_that_fails_its_signature_revokes_nothing() {
    let (trusted, stranger) = (Reporter::new("github-1"), Reporter::new("github-1"));
    let app = spawn_trusting(&[&trusted]).await;
    let user = app.actor("careful", "USER", &[], &["sp:scopes:all"]).await;
    let body = report_body(&[&user.pat.secret]);
    let good = trusted.sign(&body);
    // The same report with one byte of its url changed: the secret is still in it.
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("octo-repo", "octo-repp")
        .into_bytes();
    assert_ne!(tampered, body);
    let by_stranger = stranger.sign(&body);
    let cases: [Case<'_>; 7] = [
        (
            "signed by another key under the trusted id",
            &body,
            Some("github-1"),
            Some(&by_stranger),
        ),
        (
            "a key id nobody trusts",
            &body,
            Some("github-9"),
            Some(&good),
        ),
        (
            "the body changed after signing",
            &tampered,
            Some("github-1"),
            Some(&good),
        ),
        ("no signature", &body, Some("github-1"), None),
        ("no key id", &body, None, Some(&good)),
        ("no headers at all", &body, None, None),
        (
            "a signature that is not base64 DER",
            &body,
            Some("github-1"),
            Some("bm90IGEgc2lnbmF0dXJl"),
        ),
    ];
    for (case, body, key_id, signature) in cases {
        let response = post_report(&app.client, &app.base, body, key_id, signature).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(keys_of(&answer), ["error"], "{case}: {answer}");
        assert!(!answer.to_string().contains(&user.pat.secret), "{case}");
    }
    // Nothing was revoked, and nothing was audited as leaked.
    assert_eq!(bearer_status(&app, &user.token).await, 200);
    assert_eq!(
        app.exchange_status(&user.pat.id, &user.pat.secret).await,
        200
    );
    assert!(of_type(&events_about(&app, &user.pat.id).await, "pat.leaked").is_empty());
    // And the untouched report, signed by the trusted key, is taken.
    let answer = report_ok(&app, &trusted, &[&user.pat.secret]).await;
    assert_eq!(labels(&answer), ["true_positive"]);
}

#[tokio::test]
async fn false_positives_change_nothing() {
    let reporter = Reporter::new("github-1");
    let app = spawn_trusting(&[&reporter]).await;
    let kept = app.actor("kept", "USER", &[], &["sp:scopes:all"]).await;
    let deleted = app.actor("deleted", "USER", &[], &["sp:scopes:all"]).await;
    assert_eq!(
        app.delete(&app.admin_token, CLASSIC, &deleted.pat.id)
            .await
            .status(),
        204
    );
    let expired = app.identity("expired", "USER", &[]).await;
    let expired_pat = app
        .admin_pat(
            &expired.id,
            "old",
            &["sp:scopes:all"],
            AdminExpiry::At(time::OffsetDateTime::now_utc() + time::Duration::seconds(1)),
            false,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let typo_of_kept = typo(&kept.pat.secret);
    let made_up = made_up_secret();
    let tokens = [
        typo_of_kept.as_str(),
        deleted.pat.secret.as_str(),
        expired_pat.secret.as_str(),
        made_up.as_str(),
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        kept.pat.id.as_str(),
        "",
    ];
    let answer = report_ok(&app, &reporter, &tokens).await;
    assert_eq!(labels(&answer), ["false_positive"; 7]);
    for (item, token) in answer.iter().zip(tokens) {
        assert_eq!(item["token_raw"], token);
        assert_eq!(item["token_type"], "patd_personal_access_token");
    }
    assert_eq!(bearer_status(&app, &kept.token).await, 200);
    assert_eq!(
        app.exchange_status(&kept.pat.id, &kept.pat.secret).await,
        200
    );
    for id in [&kept.pat.id, &deleted.pat.id, &expired_pat.id] {
        assert!(
            of_type(&events_about(&app, id).await, "pat.leaked").is_empty(),
            "{id}"
        );
    }
    // The expired PAT is still there, as it was: expiry is not a leak.
    let expired_id = patd_core::ids::PatId::parse(&expired_pat.id).unwrap();
    assert!(app.store.pat(&expired_id).await.unwrap().is_some());
}

#[tokio::test]
async fn several_tokens_in_one_report_are_answered_in_order() {
    let reporter = Reporter::new("github-1");
    let app = spawn_trusting(&[&reporter]).await;
    let first = app.actor("first", "USER", &[], &["sp:scopes:all"]).await;
    let second = app.actor("second", "USER", &[], &["sp:scopes:all"]).await;
    let bystander = app
        .actor("bystander", "USER", &[], &["sp:scopes:all"])
        .await;
    let typo_of_bystander = typo(&bystander.pat.secret);
    let answer = report_ok(
        &app,
        &reporter,
        &[
            &first.pat.secret,
            &typo_of_bystander,
            "not a token at all",
            &second.pat.secret,
            // Named twice: labelled the same both times.
            &first.pat.secret,
        ],
    )
    .await;
    assert_eq!(
        labels(&answer),
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "true_positive",
            "true_positive"
        ]
    );
    assert_eq!(answer[3]["token_raw"], second.pat.secret.as_str());
    for gone in [&first, &second] {
        assert_eq!(bearer_status(&app, &gone.token).await, 401);
        let events = events_about(&app, &gone.pat.id).await;
        assert_eq!(of_type(&events, "pat.leaked").len(), 1, "{events:?}");
    }
    assert_eq!(bearer_status(&app, &bystander.token).await, 200);
}

#[tokio::test]
async fn a_secret_in_its_grace_period_is_live_and_revokes_its_pat() {
    let reporter = Reporter::new("github-1");
    let app = spawn_trusting(&[&reporter]).await;
    let user = app.actor("rotator", "USER", &[], &["sp:scopes:all"]).await;
    let rotated: Value = app
        .client
        .post(app.url(&format!(
            "/patd/v1/personal-access-tokens/{}/rotate",
            user.pat.id
        )))
        .bearer_auth(&app.admin_token)
        .json(&json!({"gracePeriodSeconds": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    // The old secret still exchanges, so its leak matters: the PAT goes, new secret and all.
    let answer = report_ok(&app, &reporter, &[&user.pat.secret]).await;
    assert_eq!(labels(&answer), ["true_positive"]);
    assert_eq!(app.exchange_status(&user.pat.id, new_secret).await, 401);
}

#[tokio::test]
async fn every_listed_key_verifies_and_bad_bodies_are_refused() {
    let (current, previous) = (Reporter::new("current"), Reporter::new("previous"));
    let app = spawn_trusting(&[&current, &previous]).await;
    let user = app.actor("twice", "USER", &[], &["sp:scopes:all"]).await;
    // A key that is no longer current still verifies: GitHub signs with it while it rotates.
    let answer = report_ok(&app, &previous, &[&made_up_secret()]).await;
    assert_eq!(labels(&answer), ["false_positive"]);

    let too_many: Vec<String> = (0..1001).map(|n| format!("t{n}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let compact = |tokens: &[&str]| {
        let items: Vec<Value> = tokens.iter().map(|token| json!({"token": token})).collect();
        serde_json::to_vec(&items).unwrap()
    };
    for (case, body, code) in [
        ("not JSON", b"token=x".to_vec(), "400.0 Bad Request Syntax"),
        (
            "an object, not an array",
            br#"{"token": "x"}"#.to_vec(),
            "400.0 Bad Request Syntax",
        ),
        (
            "an item without a token",
            br#"[{"type": "x"}]"#.to_vec(),
            "400.0 Bad Request Syntax",
        ),
        (
            "more than 1000 tokens",
            compact(&too_many),
            "400.1 Bad Request Content",
        ),
    ] {
        let signature = current.sign(&body);
        let response = post_report(
            &app.client,
            &app.base,
            &body,
            Some("current"),
            Some(&signature),
        )
        .await;
        let (status, detail_code, cause) = error_of(response).await;
        assert_eq!(
            (status, detail_code.as_str()),
            (400, code),
            "{case}: {cause}"
        );
    }
    let (status, _, cause) = error_of({
        let body = compact(&too_many);
        let signature = current.sign(&body);
        post_report(
            &app.client,
            &app.base,
            &body,
            Some("current"),
            Some(&signature),
        )
        .await
    })
    .await;
    assert_eq!(status, 400);
    assert!(cause.contains("at most 1000"), "{cause}");
    // A report of exactly 1000 is taken, and a token sent only with `token` is labelled.
    let mut thousand: Vec<&str> = too_many[..999].to_vec();
    thousand.push(&user.pat.secret);
    let body = compact(&thousand);
    let signature = current.sign(&body);
    let response = post_report(
        &app.client,
        &app.base,
        &body,
        Some("current"),
        Some(&signature),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Vec<Value> = response.json().await.unwrap();
    assert_eq!(answer.len(), 1000);
    assert_eq!(answer[999]["label"], "true_positive");
    assert_eq!(answer[999]["token_type"], "");
    assert_eq!(answer[0]["label"], "false_positive");
}

#[tokio::test]
async fn without_keys_the_reports_route_is_not_there() {
    let reporter = Reporter::new("github-1");
    let app = spawn_app().await;
    let user = app
        .actor("unguarded", "USER", &[], &["sp:scopes:all"])
        .await;
    let body = report_body(&[&user.pat.secret]);
    let signature = reporter.sign(&body);
    let response = post_report(
        &app.client,
        &app.base,
        &body,
        Some(&reporter.id),
        Some(&signature),
    )
    .await;
    let (status, detail_code, _) = error_of(response).await;
    assert_eq!((status, detail_code.as_str()), (404, "404 Not found"));
    assert_eq!(bearer_status(&app, &user.token).await, 200);
}

#[tokio::test]
async fn serve_reads_the_keys_file_once_and_refuses_a_bad_one() {
    let reporter = Reporter::new("github-1");
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(dir.path(), &[&reporter]);
    let url = fresh_database_url(dir.path()).await;

    // A file that cannot be used stops the start, naming the file.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"public_keys": [{"key_identifier": "k", "key": "x"}]}"#,
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    for (path, reason) in [
        (&broken, "key k is not a PEM ECDSA P-256 public key"),
        (&missing, "reading the secret-scanning keys"),
    ] {
        let output = patd()
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
            .arg("--secret-scanning-keys")
            .arg(path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(reason),
            "{stderr}"
        );
    }

    let keys_flag = keys.display().to_string();
    let server = ServerProcess::start(&url, &["--secret-scanning-keys", &keys_flag], "debug");
    let (id, secret) = server.bootstrap().unwrap();
    // Read once: the file may go away while the server runs.
    std::fs::remove_file(&keys).unwrap();
    let non_patd = "ghp_ThisIsNotAPatdSecretButLooksLikeOne1";
    let body = report_body(&[&secret, non_patd]);
    let signature = reporter.sign(&body);
    let client = reqwest::Client::new();
    let response = post_report(
        &client,
        &server.base,
        &body,
        Some(&reporter.id),
        Some(&signature),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Vec<Value> = response.json().await.unwrap();
    assert_eq!(labels(&answer), ["true_positive", "false_positive"]);
    let exchanged = crate::cli::exchange(&server.base, &id, &secret).await;
    assert_eq!(exchanged.status(), 401);
    let (_, _, stderr) = server.stop();
    // The logs name the event and the PAT, never what was reported.
    assert!(stderr.contains("pat.leaked"), "{stderr}");
    for reported in [secret.as_str(), non_patd, "octo-repo"] {
        assert!(!stderr.contains(reported), "{reported} in the log");
    }
}

async fn revoke(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/revoke"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Checks a revocation's answer: 200, empty, not to be cached.
async fn assert_revocation_answer(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn oauth_revoke_with_a_live_secret_deletes_its_pat() {
    let app = spawn_app().await;
    let user = app.actor("revoker", "USER", &[], &["sp:scopes:all"]).await;
    let response = revoke(
        &app,
        &[
            ("token", &user.pat.secret),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_revocation_answer(response).await;
    assert_eq!(
        app.exchange_status(&user.pat.id, &user.pat.secret).await,
        401
    );
    assert_eq!(bearer_status(&app, &user.token).await, 401);
    let events = events_about(&app, &user.pat.id).await;
    let deleted = of_type(&events, "pat.deleted");
    assert_eq!(deleted.len(), 1, "{events:?}");
    assert_eq!(deleted[0]["actor"]["type"], "ANONYMOUS");
    assert_eq!(deleted[0]["details"]["via"], "oauth/revoke");
    assert!(deleted[0]["sourceIp"].is_string());
    // Once more: nothing left to revoke, the same answer.
    assert_revocation_answer(revoke(&app, &[("token", &user.pat.secret)]).await).await;
    assert_eq!(
        of_type(&events_about(&app, &user.pat.id).await, "pat.deleted").len(),
        1
    );
}

#[tokio::test]
async fn oauth_revoke_of_anything_else_answers_the_same_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app
        .actor("bystander", "USER", &[], &["sp:scopes:all"])
        .await;
    let typo_of_user = typo(&user.pat.secret);
    let made_up = made_up_secret();
    for token in [
        typo_of_user.as_str(),
        made_up.as_str(),
        user.pat.id.as_str(),
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ] {
        assert_revocation_answer(revoke(&app, &[("token", token)]).await).await;
    }
    assert_eq!(bearer_status(&app, &user.token).await, 200);
    assert_eq!(
        app.exchange_status(&user.pat.id, &user.pat.secret).await,
        200
    );
    assert!(of_type(&events_about(&app, &user.pat.id).await, "pat.deleted").is_empty());
}

#[tokio::test]
async fn oauth_revoke_takes_only_a_form_posted_with_a_token() {
    let app = spawn_app().await;
    let user = app.actor("formal", "USER", &[], &["sp:scopes:all"]).await;
    let oauth_error = |body: &Value| {
        assert_eq!(keys_of(body), ["error", "error_description"], "{body}");
        body["error"].as_str().unwrap().to_owned()
    };
    // A JSON body is not a form, whatever it holds.
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .json(&json!({"token": user.pat.secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        oauth_error(&response.json().await.unwrap()),
        "invalid_request"
    );
    // A form without a token, and a token in the query string only (never read).
    for response in [
        revoke(&app, &[("token_type_hint", "access_token")]).await,
        app.client
            .post(format!(
                "{}?token={}",
                app.url("/oauth/revoke"),
                user.pat.secret
            ))
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), 400);
        assert_eq!(
            oauth_error(&response.json().await.unwrap()),
            "invalid_request"
        );
    }
    // A body over the cap gets the OAuth shape too.
    let huge = "a".repeat(70 * 1024);
    let response = revoke(&app, &[("token", &huge)]).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        oauth_error(&response.json().await.unwrap()),
        "invalid_request"
    );
    // GET is not a revocation.
    let response = app
        .client
        .get(app.url("/oauth/revoke"))
        .send()
        .await
        .unwrap();
    let (status, detail_code, _) = error_of(response).await;
    assert_eq!(
        (status, detail_code.as_str()),
        (405, "405 Method Not Allowed")
    );
    assert_eq!(bearer_status(&app, &user.token).await, 200);
}

#[tokio::test]
async fn made_up_secrets_sent_to_oauth_revoke_are_limited_per_address_but_a_live_one_never_is() {
    let app = spawn_app_with(|config| {
        config.unknown_client_failure_limit = Some(Limit::PerWindow {
            requests: 3,
            seconds: 60,
        })
    })
    .await;
    let user = app.actor("limited", "USER", &[], &["sp:scopes:all"]).await;
    for _ in 0..3 {
        assert_revocation_answer(revoke(&app, &[("token", &made_up_secret())]).await).await;
    }
    let response = revoke(&app, &[("token", &made_up_secret())]).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // A string that is no secret costs no lookup and is not counted; a live secret still works.
    assert_revocation_answer(revoke(&app, &[("token", "not-a-secret")]).await).await;
    assert_revocation_answer(revoke(&app, &[("token", &user.pat.secret)]).await).await;
    assert_eq!(bearer_status(&app, &user.token).await, 401);
}

#[tokio::test]
async fn a_revocation_on_one_node_is_honoured_by_another_within_a_second() {
    let Some(base_url) = postgres_url() else {
        eprintln!("skipped: PATD_TEST_POSTGRES_URL is not set, so the two-node case did not run");
        return;
    };
    let reporter = Reporter::new("github-1");
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(ScanningKeys::load(&keys_file(dir.path(), &[&reporter])).unwrap());
    let url = fresh_postgres_schema(&base_url).await;
    let first = spawn_app_full_on(&url, |config| {
        config.secret_scanning_keys = Some(keys.clone())
    })
    .await;
    let public_url = first.base.clone();
    let second =
        PreparedNode::new(&url, |config| config.public_url = public_url, |store| store).await;
    let second_base = second.base.clone();
    second.serve(std::future::pending());
    let user = first
        .actor("roaming", "USER", &[], &["sp:scopes:all"])
        .await;
    let on_second = |token: String| {
        let client = reqwest::Client::new();
        let url = format!("{second_base}{CLASSIC}?owner-id=me");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The second node has the PAT in its cache.
    assert_eq!(on_second(user.token.clone()).await, 200);
    let answer = report_ok(&first, &reporter, &[&user.pat.secret]).await;
    assert_eq!(labels(&answer), ["true_positive"]);
    let started = std::time::Instant::now();
    while on_second(user.token.clone()).await != 401 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the second node still honours the leaked PAT"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_leak_and_a_revocation_are_told_to_webhooks_with_the_pat_and_never_its_secret() {
    use crate::webhooks::{create_webhook, verify_signature, Receiver};
    use std::time::Duration;
    let reporter = Reporter::new("github-1");
    let dir = tempfile::tempdir().unwrap();
    let keys = ScanningKeys::load(&keys_file(dir.path(), &[&reporter])).unwrap();
    let app = spawn_app_with(|config| {
        config.secret_scanning_keys = Some(Arc::new(keys));
        config.webhook_allow_private = true;
        config.outbox_poll = Duration::from_millis(50);
    })
    .await;
    let receiver = Receiver::start(Vec::new(), Duration::ZERO).await;
    let created: Value = create_webhook(
        &app.base,
        &app.admin_token,
        &receiver.url,
        json!(["pat.leaked", "pat.deleted"]),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = created["secret"].as_str().unwrap();
    let leaky = app.actor("leaky", "USER", &[], &["sp:scopes:all"]).await;
    let careful = app.actor("careful", "USER", &[], &["sp:scopes:all"]).await;

    assert_eq!(
        labels(&report_ok(&app, &reporter, &[&leaky.pat.secret]).await),
        ["true_positive"]
    );
    assert_revocation_answer(revoke(&app, &[("token", &careful.pat.secret)]).await).await;

    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    for (request, kind, pat, owner) in [
        (&got[0], "pat.leaked", &leaky.pat, "leaky"),
        (&got[1], "pat.deleted", &careful.pat, "careful"),
    ] {
        assert!(verify_signature(secret, request), "{:?}", request.headers);
        let body = request.json();
        assert_eq!(body["type"], kind, "{body}");
        assert_eq!(body["data"]["pat"]["id"], pat.id.as_str(), "{body}");
        assert_eq!(body["data"]["pat"]["owner"]["name"], owner, "{body}");
        assert!(!request.body.contains(&pat.secret), "{body}");
    }
    assert_eq!(
        got[0].json()["data"]["details"]["source"],
        "content",
        "{}",
        got[0].body
    );
}
