//! PostgreSQL going away under a running node: a TCP proxy between patd and the database that
//! the test cuts and restores (the shared server itself is never touched). Skipped, saying so,
//! without `PATD_TEST_POSTGRES_URL`.

use crate::helpers::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A proxy to `upstream`. Cut: every proxied connection is dropped and new ones are accepted but
/// never answered (as a partition looks). Restored: the held connections are dropped and new ones
/// are proxied again.
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    forwarding: Vec<AbortHandle>,
    held: Vec<TcpStream>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<ProxyState>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                // One lock from the check to the record, so a cut cannot slip in between and
                // leave a connection through.
                let mut state = shared.lock().unwrap();
                if state.cut {
                    state.held.push(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                state.forwarding.push(task.abort_handle());
            }
        });
        Proxy { port, state }
    }

    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for task in state.forwarding.drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = false;
        state.held.clear();
    }
}

/// A fresh schema, a proxy in front of its server, and the URL that goes through the proxy.
pub async fn behind_proxy() -> Option<(String, String, Proxy)> {
    let Some(base) = postgres_url() else {
        eprintln!("skipped: PATD_TEST_POSTGRES_URL is not set, so the outage tests did not run");
        return None;
    };
    let direct = fresh_postgres_schema(&base).await;
    let mut url = reqwest::Url::parse(&direct).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    Some((direct, url.to_string(), proxy))
}

/// Exchanges and returns the status and how long the answer took.
async fn timed_exchange(app: &TestApp, id: &str, secret: &str) -> (u16, Duration) {
    let started = Instant::now();
    let response = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .await;
    (response.status().as_u16(), started.elapsed())
}

/// A PAT made through the API: `(id, secret)`.
async fn new_pat(app: &TestApp, name: &str) -> (String, String) {
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({ "name": name }))
        .await;
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// A node hears its own writes announced too, a moment later, and drops the PATs they name from
/// its cache. Let that happen before caching PATs the test needs cached when the cut comes.
async fn wait_for_own_announcements() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What a request that needs the database gets while it is gone: a 500 ErrorResponseDto, fast.
async fn assert_fails_fast(response: reqwest::Response, started: Instant) {
    let elapsed = started.elapsed();
    let (status, detail_code, _) = error_of(response).await;
    assert_eq!(
        (status, detail_code.as_str()),
        (500, "500.0 Internal Fault")
    );
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

#[tokio::test]
async fn cached_pats_keep_working_while_the_database_is_cut_and_all_recovers_after() {
    let Some((direct_url, proxied_url, proxy)) = behind_proxy().await else {
        return;
    };
    let app = spawn_app_on(&proxied_url).await;
    let (used, used_secret) = new_pat(&app, "used").await;
    let (doomed, doomed_secret) = new_pat(&app, "doomed").await;
    let (cold, cold_secret) = new_pat(&app, "cold").await;
    wait_for_own_announcements().await;
    for (id, secret) in [(&used, &used_secret), (&doomed, &doomed_secret)] {
        assert_eq!(timed_exchange(&app, id, secret).await.0, 200);
    }
    let jwks_before = get_json(&app.client, &app.url("/.well-known/jwks.json")).await;

    proxy.cut();
    let cut_at = Instant::now();
    // Anything that needs the database answers 500 within the bound, never hangs.
    let started = Instant::now();
    assert_fails_fast(app.list(&app.admin_token, CLASSIC, "").await, started).await;
    let started = Instant::now();
    let response = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &cold),
            ("client_secret", &cold_secret),
        ])
        .await;
    assert_fails_fast(response, started).await;
    // Meanwhile another node, which still reaches the database, deletes a PAT and adds a key.
    let other = patd_store::connect(&direct_url).await.unwrap();
    assert!(other
        .delete_pat(&patd_core::ids::PatId::parse(&doomed).unwrap())
        .await
        .unwrap());
    let new_kid = patd_server::keys::rotate(other.as_ref(), None)
        .await
        .unwrap();
    // Past the moment the old change feed flushed everything (about 11 s), cached PATs still
    // exchange, each answer quick.
    while cut_at.elapsed() < Duration::from_secs(14) {
        let (status, took) = timed_exchange(&app, &used, &used_secret).await;
        assert_eq!(status, 200, "after {:?} of outage", cut_at.elapsed());
        assert!(took < Duration::from_secs(1), "took {took:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    proxy.restore();
    let restored_at = Instant::now();
    // Back without a restart: the delete and the key it could not hear of are honoured, lists
    // answer again.
    loop {
        let doomed_refused = timed_exchange(&app, &doomed, &doomed_secret).await.0 == 401;
        let jwks = get_json(&app.client, &app.url("/.well-known/jwks.json")).await;
        let new_key_known = jwks["keys"][0]["kid"] == new_kid.as_str();
        let lists = app.list(&app.admin_token, CLASSIC, "").await.status() == 200;
        if doomed_refused && new_key_known && lists {
            break;
        }
        assert!(
            restored_at.elapsed() < Duration::from_secs(15),
            "not recovered: deleted PAT refused {doomed_refused}, new key {new_key_known}, \
             lists {lists}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(jwks_before["keys"][0]["kid"], new_kid.as_str());
    assert_eq!(timed_exchange(&app, &used, &used_secret).await.0, 200);
    assert_eq!(timed_exchange(&app, &cold, &cold_secret).await.0, 200);
    eprintln!(
        "recovered {:?} after the database came back",
        restored_at.elapsed()
    );
}

#[tokio::test]
async fn a_cached_pat_answers_past_its_lifetime_for_the_grace_and_no_longer() {
    let Some((_, proxied_url, proxy)) = behind_proxy().await else {
        return;
    };
    let app = spawn_app_full_on(&proxied_url, |config| {
        config.cache_lifetime = Duration::from_secs(1);
        config.outage_grace = Duration::from_secs(4);
    })
    .await;
    let (id, secret) = new_pat(&app, "graced").await;
    wait_for_own_announcements().await;
    assert_eq!(timed_exchange(&app, &id, &secret).await.0, 200);
    let loaded_at = Instant::now();
    proxy.cut();
    // Past its lifetime, within the grace: still served, and quickly.
    for at in [2, 3] {
        tokio::time::sleep_until((loaded_at + Duration::from_secs(at)).into()).await;
        let (status, took) = timed_exchange(&app, &id, &secret).await;
        assert_eq!(status, 200, "{at} s after loading");
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    // Past lifetime and grace: it needs the database, which is gone.
    tokio::time::sleep_until((loaded_at + Duration::from_secs(6)).into()).await;
    let started = Instant::now();
    let response = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await;
    assert_fails_fast(response, started).await;
    proxy.restore();
    let restored_at = Instant::now();
    while timed_exchange(&app, &id, &secret).await.0 != 200 {
        assert!(restored_at.elapsed() < Duration::from_secs(10), "not back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
