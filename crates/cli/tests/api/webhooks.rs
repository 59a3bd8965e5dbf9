//! Webhooks and the outbox (EXTENSIONS E7) against a receiver in the test: the routes and their
//! right, private targets, Standard Webhooks signatures checked by the test's own HMAC code
//! (written from the specification, not patd's), retries with growing gaps, order, redelivery,
//! a kill -9 with a delivery pending, and two nodes sharing the outbox.

use crate::helpers::*;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map_or("", |(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on a loopback port: answers the statuses of `script` in turn (then 200),
/// after `delay`, and records every request.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(script: Vec<u16>, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let sink = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (sink, script) = (sink.clone(), script.clone());
                tokio::spawn(async move {
                    let Some(received) = read_request(&mut stream).await else {
                        return;
                    };
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    sink.lock().unwrap().push(received);
                    tokio::time::sleep(delay).await;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Receiver { url, got }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived, at most `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "{} of {count} requests arrived within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut bytes = Vec::new();
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).ok()?;
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        at: Instant::now(),
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

/// Checks a request's Standard Webhooks signature with `secret`, from the specification: the
/// key is the base64 after `whsec_`, the signed content `id.timestamp.body`, the header a
/// space-separated list of `v1,<base64 HMAC-SHA256>`; the timestamp within five minutes.
pub fn verify_signature(secret: &str, request: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let (id, timestamp) = (
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
    );
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return false;
    };
    if (time::OffsetDateTime::now_utc().unix_timestamp() - seconds).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    request
        .header("webhook-signature")
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

pub async fn create_webhook(
    app_base: &str,
    token: &str,
    url: &str,
    events: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{app_base}/patd/v1/webhooks"))
        .bearer_auth(token)
        .json(&json!({"url": url, "events": events, "description": "test receiver"}))
        .send()
        .await
        .unwrap()
}

fn quick(config: &mut patd_server::ServerConfig) {
    config.webhook_allow_private = true;
    config.outbox_poll = Duration::from_millis(50);
    config.outbox_retry_base = Duration::from_millis(400);
}

#[tokio::test]
async fn webhook_routes_need_their_right_and_refuse_private_targets() {
    let app = spawn_app().await;
    let user = app.actor("user", "USER", &[], &["sp:scopes:all"]).await;
    let hooks = app.url("/patd/v1/webhooks");
    let response =
        create_webhook(&app.base, &user.token, "https://example.com/", json!(["*"])).await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 403);
    assert!(cause.contains("patd:webhooks:manage"), "{cause}");
    for (url, events, want) in [
        (
            "http://127.0.0.1:9/hook",
            json!(["*"]),
            "--webhook-allow-private",
        ),
        ("http://169.254.169.254/", json!(["*"]), "private"),
        ("http://localhost/", json!(["*"]), "private"),
        ("ftp://example.com/", json!(["*"]), "http or https"),
        ("https://example.com/", json!([]), "events"),
        ("https://example.com/", json!(["auth.failed"]), "events"),
        ("https://example.com/", json!(["pat.unknown"]), "events"),
    ] {
        let (status, _, cause) =
            error_of(create_webhook(&app.base, &app.admin_token, url, events.clone()).await).await;
        assert_eq!(status, 400, "{url} {events}");
        assert!(cause.contains(want), "{url}: {cause}");
    }
    let response = create_webhook(
        &app.base,
        &app.admin_token,
        "https://hooks.example.com/patd",
        json!(["pat.expiring", "pat.deleted"]),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&secret[6..])
            .unwrap()
            .len(),
        32
    );
    let id = created["id"].as_str().unwrap();
    let listed: Vec<Value> = app
        .client
        .get(&hooks)
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].get("secret").is_none(),
        "a listed webhook shows its secret"
    );
    let patched: Value = app
        .client
        .patch(format!("{hooks}/{id}"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"events": ["*"], "description": "all"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["url"], "https://hooks.example.com/patd");
    let private = app
        .client
        .patch(format!("{hooks}/{id}"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"url": "http://10.0.0.1/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 400);
    let deleted = app
        .client
        .delete(format!("{hooks}/{id}"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = app
        .client
        .get(format!("{hooks}/{id}"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let user_list = app
        .client
        .get(&hooks)
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(user_list.status(), 403);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_three_times_signed_with_growing_gaps() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![500, 500], Duration::ZERO).await;
    let created: Value = create_webhook(
        &app.base,
        &app.admin_token,
        &receiver.url,
        json!(["pat.created", "pat.deleted"]),
    )
    .await
    .json()
    .await
    .unwrap();
    let (hook, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let pat = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "told"}))
        .await;
    let got = receiver.wait_for(3, Duration::from_secs(15)).await;
    let pat_id = pat["id"].as_str().unwrap();
    for request in &got[..3] {
        assert!(
            verify_signature(secret, request),
            "a bad signature: {:?}",
            request.headers
        );
        assert!(!verify_signature(
            "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            request
        ));
        assert_eq!(request.header("webhook-id"), got[0].header("webhook-id"));
        let body = request.json();
        assert_eq!(body["type"], "pat.created");
        assert_eq!(body["data"]["pat"]["id"], pat_id);
        assert_eq!(body["data"]["pat"]["name"], "told");
        assert!(body["timestamp"].is_string());
        assert!(
            !request.body.contains(pat["secret"].as_str().unwrap()),
            "a secret in a payload"
        );
    }
    let (first, second) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(
        second > first,
        "the gaps do not grow: {first:?} then {second:?}"
    );
    assert!(
        first >= Duration::from_millis(250),
        "retried too soon: {first:?}"
    );

    // The delivery log, then the next event in order, then a redelivery of the first.
    assert_eq!(
        app.delete(&app.admin_token, CLASSIC, pat_id).await.status(),
        204
    );
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got[3].json()["type"], "pat.deleted");
    let log: Vec<Value> = app
        .client
        .get(app.url(&format!("/patd/v1/webhooks/{hook}/deliveries")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    let created_delivery = log
        .iter()
        .find(|d| d["eventType"] == "pat.created")
        .unwrap();
    assert_eq!(created_delivery["status"], "delivered");
    assert_eq!(created_delivery["attempts"], 3);
    assert_eq!(created_delivery["lastStatus"], 200);
    let again = app
        .client
        .post(app.url(&format!(
            "/patd/v1/webhooks/{hook}/deliveries/{}/redeliver",
            created_delivery["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    let got = receiver.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(got[4].header("webhook-id"), got[0].header("webhook-id"));
    assert!(verify_signature(secret, &got[4]));
}

#[tokio::test]
async fn a_webhook_that_was_deleted_gets_nothing_more() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    let created: Value = create_webhook(&app.base, &app.admin_token, &receiver.url, json!(["*"]))
        .await
        .json()
        .await
        .unwrap();
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "one"}))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let id = created["id"].as_str().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/patd/v1/webhooks/{id}")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "two"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
}

/// The audit events of `kind` about PAT `id`.
pub async fn events_about(app: &TestApp, kind: &str, id: &str) -> Vec<Value> {
    app.client
        .get(app.url(&format!(
            "/patd/v1/audit-events?filters=type%20eq%20%22{kind}%22%20and%20target.id%20eq%20%22{id}%22"
        )))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn expiry_notices_come_once_per_threshold_on_every_node_and_again_when_the_expiry_moves() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let clock = patd_server::state::Clock::default();
    let with_clock = |clock: patd_server::state::Clock| {
        move |config: &mut patd_server::ServerConfig| {
            quick(config);
            config.expiry_scan_interval = Duration::from_millis(50);
            config.clock = clock;
        }
    };
    let a = spawn_app_full_on(&url, with_clock(clock.clone())).await;
    // A second node on the same database, scanning by the same clock.
    let b = PreparedNode::new(&url, with_clock(clock.clone()), |store| store).await;
    b.serve(std::future::pending());
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    let hook: Value = create_webhook(
        &a.base,
        &a.admin_token,
        &receiver.url,
        json!(["pat.expiring", "pat.expired"]),
    )
    .await
    .json()
    .await
    .unwrap();
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let pat = a
        .create_ok(
            &a.admin_token,
            AWARE,
            json!({"name": "expiring", "expirationDate": patd_proto::timestamp::format(expires)}),
        )
        .await;
    let id = pat["id"].as_str().unwrap();
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    settle().await;
    assert!(
        events_about(&a, "pat.expiring", id).await.is_empty(),
        "a notice 30 days ahead"
    );

    clock.advance(time::Duration::days(24));
    settle().await;
    settle().await;
    let week = events_about(&a, "pat.expiring", id).await;
    assert_eq!(week.len(), 1, "{week:?}");
    assert_eq!(week[0]["details"]["daysLeft"], 6);
    assert_eq!(week[0]["actor"]["type"], "SYSTEM");

    clock.advance(time::Duration::days(5) + time::Duration::hours(12));
    settle().await;
    settle().await;
    assert_eq!(events_about(&a, "pat.expiring", id).await.len(), 2);
    clock.advance(time::Duration::days(1));
    settle().await;
    settle().await;
    assert_eq!(events_about(&a, "pat.expired", id).await.len(), 1);
    // A node started later (a restart) finds the markers and sends nothing again.
    let c = PreparedNode::new(&url, with_clock(clock.clone()), |store| store).await;
    c.serve(std::future::pending());
    settle().await;
    settle().await;
    assert_eq!(events_about(&a, "pat.expiring", id).await.len(), 2);
    assert_eq!(events_about(&a, "pat.expired", id).await.len(), 1);
    // Each notice reached the webhook once, with the PAT.
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["pat.expiring", "pat.expiring", "pat.expired"]);
    assert!(got.iter().all(|r| r.json()["data"]["pat"]["id"] == id));
    assert!(verify_signature(hook["secret"].as_str().unwrap(), &got[2]));

    // Moving the expiry re-arms the notices: the new date is 3 days past the clock.
    let moved = clock.now() + time::Duration::days(3);
    let response = a
        .patch(&a.admin_token, AWARE, id, json!([{"op": "replace", "path": "/expirationDate", "value": patd_proto::timestamp::format(moved)}]))
        .await;
    assert_eq!(response.status(), 200);
    settle().await;
    settle().await;
    let notices = events_about(&a, "pat.expiring", id).await;
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert_eq!(notices[0]["details"]["daysLeft"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_when_patd_is_killed_arrives_after_it_restarts_exactly_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let receiver = Receiver::start(vec![500], Duration::ZERO).await;
    let flags = ["--webhook-allow-private", "--rate-limit", "off"];
    let mut server = crate::cli::ServerProcess::start(&database, &flags, "info");
    let (id, secret) = server.bootstrap().unwrap();
    let token = crate::cli::access_token(&server.base, &id, &secret).await;
    let hook: Value = create_webhook(&server.base, &token, &receiver.url, json!(["pat.created"]))
        .await
        .json()
        .await
        .unwrap();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let mut pats = Vec::new();
    for name in ["first", "second", "third"] {
        let created: Value = client
            .post(server.url(CLASSIC))
            .bearer_auth(&token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pats.push(created["id"].as_str().unwrap().to_owned());
    }
    // The first attempt is answered 500 and its outcome stored; then kill -9.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let log_url = server.url(&format!("/patd/v1/webhooks/{hook_id}/deliveries"));
    let started = Instant::now();
    loop {
        let log: Vec<Value> = client
            .get(&log_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if log.iter().any(|delivery| delivery["lastStatus"] == 500) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let restarted = crate::cli::ServerProcess::start(&database, &flags, "info");
    let got = receiver.wait_for(4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    // Each event arrived, in order, the failed one first and again; nothing else.
    let delivered: Vec<String> = got[1..]
        .iter()
        .map(|request| {
            request.json()["data"]["pat"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(delivered, pats, "{got:?}");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert!(got
        .iter()
        .all(|request| verify_signature(hook["secret"].as_str().unwrap(), request)));
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_started_together_deliver_each_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let a = spawn_app_full_on(&url, quick).await;
    let b = PreparedNode::new(&url, quick, |store| store).await;
    let b_base = b.base.clone();
    b.serve(std::future::pending());
    // A slow receiver, so that both nodes look at the outbox while a delivery is in flight.
    let receiver = Receiver::start(vec![], Duration::from_millis(150)).await;
    create_webhook(
        &a.base,
        &a.admin_token,
        &receiver.url,
        json!(["pat.created"]),
    )
    .await
    .error_for_status()
    .unwrap();
    let mut names = Vec::new();
    for n in 0..8 {
        let base = if n % 2 == 0 { &a.base } else { &b_base };
        let name = format!("pat {n}");
        let response = a
            .client
            .post(format!("{base}{CLASSIC}"))
            .bearer_auth(&a.admin_token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        names.push(name);
    }
    receiver.wait_for(8, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = receiver.received();
    let delivered: Vec<String> = got
        .iter()
        .map(|request| {
            request.json()["data"]["pat"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(delivered, names, "duplicated, lost or out of order");
}
