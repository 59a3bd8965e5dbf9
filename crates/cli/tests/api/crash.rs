//! Crash safety: a node killed with SIGKILL in the middle of a stream of creates loses none that
//! it answered 200. Runs on the suite's backend (SQLite, or PostgreSQL on that run).

use crate::cli::{exchange, ServerProcess};
use crate::helpers::fresh_database_url;
use futures::future::join_all;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn every_acknowledged_create_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database_url(dir.path()).await;
    let flags = ["--rate-limit", "off", "--max-tokens-per-owner", "1000000"];
    let server = ServerProcess::start(&db, &flags, "info");
    let (id, secret) = server.bootstrap().unwrap();
    let client = reqwest::Client::new();
    let token: Value = exchange(&server.base, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();

    // Four writers, each creating as fast as it can until the server is gone.
    let writers = (0..4).map(|writer| {
        let (client, base, token, acknowledged) = (
            client.clone(),
            server.base.clone(),
            token.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            for n in 0.. {
                let response = client
                    .post(format!("{base}/v3/personal-access-tokens"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{writer} n{n}")}))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 200 => {
                        let Ok(body) = response.json::<Value>().await else {
                            break;
                        };
                        let pair = (
                            body["id"].as_str().unwrap_or_default().to_owned(),
                            body["secret"].as_str().unwrap_or_default().to_owned(),
                        );
                        acknowledged.lock().unwrap().push(pair);
                    }
                    _ => break,
                }
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().unwrap();
    join_all(writers).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the stream was running when the node died ({})",
        acknowledged.len()
    );
    drop(server);

    let restarted = ServerProcess::start(&db, &flags, "info");
    let base = restarted.base.clone();
    let token: Value = exchange(&base, &id, &secret).await.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap();
    let total: u64 = client
        .get(format!(
            "{base}/v3/personal-access-tokens?limit=0&count=true"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        total as usize > acknowledged.len(),
        "{total} stored, {} acknowledged",
        acknowledged.len()
    );
    for (pat_id, pat_secret) in &acknowledged {
        let response = exchange(&base, pat_id, pat_secret).await;
        assert_eq!(response.status(), 200, "acknowledged PAT {pat_id} was lost");
    }
    eprintln!(
        "{} acknowledged creates all survived SIGKILL",
        acknowledged.len()
    );
    restarted.stop();
}
