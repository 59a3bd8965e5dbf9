//! The command line as scripts use it: lists that page through everything, a closed pipe, tables
//! cut to the terminal, one-line errors, plain expiry dates, the administration lists, signing
//! keys retired and rotated under running servers, completions and the manual page.

use crate::cli::{exchange, one_line_error, pat_command, patd, run_error, run_json, ServerProcess};
use crate::helpers::{fresh_database_url, seed_pat, AdminExpiry};
use base64::Engine;
use serde_json::Value;
use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A server process on a fresh database, with its bootstrap credential.
async fn server(dir: &std::path::Path) -> (ServerProcess, String, String, String) {
    let db = fresh_database_url(dir).await;
    let server = ServerProcess::start(&db, &["--rate-limit", "off"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    (server, db, id, secret)
}

/// `count` more PATs for `owner`, written through the store.
async fn seed(db: &str, owner: &str, count: usize) -> Vec<String> {
    let store = patd_store::connect(db).await.unwrap();
    let owner = store.identity_by_name(owner).await.unwrap().unwrap();
    let created = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(
            seed_pat(
                &store,
                owner.id.as_str(),
                &format!("seeded {n:03}"),
                created,
                AdminExpiry::Default,
                false,
                None,
            )
            .await,
        );
    }
    ids
}

fn ok_json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn ids_of(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|pat| pat["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pat_list_pages_through_everything_and_limit_takes_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, db, id, secret) = server(dir.path()).await;
    let seeded = seed(&db, "admin", 300).await;
    let base = server.base.clone();

    let all = ids_of(&ok_json(&pat_command(
        &base,
        &id,
        &secret,
        &["list", "--json"],
    )));
    assert_eq!(all.len(), 301, "every page, not only the first 250");
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 301);
    assert!(seeded.iter().all(|seeded| unique.contains(seeded)));
    // In the API's order (created, then id): the seeded ones were made before the bootstrap.
    assert_eq!(all[300], id);

    for (args, want) in [
        (vec!["list", "--json", "--limit", "5"], 5),
        (vec!["list", "--json", "--limit", "260"], 260),
        (vec!["list", "--json", "--limit", "1000"], 301),
        (vec!["list", "--json", "--offset", "295"], 6),
        (
            vec!["list", "--json", "--offset", "240", "--limit", "20"],
            20,
        ),
    ] {
        let listed = ids_of(&ok_json(&pat_command(&base, &id, &secret, &args)));
        assert_eq!(listed.len(), want, "{args:?}");
    }
    let first_260 = ids_of(&ok_json(&pat_command(
        &base,
        &id,
        &secret,
        &["list", "--json", "--limit", "260"],
    )));
    assert_eq!(first_260, all[..260]);
    let output = pat_command(&base, &id, &secret, &["list", "--limit", "0"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--limit <LIMIT>': must be at least 1")
    );

    // The table lists them all too: a header and one line each.
    let output = pat_command(&base, &id, &secret, &["list"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 302);
    server.stop();
}

#[tokio::test]
async fn a_closed_pipe_ends_a_list_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, db, id, secret) = server(dir.path()).await;
    seed(&db, "admin", 260).await;
    for args in [vec!["list"], vec!["list", "--json"]] {
        // The reader is gone before the command writes a byte: its first write meets EPIPE.
        let mut child = patd()
            .arg("pat")
            .args(&args)
            .env("SAIL_BASE_URL", &server.base)
            .env("SAIL_CLIENT_ID", &id)
            .env("SAIL_CLIENT_SECRET", &secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{args:?}: {:?}", output.status);
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
    }
    // As a shell runs it, with pipefail: `head` takes a line and leaves.
    let output = std::process::Command::new("bash")
        .args(["-c", "set -o pipefail; \"$PATD\" pat list | head -n 1"])
        .env("PATD", env!("CARGO_BIN_EXE_patd"))
        .env("SAIL_BASE_URL", &server.base)
        .env("SAIL_CLIENT_ID", &id)
        .env("SAIL_CLIENT_SECRET", &secret)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ID"));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    server.stop();
}

#[tokio::test]
async fn tables_cut_long_names_to_the_terminal_width() {
    let dir = tempfile::tempdir().unwrap();
    let (server, db, id, secret) = server(dir.path()).await;
    let long_name = format!("deploy {}", "x".repeat(100));
    let made = run_json(&[
        "token",
        "create",
        "--owner",
        "admin",
        "--name",
        &long_name,
        "--database",
        &db,
    ]);
    let made_id = made["id"].as_str().unwrap();
    for width in [90, 100, 120] {
        let output = patd()
            .args(["pat", "list"])
            .env("SAIL_BASE_URL", &server.base)
            .env("SAIL_CLIENT_ID", &id)
            .env("SAIL_CLIENT_SECRET", &secret)
            .env("COLUMNS", width.to_string())
            .output()
            .unwrap();
        let table = String::from_utf8(output.stdout).unwrap();
        assert_eq!(table.lines().count(), 3, "one line per PAT: {table}");
        for line in table.lines() {
            assert!(line.chars().count() <= width, "wider than {width}: {line}");
        }
        let row = table.lines().find(|line| line.contains(made_id)).unwrap();
        assert!(row.contains("dep") && row.contains('…'), "{row}");
        assert!(!row.contains(&long_name));
        // Ids and dates are never cut.
        assert!(table.contains(&id));
        assert!(row.contains(&made["expirationDate"].as_str().unwrap()[..10]));
    }
    // Into a pipe with no COLUMNS, nothing is cut.
    let output = patd()
        .args(["pat", "list"])
        .env_remove("COLUMNS")
        .env("SAIL_BASE_URL", &server.base)
        .env("SAIL_CLIENT_ID", &id)
        .env("SAIL_CLIENT_SECRET", &secret)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains(&long_name));
    // The administration lists are tables too.
    let output = patd()
        .args(["token", "list", "--database", &db])
        .env("COLUMNS", "90")
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.lines().all(|line| line.chars().count() <= 90),
        "{table}"
    );
    assert!(table.contains('…'));
    server.stop();
}

