//! Operating patd (EXTENSIONS E3): health and readiness, the Prometheus scrape, the log formats
//! and lines, passwords kept out of messages, HTTPS with a reload on SIGHUP, and the client
//! address behind trusted proxies.

use crate::cli::{patd, ServerProcess};
use crate::helpers::*;
use crate::outage::{behind_proxy, Proxy};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn health_answers_without_auth_and_readiness_checks_the_database() {
    let app = spawn_app().await;
    let (status, body) = get(&app.url("/health/alive")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(&app.url("/health/ready")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    // Never rate limited: far past any per-client limit, with no credentials at all.
    for _ in 0..150 {
        assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    }
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_cut_and_recovers() {
    let Some((_direct, proxied, proxy)) = behind_proxy().await else {
        return;
    };
    let app = spawn_app_full_on(&proxied, |config| {
        config.database_timeout = Duration::from_millis(500);
    })
    .await;
    assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    proxy.cut();
    let (status, body) = get(&app.url("/health/ready")).await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["reason"].as_str().unwrap().contains("database"),
        "{body}"
    );
    assert!(!body.to_string().contains("postgres://"), "{body}");
    // Alive is about the process, not its dependencies.
    assert_eq!(get(&app.url("/health/alive")).await.0, 200);
    proxy.restore();
    let started = Instant::now();
    while get(&app.url("/health/ready")).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readiness_covers_the_shared_rate_limit_redis() {
    let Ok(redis) = std::env::var("PATD_TEST_REDIS_URL") else {
        eprintln!(
            "skipped: PATD_TEST_REDIS_URL is not set, so the Redis readiness test did not run"
        );
        return;
    };
    let upstream = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(upstream).await;
    let through_proxy = format!("redis://127.0.0.1:{}", proxy.port);
    let app = spawn_app_with(|config| {
        config.rate_limit = patd_server::ratelimit::Limit::parse("100/10").unwrap();
        config.rate_limit_redis = Some(through_proxy);
    })
    .await;
    assert_eq!(get(&app.url("/health/ready")).await.0, 200);
    proxy.cut();
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = get(&app.url("/health/ready")).await;
        if status != 200 || started.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Redis"), "{body}");
    proxy.restore();
    let started = Instant::now();
    while get(&app.url("/health/ready")).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the series `name{labels}` in an exposition, where exactly one line has it.
fn sample(text: &str, series: &str) -> f64 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .collect();
    assert_eq!(lines.len(), 1, "{series} in:\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_requests_exchanges_cache_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    let server = ServerProcess::start(&db, &["--exchange-failure-limit", "2/60"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let base = server.base.clone();
    for _ in 0..3 {
        assert_eq!(
            crate::cli::exchange(&base, &id, &secret).await.status(),
            200
        );
    }
    let bad = guess();
    let statuses: Vec<u16> =
        futures::future::join_all((0..3).map(|_| crate::cli::exchange(&base, &id, &bad)))
            .await
            .iter()
            .map(|response| response.status().as_u16())
            .collect();
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 1);
    assert_eq!(get(&format!("{base}/no/such/path/{id}")).await.0, 404);

    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let token = r#"route="/oauth/token",method="POST""#;
    assert_eq!(
        sample(
            &text,
            &format!("patd_http_requests_total{{{token},status=\"200\"}}")
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("patd_http_requests_total{{{token},status=\"401\"}}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("patd_http_requests_total{{{token},status=\"429\"}}")
        ),
        1.0
    );
    // Paths no route has are one series, whatever was in them.
    assert_eq!(
        sample(
            &text,
            r#"patd_http_requests_total{route="unmatched",method="GET",status="404"}"#
        ),
        1.0
    );
    assert!(!text.contains(&id), "a client id in a label");
    assert_eq!(
        sample(&text, r#"patd_token_exchanges_total{outcome="ok"}"#),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"patd_token_exchanges_total{outcome="invalid_client"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"patd_token_exchanges_total{outcome="rate_limited"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"patd_rate_limit_refusals_total{limit="exchange_failures"}"#
        ),
        1.0
    );
    // Six exchanges, one database read: the rest came from memory.
    assert_eq!(sample(&text, "patd_pat_cache_misses_total"), 1.0);
    assert_eq!(sample(&text, "patd_pat_cache_hits_total"), 5.0);
    assert_eq!(
        sample(
            &text,
            r#"patd_http_request_duration_seconds_count{route="/oauth/token"}"#
        ),
        6.0
    );
    assert!(text
        .contains(r#"patd_http_request_duration_seconds_bucket{route="/oauth/token",le="0.001"}"#));
    sample(&text, "patd_last_used_writes_pending");
    assert!(sample(&text, r#"patd_db_pool_connections{state="idle"}"#) >= 1.0);
    sample(&text, r#"patd_db_pool_connections{state="in_use"}"#);
    sample(
        &text,
        r#"patd_outbox_deliveries_total{outcome="delivered"}"#,
    );
    sample(&text, "patd_outbox_queue_depth");
    assert_eq!(
        sample(
            &text,
            &format!(
                "patd_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    let (ok, _, stderr) = server.stop();
    assert!(ok);
    // Probes and scrapes are not logged at info; other requests are, one line each.
    assert!(!stderr.contains("/metrics"), "{stderr}");
    assert_eq!(
        stderr.matches(r#"route="/oauth/token""#).count(),
        6,
        "{stderr}"
    );
}

#[tokio::test]
async fn metrics_listen_moves_the_scrape_off_the_main_listener() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    let server = ServerProcess::start(&db, &["--metrics-listen", "127.0.0.1:0"], "info");
    let stderr = server.stderr.lock().unwrap().clone();
    let at = stderr.find("metrics on ").unwrap() + "metrics on ".len();
    let metrics_url = stderr[at..].split_whitespace().next().unwrap().to_owned();
    assert_eq!(get(&server.url("/metrics")).await.0, 404);
    let (status, text) = get(&metrics_url).await;
    assert_eq!(status, 200);
    assert!(text.contains("patd_build_info"));
    assert_eq!(get(&server.url("/health/alive")).await.0, 200);
    let (ok, _, _) = server.stop();
    assert!(ok);
}

#[tokio::test]
async fn json_logs_carry_the_request_fields_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    let server = ServerProcess::start(&db, &["--log-format", "json"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let base = server.base.clone();
    // The secret in the query string as well as the body: neither may reach the log.
    let response = reqwest::Client::new()
        .post(format!(
            "{base}/oauth/token?grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let created: Value = reqwest::Client::new()
        .post(format!("{base}{CLASSIC}"))
        .bearer_auth(&token)
        .json(&json!({ "name": "logged" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created_id = created["id"].as_str().unwrap().to_owned();
    let deleted = reqwest::Client::new()
        .delete(format!("{base}{CLASSIC}/{created_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (ok, _, stderr) = server.stop();
    assert!(ok);
    assert!(!stderr.contains(&secret), "a secret in the log");
    assert!(!stderr.contains(&token), "a token in the log");
    assert!(
        !stderr.contains("client_secret"),
        "a query string in the log"
    );
    assert!(
        !stderr.contains("\u{1b}["),
        "colour codes in a log that is not a terminal"
    );
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let exchange = lines
        .iter()
        .find(|line| line["route"] == "/oauth/token")
        .unwrap();
    assert_eq!(exchange["level"], "INFO");
    assert_eq!(exchange["status"], 200);
    assert_eq!(exchange["client_id"], id.as_str());
    assert!(is_hex32(exchange["tracking_id"].as_str().unwrap()));
    assert!(exchange["elapsed_ms"].as_f64().is_some());
    // The successful writes are logged at info with the acting identity and the PAT's id.
    for event in ["pat.created", "pat.deleted"] {
        let line = lines
            .iter()
            .find(|line| line["event"] == event && line["target_id"] == created_id.as_str())
            .unwrap_or_else(|| panic!("no {event} line in {stderr}"));
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["actor_type"], "IDENTITY");
        assert!(is_hex32(line["actor_id"].as_str().unwrap()), "{line}");
        assert_eq!(line["via_pat"], id.as_str());
    }
}

#[test]
fn database_passwords_never_reach_help_or_errors() {
    let url = "postgres://patd:hunter2pass@127.0.0.1:1/patd";
    let output = patd()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-timeout",
            "2s",
        ])
        .env("PATD_DATABASE_URL", url)
        .env("PATD_RATE_LIMIT_REDIS", "redis://:redispass@127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("hunter2pass"), "{stderr}");
    assert!(
        stderr.contains("postgres://patd:***@127.0.0.1:1/patd"),
        "{stderr}"
    );
    for help in [["serve", "--help"], ["token", "--help"]] {
        let output = patd()
            .args(help)
            .env("PATD_DATABASE_URL", url)
            .env("PATD_RATE_LIMIT_REDIS", "redis://:redispass@127.0.0.1:1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            !text.contains("hunter2pass") && !text.contains("redispass"),
            "{text}"
        );
    }
    let output = patd()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "mysql://u:mysqlpass@h/d",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && !stderr.contains("mysqlpass"),
        "{stderr}"
    );
}

/// A self-signed certificate for 127.0.0.1, made by OpenSSL: `(cert, key)` paths.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl must be installed to test HTTPS");
    assert!(status.success());
    (cert.display().to_string(), key.display().to_string())
}

/// What curl, trusting only `ca`, gets from `url`: its exit code and body.
fn curl(ca: &str, url: &str) -> (i32, String) {
    let output = Command::new("curl")
        .args(["--silent", "--max-time", "5", "--cacert", ca, url])
        .output()
        .expect("curl must be installed to test HTTPS");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn https_is_served_directly_and_sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (first_cert, first_key) = certificate(dir.path(), "first");
    let (second_cert, second_key) = certificate(dir.path(), "second");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    let cert_arg = cert.display().to_string();
    let key_arg = key.display().to_string();
    let server = ServerProcess::start(
        &db,
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
        "info",
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let alive = format!("{}/health/alive", server.base);
    assert_eq!(
        curl(&first_cert, &alive),
        (0, r#"{"status":"ok"}"#.to_owned())
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = alive.replace("https://", "http://");
    assert_ne!(curl(&first_cert, &plain).0, 0);
    // The JWT issuer and token endpoint are the HTTPS URL.
    let (_, info) = curl(&first_cert, &format!("{}/oauth/info", server.base));
    assert!(info.contains(&server.base), "{info}");

    // A broken file on SIGHUP keeps the certificate in force.
    std::fs::write(&cert, "not a certificate").unwrap();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&first_cert, &alive).0, 0);

    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    while curl(&second_cert, &alive).0 != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new certificate never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The old certificate is no longer presented: a client trusting only it refuses.
    assert_ne!(curl(&first_cert, &alive).0, 0);
    let (ok, _, stderr) = server.stop();
    assert!(ok);
    assert!(stderr.contains("TLS files not reloaded"), "{stderr}");
    assert!(
        stderr.contains("TLS certificate and key reloaded"),
        "{stderr}"
    );
}

#[test]
fn a_tls_key_that_does_not_match_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(dir.path(), "one");
    let (_, other_key) = certificate(dir.path(), "two");
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    let output = patd()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        .args(["--tls-cert", &cert, "--tls-key", &other_key])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not go with the certificate"),
        "{stderr}"
    );
}

/// A well-formed secret of no PAT: a real guess, which the failure limits count.
fn guess() -> String {
    patd_core::secret::Secret::generate(&mut rand::rng())
        .expose()
        .to_owned()
}

/// Failed exchanges of one PAT sent with `X-Forwarded-For: ip`: the statuses.
async fn failures_from(app: &TestApp, id: &str, bad: &str, ip: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let response = app
            .client
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", ip)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", bad),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn trusted_proxies_name_the_client_for_the_failure_limit() {
    let limit = patd_server::ratelimit::Limit::parse("2/60").unwrap();
    let trusted = spawn_app_with(|config| {
        config.exchange_failure_limit = Some(limit);
        config.trusted_proxies =
            patd_server::proxies::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let (id, bad) = (trusted.bootstrap.id.clone(), guess());
    assert_eq!(
        failures_from(&trusted, &id, &bad, "203.0.113.7", 3).await,
        [401, 401, 429]
    );
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        failures_from(&trusted, &id, &bad, "203.0.113.8", 2).await,
        [401, 401]
    );
    // A client cannot pick its own address by prepending one: the proxy appended the real one.
    assert_eq!(
        failures_from(&trusted, &id, &bad, "198.51.100.1, 203.0.113.7", 1).await,
        [429]
    );

    // Without trusted proxies the header is the client's word, and ignored.
    let untrusted = spawn_app_with(|config| config.exchange_failure_limit = Some(limit)).await;
    let (id, bad) = (untrusted.bootstrap.id.clone(), guess());
    assert_eq!(
        failures_from(&untrusted, &id, &bad, "203.0.113.7", 2).await,
        [401, 401]
    );
    assert_eq!(
        failures_from(&untrusted, &id, &bad, "203.0.113.8", 1).await,
        [429]
    );
}

#[test]
fn no_bootstrap_refuses_an_empty_database_and_init_bootstraps_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patd.db");
    let db = format!("sqlite://{}", path.display());
    let refused = patd()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--no-bootstrap",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("does not exist and --no-bootstrap is set"),
        "{stderr}"
    );
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(refused.stdout.is_empty());
    assert!(!path.exists(), "--no-bootstrap created the file");

    // A file with no identities (made by another command) is refused too.
    let listed = patd()
        .args(["identity", "list", "--database", &db])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let refused = patd()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        .arg("--no-bootstrap")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is empty and --no-bootstrap is set"),
        "{stderr}"
    );
    assert!(stderr.contains(&db), "{stderr}");
    assert!(refused.stdout.is_empty());

    let init = patd().args(["init", "--database", &db]).output().unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let line = String::from_utf8(init.stdout).unwrap();
    assert!(line.starts_with("bootstrap client_id="), "{line}");
    let again = patd().args(["init", "--database", &db]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("bootstrapped before"));

    // The unit's way: the environment variable, on the bootstrapped database.
    let mut child = patd()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        .env("PATD_NO_BOOTSTRAP", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "it should be serving");
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("bootstrap"));
}

#[test]
fn a_taken_port_fails_before_the_database_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patd.db");
    let db = format!("sqlite://{}", path.display());
    let output = patd()
        .args(["serve", "--listen", &address, "--database", &db])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("listening on {address}")),
        "{stderr}"
    );
    assert!(!path.exists(), "a database file was created");
}
