//! Rate limits: per client_id and API version, and on failed exchanges per (client id, IP) and,
//! for ids that name no PAT, per IP.

use crate::cli::{exchange, ServerProcess};
use crate::helpers::*;
use patd_core::ids::random_hex_id;
use patd_core::secret::Secret;
use patd_server::ratelimit::Limit;
use reqwest::Response;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn one_request_over_the_limit_gets_429_and_retry_after_is_honest() {
    let app = spawn_app_with(|config| {
        config.rate_limit = Limit::PerWindow {
            requests: 5,
            seconds: 2,
        }
    })
    .await;
    // The admin token's exchange happened at start; the list budget is separate.
    for _ in 0..5 {
        assert_eq!(app.list(&app.admin_token, CLASSIC, "").await.status(), 200);
    }
    let response = app.list(&app.admin_token, CLASSIC, "").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["content-type"], "application/json");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": " Rate Limit Exceeded "}));
    // Another API version has its own budget.
    assert_eq!(app.list(&app.admin_token, AWARE, "").await.status(), 200);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.list(&app.admin_token, CLASSIC, "").await.status(), 200);
}

/// A secret whose checksum holds but that belongs to no PAT: a real guess, counted as a failure.
fn wrong_secret() -> String {
    Secret::generate(&mut rand::rng()).expose().to_owned()
}

/// A well-formed client id that names no PAT.
fn unknown_id() -> String {
    random_hex_id(&mut rand::rng())
}

async fn attempt(app: &TestApp, id: &str, secret: &str) -> Response {
    app.token_form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ])
    .await
}

/// Asserts the contract's 429: its body, and a wait of whole seconds, at least one.
async fn assert_limited(response: Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": " Rate Limit Exceeded "}));
}

/// Three failures per (client id, IP), and a higher ceiling of `unknown` for ids naming no PAT.
async fn spawn_limited(unknown: u32) -> TestApp {
    spawn_app_with(|config| {
        config.exchange_failure_limit = Some(Limit::PerWindow {
            requests: 3,
            seconds: 60,
        });
        config.unknown_client_failure_limit = Some(Limit::PerWindow {
            requests: unknown,
            seconds: 60,
        });
    })
    .await
}

#[tokio::test]
async fn a_correct_secret_still_works_after_its_pat_used_up_its_failures() {
    let app = spawn_limited(100).await;
    let (id, secret) = (&app.bootstrap.id, &app.bootstrap.secret);
    let wrong = wrong_secret();
    for _ in 0..3 {
        assert_eq!(attempt(&app, id, &wrong).await.status(), 401);
    }
    assert_limited(attempt(&app, id, &wrong).await).await;
    // The failure limit never refuses the right secret, and a success does not lift it.
    assert_eq!(attempt(&app, id, secret).await.status(), 200);
    assert_limited(attempt(&app, id, &wrong_secret()).await).await;
    assert_eq!(attempt(&app, id, secret).await.status(), 200);
}

#[tokio::test]
async fn another_pats_failures_from_the_same_ip_are_counted_apart() {
    let app = spawn_limited(100).await;
    let wrong = wrong_secret();
    for _ in 0..3 {
        assert_eq!(attempt(&app, &app.bootstrap.id, &wrong).await.status(), 401);
    }
    assert_limited(attempt(&app, &app.bootstrap.id, &wrong).await).await;
    let other = app
        .actor("other", "USER", &[], &["sp:scopes:all"])
        .await
        .pat;
    for _ in 0..3 {
        assert_eq!(attempt(&app, &other.id, &wrong).await.status(), 401);
    }
    assert_limited(attempt(&app, &other.id, &wrong).await).await;
    assert_eq!(attempt(&app, &other.id, &other.secret).await.status(), 200);
}

#[tokio::test]
async fn unknown_client_ids_from_one_ip_are_refused_only_past_their_higher_ceiling() {
    let app = spawn_limited(8).await;
    let wrong = wrong_secret();
    // More than the per-client limit of three, each id new: all plain 401 up to the ceiling.
    for _ in 0..8 {
        assert_eq!(attempt(&app, &unknown_id(), &wrong).await.status(), 401);
    }
    assert_limited(attempt(&app, &unknown_id(), &wrong).await).await;
    // A known PAT from the same IP is untouched: its secret works and its failures are its own.
    let (id, secret) = (&app.bootstrap.id, &app.bootstrap.secret);
    assert_eq!(attempt(&app, id, secret).await.status(), 200);
    assert_eq!(attempt(&app, id, &wrong).await.status(), 401);
}