/// Each part of an error line once, no `.;`, no period at the end.
fn assert_clean(line: &str) {
    let line = line.trim_end();
    assert!(line.starts_with("patd: "), "{line}");
    assert!(!line.contains(".;") && !line.contains(".:"), "{line}");
    assert!(!line.ends_with('.'), "{line}");
    let parts: Vec<&str> = line.split(": ").collect();
    let unique: HashSet<&&str> = parts.iter().collect();
    assert_eq!(parts.len(), unique.len(), "a part repeats: {line}");
}

#[tokio::test]
async fn errors_are_one_line_with_one_cause_each() {
    let dir = tempfile::tempdir().unwrap();
    let (server, db, id, secret) = server(dir.path()).await;
    let base = server.base.clone();
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
    let cases = [
        (
            pat_command(&base, &id, &secret, &["create", "--name", " "]),
            "patd: bad request (400): name must not be blank",
        ),
        (
            pat_command(
                &base,
                &id,
                &secret,
                &["delete", "86f1dc6fe8f54414950454cbb11278fa"],
            ),
            "patd: not found (404): The server did not find a current representation for the \
             target resource",
        ),
        (
            pat_command(&base, reader_id, reader_secret, &["create", "--name", "x"]),
            "patd: forbidden (403): requires one of the rights \
             idn:my-personal-access-tokens:manage, idn:all-personal-access-tokens:manage",
        ),
        (
            pat_command(&base, reader_id, reader_secret, &["list", "--owner", "all"]),
            "patd: forbidden (403): requires one of the rights \
             idn:all-personal-access-tokens:read, idn:all-personal-access-tokens:manage",
        ),
    ];
    for (output, want) in cases {
        let line = one_line_error(&output);
        assert_eq!(line.trim_end(), want);
        assert_clean(&line);
    }
    // Errors with a chain of causes: each said once.
    let unreachable = one_line_error(&pat_command("http://127.0.0.1:9", &id, &secret, &["list"]));
    assert!(
        unreachable.contains("cannot reach the server"),
        "{unreachable}"
    );
    assert_clean(&unreachable);
    let missing_dir = dir.path().join("no such dir").join("x.db");
    let unopenable = run_error(&[
        "identity",
        "list",
        "--database",
        &format!("sqlite://{}", missing_dir.display()),
    ]);
    assert_clean(&unopenable);
    for args in [
        vec!["key", "retire", "nope", "--database", &db],
        vec!["token", "list", "--owner", "nobody", "--database", &db],
    ] {
        assert_clean(&run_error(&args));
    }
    server.stop();
}

