//! Hostile input (issue 17): patches that would grow without bound, names that hide.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The process's peak resident memory, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_patch_that_doubles_the_scope_is_refused_at_once() {
    let app = spawn_app().await;
    let id = app.bootstrap.id.clone();
    let bomb = Value::Array(vec![
        json!({"op": "copy", "from": "/scope", "path": "/scope/-"});
        26
    ]);
    let before = peak_kib();
    let started = Instant::now();
    let response = app.patch(&app.admin_token, CLASSIC, &id, bomb).await;
    let took = started.elapsed();
    let (status, code, cause) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "400.1 Bad Request Content"));
    assert_eq!(cause, "copy and move may not write into an array");
    assert!(took < Duration::from_millis(50), "{took:?}");
    // The doubling would need gigabytes; the peak may not move by more than noise.
    assert!(
        peak_kib() - before < 32 * 1024,
        "{} KiB",
        peak_kib() - before
    );

    let many = Value::Array(vec![
        json!({"op": "test", "path": "/name", "value": "x"});
        1_000
    ]);
    let response = app
        .patch(&app.admin_token, CLASSIC, &id, many.clone())
        .await;
    assert!([400, 413].contains(&response.status().as_u16()));
    let bulk = app
        .client
        .post(app.url("/personal-access-tokens/v1/bulk-update"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"ids": [id], "patch": many}))
        .send()
        .await
        .unwrap();
    assert!([400, 413].contains(&bulk.status().as_u16()));
    // Nothing changed.
    let listed = app.list_ok(&app.admin_token, CLASSIC, "owner-id=me").await;
    assert_eq!(listed[0]["scope"], json!(["sp:scopes:all"]));
}

#[tokio::test]
async fn names_that_hide_or_disguise_are_refused() {
    let app = spawn_app().await;
    for name in ["\u{200B}", "admin\u{202E}nimda", "\u{FEFF}ci", "a\u{2028}b"] {
        let response = app
            .create(&app.admin_token, CLASSIC, json!({"name": name}))
            .await;
        let (status, _, cause) = error_of(response).await;
        assert_eq!(status, 400, "{name:?}");
        assert!(cause.contains("invisible or direction-changing"), "{cause}");
    }
    for name in ["café", "名前", "deploy 🚀"] {
        app.create_ok(&app.admin_token, CLASSIC, json!({"name": name}))
            .await;
    }
}

#[tokio::test]
async fn secrets_are_not_echoed_and_the_create_answer_is_not_cached() {
    let app = spawn_app().await;
    let response = app
        .create(&app.admin_token, CLASSIC, json!({"name": "cached?"}))
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    // A secret pasted into a patch path comes back redacted.
    let secret = app.bootstrap.secret.clone();
    let patch = json!([{"op": "replace", "path": format!("/{secret}"), "value": 1}]);
    let response = app
        .patch(&app.admin_token, CLASSIC, &app.bootstrap.id, patch)
        .await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 400);
    assert!(!cause.contains(&secret), "{cause}");
    assert!(
        cause.contains(&format!("pat_…{}", &secret[secret.len() - 4..])),
        "{cause}"
    );
}