#[tokio::test]
async fn secrets_failing_the_checksum_and_malformed_ids_never_lead_to_429() {
    let app = spawn_limited(3).await;
    let (id, secret) = (&app.bootstrap.id, &app.bootstrap.secret);
    let typo = typo(secret);
    let unknown = unknown_id();
    for _ in 0..20 {
        assert_eq!(attempt(&app, id, &typo).await.status(), 401);
        assert_eq!(attempt(&app, &unknown, &typo).await.status(), 401);
        assert_eq!(attempt(&app, "not-a-pat-id", secret).await.status(), 401);
        assert_eq!(
            attempt(&app, &id.to_uppercase(), secret).await.status(),
            401
        );
    }
    assert_eq!(attempt(&app, id, secret).await.status(), 200);
    // None of them was counted: the PAT's three failures are all still there.
    let wrong = wrong_secret();
    for _ in 0..3 {
        assert_eq!(attempt(&app, id, &wrong).await.status(), 401);
    }
    assert_limited(attempt(&app, id, &wrong).await).await;
}

#[tokio::test]
async fn with_the_rate_limit_off_failed_exchanges_are_never_limited() {
    let app = spawn_app_with(|config| {
        config.rate_limit = Limit::Off;
        config.exchange_failure_limit = None;
        config.unknown_client_failure_limit = None;
    })
    .await;
    let (id, secret) = (&app.bootstrap.id, &app.bootstrap.secret);
    let wrong = wrong_secret();
    // Past both defaults: 10 per client id and IP, 100 per IP for unknown ids.
    for _ in 0..12 {
        assert_eq!(attempt(&app, id, &wrong).await.status(), 401);
    }
    for _ in 0..105 {
        assert_eq!(attempt(&app, &unknown_id(), &wrong).await.status(), 401);
    }
    assert_eq!(attempt(&app, id, secret).await.status(), 200);
}

#[tokio::test]
async fn the_failure_limit_flags_are_off_with_rate_limit_off_unless_given() {
    let wrong = wrong_secret();
    let status = |response: reqwest::Response| response.status().as_u16();

    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let server = ServerProcess::start(&database, &["--rate-limit", "off"], "info");
    let (id, _) = server.bootstrap().unwrap();
    for _ in 0..12 {
        assert_eq!(status(exchange(&server.base, &id, &wrong).await), 401);
    }
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let flags = [
        "--rate-limit",
        "off",
        "--exchange-failure-limit",
        "2/60",
        "--unknown-client-failure-limit",
        "3/60",
    ];
    let server = ServerProcess::start(&database, &flags, "info");
    let (id, secret) = server.bootstrap().unwrap();
    for _ in 0..2 {
        assert_eq!(status(exchange(&server.base, &id, &wrong).await), 401);
    }
    assert_eq!(status(exchange(&server.base, &id, &wrong).await), 429);
    for _ in 0..3 {
        assert_eq!(
            status(exchange(&server.base, &unknown_id(), &wrong).await),
            401
        );
    }
    assert_eq!(
        status(exchange(&server.base, &unknown_id(), &wrong).await),
        429
    );
    assert_eq!(status(exchange(&server.base, &id, &secret).await), 200);
}

#[tokio::test]
async fn successful_exchanges_do_not_count_as_failures() {
    let app = spawn_app_with(|config| {
        config.exchange_failure_limit = Some(Limit::PerWindow {
            requests: 2,
            seconds: 60,
        })
    })
    .await;
    for _ in 0..10 {
        app.exchange(&app.bootstrap.id, &app.bootstrap.secret).await;
    }
}

/// Issue 17, item 6: knowing only a victim's PAT id, wrong secrets from many source addresses
/// (127.0.0.2 and up are all loopback on Linux) must not spend the victim's request budget.
#[tokio::test]
async fn failed_exchanges_from_many_addresses_do_not_spend_the_owners_budget() {
    let app = spawn_app_with(|config| {
        config.rate_limit = Limit::PerWindow {
            requests: 100,
            seconds: 10,
        };
        config.exchange_failure_limit = Some(Limit::PerWindow {
            requests: 10,
            seconds: 60,
        });
    })
    .await;
    let victim = &app.bootstrap.id;
    for host in 2..=13u8 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, host]))
            .build()
            .unwrap();
        for _ in 0..10 {
            let response = client
                .post(app.url("/oauth/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", victim.as_str()),
                    ("client_secret", wrong_secret().as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "from 127.0.0.{host}");
        }
    }
    // 120 failures: over the per-client budget of 100 had they been charged to it.
    assert_eq!(
        attempt(&app, victim, &app.bootstrap.secret).await.status(),
        200
    );
}