#[tokio::test]
async fn expires_takes_a_plain_date_as_the_end_of_that_day_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    let (server, db, id, secret) = server(dir.path()).await;
    let made = run_json(&[
        "token",
        "create",
        "--owner",
        "admin",
        "--name",
        "dated",
        "--expires",
        "2099-01-31",
        "--database",
        &db,
    ]);
    assert_eq!(made["expirationDate"], "2099-01-31T23:59:59.999Z");
    let created = ok_json(&pat_command(
        &server.base,
        &id,
        &secret,
        &[
            "create",
            "--name",
            "api dated",
            "--expires",
            "2098-12-31",
            "--json",
        ],
    ));
    assert_eq!(created["expirationDate"], "2098-12-31T23:59:59.999Z");
    let patched = ok_json(&pat_command(
        &server.base,
        &id,
        &secret,
        &[
            "patch",
            created["id"].as_str().unwrap(),
            "--expires",
            "2097-06-30",
            "--json",
        ],
    ));
    assert_eq!(patched["expirationDate"], "2097-06-30T23:59:59.999Z");
    assert!(run_error(&[
        "token",
        "create",
        "--owner",
        "admin",
        "--name",
        "bad date",
        "--expires",
        "2099-02-30",
        "--database",
        &db,
    ])
    .contains("a date (YYYY-MM-DD)"));
    let help = patd().args(["token", "create", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("23:59:59.999 UTC"));
    server.stop();
}

#[tokio::test]
async fn identity_list_and_token_list_by_owner() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let alice = run_json(&["identity", "create", "--name", "alice", "--database", &db]);
    run_json(&[
        "identity",
        "create",
        "--name",
        "Bob",
        "--level",
        "ORG_ADMIN",
        "--database",
        &db,
    ]);
    let identities = run_json(&["identity", "list", "--json", "--database", &db]);
    let names: Vec<&str> = identities
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| identity["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "alice"], "by name, byte-wise");
    assert_eq!(identities[1], alice);
    let output = patd()
        .args(["identity", "list", "--database", &db])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.starts_with("ID") && table.contains("ORG_ADMIN"),
        "{table}"
    );

    for (owner, name, managed) in [
        ("alice", "a1", false),
        ("alice", "a2", true),
        ("Bob", "b1", false),
    ] {
        let mut args = vec![
            "token",
            "create",
            "--owner",
            owner,
            "--name",
            name,
            "--database",
            &db,
        ];
        if managed {
            args.push("--managed");
        }
        run_json(&args);
    }
    let names_of = |listed: Value| -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|pat| pat["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let alices = run_json(&[
        "token",
        "list",
        "--owner",
        "alice",
        "--json",
        "--database",
        &db,
    ]);
    assert_eq!(names_of(alices.clone()), ["a1", "a2"], "managed ones too");
    assert_eq!(alices[1]["managed"], true);
    assert_eq!(alices[0]["owner"]["id"], alice["id"]);
    assert!(alices[0].get("secret").is_none());
    let by_id = run_json(&[
        "token",
        "list",
        "--owner",
        alice["id"].as_str().unwrap(),
        "--json",
        "--database",
        &db,
    ]);
    assert_eq!(by_id, alices);
    let everyone = run_json(&["token", "list", "--json", "--database", &db]);
    assert_eq!(names_of(everyone), ["a1", "a2", "b1"]);
    // More than a page of the store's lists.
    seed(&db, "Bob", 260).await;
    let bobs = run_json(&[
        "token",
        "list",
        "--owner",
        "Bob",
        "--json",
        "--database",
        &db,
    ]);
    assert_eq!(bobs.as_array().unwrap().len(), 261);
    assert!(
        run_error(&["token", "list", "--owner", "nobody", "--database", &db])
            .contains("no identity 'nobody'")
    );
}

