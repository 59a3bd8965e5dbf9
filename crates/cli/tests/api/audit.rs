//! The audit trail (EXTENSIONS E4): every change with its actor, target and source address,
//! nothing for a change rolled back, failed exchanges folded per minute, who sees which events,
//! retention, `--audit-log stdout` and `patd audit list`.

use crate::cli::{patd, run_json, ServerProcess};
use crate::helpers::*;
use patd_server::proxies::TrustedProxies;
use patd_server::ratelimit::Limit;
use reqwest::Response;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EVENTS: &str = "/patd/v1/audit-events";

async fn events_response(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Response {
    app.client
        .get(app.url(EVENTS))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap()
}

async fn events(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let response = events_response(app, token, query).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The events about one target, oldest first.
async fn about(app: &TestApp, target: &str) -> Vec<Value> {
    let filter = format!("target.id eq \"{target}\"");
    events(
        app,
        &app.admin_token,
        &[("filters", &filter), ("sorters", "time")],
    )
    .await
}

/// Waits for the failed exchanges counted so far to be written (they are flushed every 2 s).
async fn until<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never happened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn guess() -> String {
    patd_core::secret::Secret::generate(&mut rand::rng())
        .expose()
        .to_owned()
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor_target_and_source_address() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
        config.rate_limit = Limit::Off;
    })
    .await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    // Created behind a proxy that names the client, by a client that names itself.
    let response = app
        .client
        .post(app.url(CLASSIC))
        .bearer_auth(&alice.token)
        .header("x-forwarded-for", "203.0.113.7")
        .header("user-agent", "audit-test/1.0")
        .json(&json!({ "name": "ci-deploy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tracking = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let patched = app
        .client
        .patch(app.url(&format!("{CLASSIC}/{id}")))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json-patch+json")
        .header("x-forwarded-for", "203.0.113.8")
        .json(&json!([{ "op": "replace", "path": "/name", "value": "ci-deploy-2" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    // Used from a new address: one pat.used, for the day and the address together.
    let used = app
        .client
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", "198.51.100.9")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    let failed = app
        .client
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", "192.0.2.66")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", guess().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    until(|| async { about(&app, &id).await.len() >= 4 }).await;
    let deleted = app
        .client
        .delete(app.url(&format!("{CLASSIC}/{id}")))
        .bearer_auth(&alice.token)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    let trail = about(&app, &id).await;
    let types: Vec<&str> = trail
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "pat.created",
            "pat.updated",
            "pat.used",
            "auth.failed",
            "pat.deleted"
        ],
        "{trail:#?}"
    );
    let alice_id = alice.identity.id.as_str();
    for event in &trail {
        assert!(is_hex32(event["id"].as_str().unwrap()));
        assert_eq!(event["target"]["type"], "PERSONAL_ACCESS_TOKEN");
        assert_eq!(event["target"]["ownerId"], alice_id);
        assert!(is_millis_timestamp(&event["time"]), "{event}");
        assert_eq!(
            keys_of(event),
            [
                "actor",
                "details",
                "id",
                "outcome",
                "sourceIp",
                "target",
                "time",
                "trackingId",
                "type",
                "userAgent"
            ]
        );
    }
    let created_event = &trail[0];
    assert_eq!(
        created_event["actor"],
        json!({ "type": "IDENTITY", "id": alice_id, "name": "alice" })
    );
    assert_eq!(created_event["details"]["viaPat"], alice.pat.id.as_str());
    assert_eq!(created_event["target"]["name"], "ci-deploy");
    assert_eq!(created_event["sourceIp"], "203.0.113.7");
    assert_eq!(created_event["userAgent"], "audit-test/1.0");
    assert_eq!(created_event["trackingId"], tracking.as_str());
    assert_eq!(created_event["outcome"], "SUCCESS");

    assert_eq!(trail[1]["details"]["paths"], json!(["/name"]));
    assert_eq!(trail[1]["target"]["name"], "ci-deploy-2");
    assert_eq!(trail[1]["sourceIp"], "203.0.113.8");

    assert_eq!(trail[2]["sourceIp"], "198.51.100.9");
    assert_eq!(trail[2]["actor"]["id"], alice_id);
    assert_eq!(trail[2]["details"]["viaPat"], id.as_str());

    assert_eq!(
        trail[3]["actor"],
        json!({ "type": "ANONYMOUS", "id": null, "name": null })
    );
    assert_eq!(trail[3]["outcome"], "FAILURE");
    assert_eq!(trail[3]["sourceIp"], "192.0.2.66");
    assert_eq!(trail[3]["details"]["count"], 1);

    assert_eq!(trail[4]["sourceIp"], "203.0.113.9");
    assert_eq!(trail[4]["actor"]["id"], alice_id);

    // The command line acts as SYSTEM: the identity it made, and the first signing key.
    let identity = about(&app, alice_id).await;
    assert_eq!(identity[0]["type"], "identity.created");
    assert_eq!(identity[0]["actor"]["type"], "SYSTEM");
    assert_eq!(identity[0]["target"]["type"], "IDENTITY");
    let keys = events(
        &app,
        &app.admin_token,
        &[("filters", r#"type eq "key.created""#)],
    )
    .await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["target"]["type"], "SIGNING_KEY");
}

#[tokio::test]
async fn a_change_that_is_rolled_back_leaves_no_event() {
    let app = spawn_app_with(|config| config.max_tokens_per_owner = 3).await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let first = app
        .create_ok(&alice.token, CLASSIC, json!({ "name": "one" }))
        .await;
    app.create_ok(&alice.token, CLASSIC, json!({ "name": "two" }))
        .await;
    let created_by_alice = || async {
        let filter = format!(
            "type eq \"pat.created\" and target.ownerId eq \"{}\"",
            alice.identity.id
        );
        events(&app, &app.admin_token, &[("filters", &filter)])
            .await
            .len()
    };
    // login, one, two.
    assert_eq!(created_by_alice().await, 3);
    // A taken name, then the per-owner limit: neither PAT nor event.
    let taken = app
        .create(&alice.token, CLASSIC, json!({ "name": "one" }))
        .await;
    assert_eq!(taken.status(), 400);
    let over = app
        .create(&alice.token, CLASSIC, json!({ "name": "four" }))
        .await;
    assert_eq!(over.status(), 400);
    assert_eq!(created_by_alice().await, 3);
    // A rename onto a taken name is rolled back with its event.
    let first_id = first["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &alice.token,
            CLASSIC,
            first_id,
            json!([{ "op": "replace", "path": "/name", "value": "two" }]),
        )
        .await;
    assert_eq!(renamed.status(), 400);
    let trail = about(&app, first_id).await;
    assert!(
        trail.iter().all(|event| event["type"] != "pat.updated"),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn a_flood_of_failed_exchanges_writes_one_row_per_client_and_address_a_minute() {
    let app = spawn_app_with(|config| config.rate_limit = Limit::Off).await;
    let id = app.bootstrap.id.clone();
    let unknown = patd_core::ids::random_hex_id(&mut rand::rng());
    let bad = guess();
    let started = time::OffsetDateTime::now_utc();
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let attempt = |client: String| {
        let app = &app;
        let bad = bad.clone();
        async move {
            let response = app
                .token_form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client),
                    ("client_secret", &bad),
                ])
                .await;
            assert_eq!(response.status(), 401);
        }
    };
    // 10,000 against one PAT and 2,000 with an id of no PAT, 32 at a time.
    let clients: Vec<String> = std::iter::repeat_n(id.clone(), 10_000)
        .chain(std::iter::repeat_n(unknown.clone(), 2_000))
        .collect();
    for chunk in clients.chunks(32) {
        futures::future::join_all(chunk.iter().cloned().map(&attempt)).await;
        sent.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
    }
    let minutes = {
        let elapsed = time::OffsetDateTime::now_utc() - started;
        // The flood may straddle minute boundaries: one row each.
        1 + elapsed.whole_minutes() as usize + 1
    };
    let failed = || async {
        events(
            &app,
            &app.admin_token,
            &[("filters", r#"type eq "auth.failed""#)],
        )
        .await
    };
    let total = |rows: &[Value], target: Option<&str>| -> i64 {
        rows.iter()
            .filter(|row| row["target"]["id"].as_str() == target)
            .map(|row| row["details"]["count"].as_i64().unwrap())
            .sum()
    };
    until(|| async {
        let rows = failed().await;
        total(&rows, Some(&id)) == 10_000 && total(&rows, None) == 2_000
    })
    .await;
    let rows = failed().await;
    let for_pat = rows
        .iter()
        .filter(|row| row["target"]["id"] == id.as_str())
        .count();
    let for_unknown = rows.iter().filter(|row| row["target"].is_null()).count();
    assert!(
        for_pat >= 1 && for_pat <= minutes,
        "{for_pat} rows for the PAT"
    );
    assert!(
        for_unknown >= 1 && for_unknown <= minutes,
        "{for_unknown} rows for unknown ids"
    );
    let unknown_row = rows.iter().find(|row| row["target"].is_null()).unwrap();
    assert_eq!(unknown_row["details"]["unknownClient"], true);
    assert_eq!(unknown_row["sourceIp"], "127.0.0.1");
    // The made-up id itself is nowhere in the table.
    assert!(!serde_json::to_string(&rows).unwrap().contains(&unknown));
    // `not` is the complement even where the column is empty (anonymous actors have no id).
    let negated = events(
        &app,
        &app.admin_token,
        &[(
            "filters",
            r#"type eq "auth.failed" and not actor.id eq "nobody""#,
        )],
    )
    .await;
    assert_eq!(negated.len(), rows.len());
}

#[tokio::test]
async fn users_see_their_own_events_and_auditors_see_all() {
    let app = spawn_app().await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let bob = app.actor("bob", "USER", &[], &["sp:scopes:all"]).await;
    let auditor = app
        .actor(
            "auditor",
            "USER",
            &["idn:audit-events:read"],
            &["sp:scopes:all"],
        )
        .await;
    let alices = app
        .create_ok(&alice.token, CLASSIC, json!({ "name": "mine" }))
        .await;
    let bobs = app
        .create_ok(&bob.token, CLASSIC, json!({ "name": "his" }))
        .await;
    let alice_id = alice.identity.id.as_str();
    let seen = events(&app, &alice.token, &[]).await;
    assert!(!seen.is_empty());
    for event in &seen {
        let own = event["actor"]["id"] == alice_id || event["target"]["ownerId"] == alice_id;
        assert!(own, "alice sees {event}");
    }
    assert!(seen
        .iter()
        .any(|event| event["target"]["id"] == alices["id"]));
    // Filters cannot widen what a caller sees.
    let filter = format!("target.id eq \"{}\"", bobs["id"].as_str().unwrap());
    assert!(events(&app, &alice.token, &[("filters", &filter)])
        .await
        .is_empty());
    // The auditor's right and ORG_ADMIN see every event, newest first by default.
    for token in [&auditor.token, &app.admin_token] {
        let all = events(&app, token, &[("filters", &filter)]).await;
        assert_eq!(all.len(), 1);
        let everything = events(&app, token, &[]).await;
        let times: Vec<_> = everything
            .iter()
            .map(|event| parse_ts(&event["time"]))
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
    }
    // Neither right: a token of a PAT scoped to reading everyone's PATs only.
    let reader = app
        .actor(
            "reader",
            "ORG_ADMIN",
            &[],
            &["sp:all-personal-access-tokens:read"],
        )
        .await;
    let (status, _, _) = error_of(events_response(&app, &reader.token, &[]).await).await;
    assert_eq!(status, 403);
    // Paging, the total, and a filter this collection does not support.
    let response =
        events_response(&app, &app.admin_token, &[("count", "true"), ("limit", "2")]).await;
    let total: usize = response.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(total > 2);
    for bad in [
        r#"name eq "x""#,
        r#"type eq "pat.exploded""#,
        r#"time gt "yesterday""#,
    ] {
        let (status, code, _) =
            error_of(events_response(&app, &app.admin_token, &[("filters", bad)]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{bad}"
        );
    }
    let (status, _, _) =
        error_of(events_response(&app, &app.admin_token, &[("sorters", "name")]).await).await;
    assert_eq!(status, 400);
    let since = events(
        &app,
        &app.admin_token,
        &[("filters", r#"type in ("pat.created", "pat.deleted") and time ge "2000-01-01T00:00:00Z" and outcome eq "SUCCESS""#)],
    )
    .await;
    assert!(since.iter().all(|event| event["type"] == "pat.created"));
}

#[tokio::test]
async fn events_past_the_retention_are_pruned_when_a_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let store = patd_store::connect(&url).await.unwrap();
    // Written as aggregates, the one way to give an event a time of one's choosing; no
    // identity is made, so the node still bootstraps the database.
    let mut old = test_event();
    old.time = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let recent = test_event();
    store
        .record_auth_failures(&[
            (old.clone(), 1, "test/old".to_owned()),
            (recent.clone(), 1, "test/recent".to_owned()),
        ])
        .await
        .unwrap();
    let app = spawn_app_full_on(&url, |_| {}).await;
    until(|| async {
        let all = events(&app, &app.admin_token, &[("limit", "250")]).await;
        !all.iter().any(|event| event["id"] == old.id.as_str())
    })
    .await;
    let all = events(&app, &app.admin_token, &[]).await;
    assert!(all.iter().any(|event| event["id"] == recent.id.as_str()));
}

#[tokio::test]
async fn audit_log_stdout_and_the_audit_list_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let server = ServerProcess::start(&db, &["--audit-log", "stdout"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let token = crate::cli::exchange(&server.base, &id, &secret).await;
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    let created: Value = reqwest::Client::new()
        .post(server.url(CLASSIC))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({ "name": "siem" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created_id = created["id"].as_str().unwrap().to_owned();
    // A failed exchange just before the stop is written by the shutdown flush.
    let failed = crate::cli::exchange(&server.base, &id, &guess()).await;
    assert_eq!(failed.status(), 401);
    let (ok, stdout, _) = server.stop();
    assert!(ok);
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let siem = lines
        .iter()
        .find(|event| {
            event["type"] == "pat.created" && event["target"]["id"] == created_id.as_str()
        })
        .unwrap_or_else(|| panic!("no pat.created line on stdout: {stdout}"));
    assert_eq!(siem["actor"]["type"], "IDENTITY");
    assert!(!stdout.contains(&secret) || stdout.contains("bootstrap client_id="));

    let listed = run_json(&[
        "audit",
        "list",
        "--pat",
        &created_id,
        "--json",
        "--database",
        &db,
    ]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["type"], "pat.created");
    let failures = run_json(&[
        "audit",
        "list",
        "--type",
        "auth.failed",
        "--json",
        "--database",
        &db,
    ]);
    assert_eq!(failures[0]["details"]["count"], 1);
    let future = run_json(&[
        "audit",
        "list",
        "--since",
        "2999-01-01T00:00:00Z",
        "--json",
        "--database",
        &db,
    ]);
    assert_eq!(future, json!([]));
    let limited = run_json(&["audit", "list", "--limit", "2", "--json", "--database", &db]);
    assert_eq!(limited.as_array().unwrap().len(), 2);
    let text = patd()
        .args(["audit", "list", "--database", &db])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text
        .lines()
        .any(|line| line.contains("pat.created") && line.contains(&created_id)));
    let bad = patd()
        .args(["audit", "list", "--type", "pat.exploded", "--database", &db])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pat.exploded"));
}

/// The stored `last_used_ips` of a PAT.
async fn recent_ips(url: &str, id: &str) -> Vec<String> {
    // The id is 32 hex characters: safe to put in the text on either backend.
    let sql = format!("SELECT last_used_ips FROM pats WHERE id = '{id}'");
    let text: String = if on_postgres() {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap()
    };
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn uses_from_new_addresses_are_audited_and_the_last_five_kept() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let app = spawn_app_full_on(&url, |config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
        config.rate_limit = Limit::Off;
    })
    .await;
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({ "name": "roaming" }))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let exchange_from = |ip: String| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            let response = app
                .client
                .post(app.url("/oauth/token"))
                .header("x-forwarded-for", ip)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // Seven addresses, each used twice: one pat.used per address, the first also the daily one.
    for round in 0..2 {
        for host in 1..=7 {
            exchange_from(format!("198.51.100.{host}")).await;
        }
        let _ = round;
    }
    let used = || async {
        about(&app, &id)
            .await
            .into_iter()
            .filter(|event| event["type"] == "pat.used")
            .collect::<Vec<_>>()
    };
    until(|| async { used().await.len() >= 7 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = used().await;
    assert_eq!(used.len(), 7, "{used:#?}");
    // Uses written in one batch share a millisecond, so their order in the list is by id.
    let mut addresses: Vec<&str> = used
        .iter()
        .map(|e| e["sourceIp"].as_str().unwrap())
        .collect();
    addresses.sort();
    let expected: Vec<String> = (1..=7).map(|host| format!("198.51.100.{host}")).collect();
    assert_eq!(addresses, expected);
    assert!(used
        .iter()
        .all(|event| event["details"]["reason"] == "newSourceIp"));
    assert_eq!(
        recent_ips(&url, &id).await,
        [
            "198.51.100.7",
            "198.51.100.6",
            "198.51.100.5",
            "198.51.100.4",
            "198.51.100.3"
        ]
    );
}

#[tokio::test]
async fn creates_committed_together_each_have_their_event() {
    let app = spawn_app_with(|config| config.max_tokens_per_owner = 1_000).await;
    // Sixty at once: on SQLite they share group commits; ten of them reuse a name and fail.
    let results = futures::future::join_all((0..60).map(|index| {
        let name = format!("burst-{}", index % 50);
        let app = &app;
        async move {
            app.create(&app.admin_token, CLASSIC, json!({ "name": name }))
                .await
        }
    }))
    .await;
    let mut created = Vec::new();
    for response in results {
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            created.push(body["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(response.status(), 400);
        }
    }
    assert_eq!(created.len(), 50);
    let events = events(
        &app,
        &app.admin_token,
        &[("filters", r#"type eq "pat.created""#), ("limit", "250")],
    )
    .await;
    let mut audited: Vec<String> = events
        .iter()
        .filter(|event| {
            event["target"]["name"]
                .as_str()
                .unwrap()
                .starts_with("burst-")
        })
        .map(|event| event["target"]["id"].as_str().unwrap().to_owned())
        .collect();
    audited.sort();
    created.sort();
    assert_eq!(audited, created);
}
