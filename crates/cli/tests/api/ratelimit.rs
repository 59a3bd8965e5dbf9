//! Rate limits: per client_id and API version, and on failed exchanges per IP.

use crate::helpers::*;
use patd_server::ratelimit::Limit;
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

#[tokio::test]
async fn failed_exchanges_are_limited_per_ip() {
    let app = spawn_app_with(|config| {
        config.exchange_failure_limit = Limit::PerWindow {
            requests: 3,
            seconds: 60,
        }
    })
    .await;
    let wrong = [
        ("grant_type", "client_credentials"),
        ("client_id", app.bootstrap.id.as_str()),
        ("client_secret", "patd_wrong"),
    ];
    for _ in 0..3 {
        assert_eq!(app.token_form(&wrong).await.status(), 401);
    }
    let response = app.token_form(&wrong).await;
    assert_eq!(response.status(), 429);
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Until it refills, even a good secret from that IP is refused.
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", app.bootstrap.id.as_str()),
        ("client_secret", app.bootstrap.secret.as_str()),
    ];
    assert_eq!(app.token_form(&good).await.status(), 429);
}

#[tokio::test]
async fn successful_exchanges_do_not_count_as_failures() {
    let app = spawn_app_with(|config| {
        config.exchange_failure_limit = Limit::PerWindow {
            requests: 2,
            seconds: 60,
        }
    })
    .await;
    for _ in 0..10 {
        app.exchange(&app.bootstrap.id, &app.bootstrap.secret).await;
    }
}
