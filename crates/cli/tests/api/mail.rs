//! Owners' mail (EXTENSIONS E8) through a real SMTP server: Python's `aiosmtpd` from PyPI, which
//! `.ci/run` installs and names in `PATD_TEST_SMTPD_PYTHON`; the test reads the message that
//! arrived in its mailbox.

use crate::helpers::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python that has aiosmtpd; without it the test says so, and fails in CI.
fn smtpd_python() -> Option<String> {
    match std::env::var("PATD_TEST_SMTPD_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("PATD_TEST_SMTPD_PYTHON is not set: the mail test must run in CI")
        }
        Err(_) => {
            eprintln!("skipped: PATD_TEST_SMTPD_PYTHON is not set, so the mail test did not run");
            None
        }
    }
}

struct Smtpd {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtpd(python: &str) -> Smtpd {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path().join("mail"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Smtpd {
        child,
        port,
        maildir,
    }
}

/// The messages in the Maildir, as text.
fn messages(maildir: &std::path::Path) -> Vec<String> {
    let new = maildir.join("mail").join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_is_mailed_of_a_rotation_in_text_and_html_without_a_secret() {
    let Some(python) = smtpd_python() else { return };
    let smtpd = start_smtpd(&python);
    let smtp_url = format!("smtp://127.0.0.1:{}", smtpd.port);
    let app = spawn_app_with(|config| {
        config.outbox_poll = Duration::from_millis(50);
        config.mail = Some(patd_server::state::MailConfig {
            smtp_url,
            password: None,
            from: "patd@example.com".to_owned(),
        });
    })
    .await;
    let owner = app.actor("mailed", "USER", &[], &["sp:scopes:all"]).await;
    app.store
        .set_identity_email(&owner.identity.id, Some("owner@example.com"))
        .await
        .unwrap();
    // Someone without an address is not mailed.
    let silent = app.actor("silent", "USER", &[], &["sp:scopes:all"]).await;
    let rotated: Value = app
        .client
        .post(app.url(&format!(
            "/patd/v1/personal-access-tokens/{}/rotate",
            owner.pat.id
        )))
        .bearer_auth(&owner.token)
        .json(&json!({"gracePeriodSeconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = app
        .client
        .post(app.url(&format!(
            "/patd/v1/personal-access-tokens/{}/rotate",
            silent.pat.id
        )))
        .bearer_auth(&silent.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let mail = loop {
        if let Some(mail) = messages(smtpd.maildir.path()).pop() {
            break mail;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no mail arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        messages(smtpd.maildir.path()).len(),
        1,
        "the owner without an address was mailed"
    );
    let lower = mail.to_ascii_lowercase();
    assert!(lower.contains("to: owner@example.com"), "{mail}");
    assert!(lower.contains("from: patd@example.com"), "{mail}");
    assert!(mail.contains("was rotated"), "{mail}");
    assert!(lower.contains("multipart/alternative"), "{mail}");
    assert!(
        lower.contains("text/plain") && lower.contains("text/html"),
        "{mail}"
    );
    assert!(
        mail.contains(&owner.pat.id),
        "the mail does not name the PAT"
    );
    for secret in [
        owner.pat.secret.as_str(),
        rotated["secret"].as_str().unwrap(),
    ] {
        assert!(!mail.contains(secret), "a secret in the mail");
    }
}