/// The `kid` in a JWT's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn access_token(base: &str, id: &str, secret: &str) -> String {
    let response = exchange(base, id, secret).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn list_status(base: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/v2025/personal-access-tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `check` every 50 ms until it holds, for at most `within`; returns how long it took.
async fn within<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keys_rotated_and_retired_are_seen_at_once_by_every_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    // Two nodes on one database: two processes on one SQLite file, or two PostgreSQL nodes.
    let first = ServerProcess::start(&db, &["--rate-limit", "off"], "info");
    let (id, secret) = first.bootstrap().unwrap();
    let second = ServerProcess::start(&db, &["--rate-limit", "off"], "info");
    let nodes = [first.base.clone(), second.base.clone()];

    let keys = run_json(&["key", "list", "--json", "--database", &db]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let old_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[0]["algorithm"], "EdDSA");
    assert_eq!(keys[0]["retired"], Value::Null);
    let old_token = access_token(&nodes[0], &id, &secret).await;
    assert_eq!(kid_of(&old_token), old_kid);
    for node in &nodes {
        assert_eq!(list_status(node, &old_token).await.0, 200);
    }
    // The current key cannot be retired.
    let refused = run_error(&["key", "retire", &old_kid, "--database", &db]);
    assert!(refused.contains("current signing key"), "{refused}");
    assert!(refused.contains("patd key rotate"), "{refused}");

    // A rotation is used by both nodes at once: no restart, no unknown kid needed.
    let rotated = run_json(&["key", "rotate", "--database", &db]);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    let (id_ref, secret_ref, new_ref) = (id.as_str(), secret.as_str(), new_kid.as_str());
    for node in &nodes {
        let node = node.as_str();
        let took = within(
            Duration::from_secs(3),
            "the new key signs",
            move || async move { kid_of(&access_token(node, id_ref, secret_ref).await) == new_ref },
        )
        .await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // The old key still verifies until it is retired.
    for node in &nodes {
        assert_eq!(list_status(node, &old_token).await.0, 200);
    }

    let retired = run_json(&["key", "retire", &old_kid, "--database", &db]);
    assert_eq!(retired["kid"], old_kid.as_str());
    assert_eq!(retired["current"], false);
    assert!(retired["retired"].is_string());
    // Refused by both nodes at once, though each had verified (and cached) it.
    let old_ref = old_token.as_str();
    for node in &nodes {
        let node = node.as_str();
        within(
            Duration::from_secs(2),
            "the retired key's token is refused",
            move || async move {
                let (status, body) = list_status(node, old_ref).await;
                status == 401 && body["error"] == "JWT validation failed: JWT key id is unknown"
            },
        )
        .await;
        let jwks: Value = reqwest::get(format!("{node}/.well-known/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str()]);
        // A fresh token works.
        let token = access_token(node, &id, &secret).await;
        assert_eq!(list_status(node, &token).await.0, 200);
    }
    // Retiring it again changes nothing.
    let again = run_json(&["key", "retire", &old_kid, "--database", &db]);
    assert_eq!(again["retired"], retired["retired"]);
    let keys = run_json(&["key", "list", "--json", "--database", &db]);
    assert_eq!(keys[0]["kid"], old_kid.as_str());
    assert_eq!(keys[0]["retired"], retired["retired"]);
    assert_eq!(keys[1]["kid"], new_kid.as_str());
    assert_eq!(keys[1]["current"], true);
    let output = patd()
        .args(["key", "list", "--database", &db])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("KID"), "{table}");
    let old_row = table.lines().find(|line| line.contains(&old_kid)).unwrap();
    assert!(old_row.contains("retired"), "{table}");
    let new_row = table.lines().find(|line| line.contains(&new_kid)).unwrap();
    assert!(new_row.contains("current"), "{table}");

    // A restarted node still refuses it.
    let (ok, _, _) = second.stop();
    assert!(ok);
    let third = ServerProcess::start(&db, &["--rate-limit", "off"], "info");
    assert_eq!(list_status(&third.base, &old_token).await.0, 401);
    third.stop();
    first.stop();
}

#[test]
fn completions_and_the_manual_page() {
    let bash = patd().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("_patd()") && script.contains("complete -F _patd"));
    for word in ["serve", "retire", "completions", "--database", "--expires"] {
        assert!(script.contains(word), "{word}");
    }
    let zsh = patd().args(["completions", "zsh"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef patd"));
    let unknown = patd().args(["completions", "tcsh"]).output().unwrap();
    assert!(!unknown.status.success());
    // bash itself accepts the script.
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");

    let man = patd().arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH patd 1"), "{page}");
    assert!(page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patd.1");
    std::fs::write(&path, &page).unwrap();
    // Rendered by man where it is installed.
    if let Ok(rendered) = std::process::Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        if rendered.status.success() {
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(
                text.contains("NAME") && text.contains("patd-serve"),
                "{text}"
            );
        }
    }
    let pages = dir.path().join("pages");
    let output = patd()
        .args(["man", "--dir", pages.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let retire = std::fs::read_to_string(pages.join("patd-key-retire.1")).unwrap();
    assert!(retire.contains("current"), "{retire}");

    // Every flag has its help; --database names both backends.
    let help = patd().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("sqlite://PATH") && help.contains("postgres://"),
        "{help}"
    );
}
