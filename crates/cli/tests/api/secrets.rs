//! A secret appears in one response and nowhere else: not in the database, not in the logs.

use crate::cli::ServerProcess;
use crate::helpers::typo;
use serde_json::{json, Value};

#[tokio::test]
async fn secrets_never_reach_the_database_file_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("patd.db").display());
    // The most talkative log level there is.
    let server = ServerProcess::start(&db, &[], "trace");
    let (id, bootstrap_secret) = server.bootstrap().unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/oauth/token", server.base);

    // Exchange the bootstrap PAT in every encoding, the query string included.
    let response = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &bootstrap_secret),
        ])
        .send()
        .await
        .unwrap();
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = reqwest::multipart::Form::new()
        .text("grant_type", "client_credentials")
        .text("client_id", id.clone())
        .text("client_secret", bootstrap_secret.clone());
    assert_eq!(
        client
            .post(&url)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(client.post(format!("{url}?grant_type=client_credentials&client_id={id}&client_secret={bootstrap_secret}")).send().await.unwrap().status(), 200);
    assert_eq!(
        client
            .post(&url)
            .basic_auth(&id, Some(&bootstrap_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Create a PAT, use it, fail with it, rename it.
    let created: Value = client
        .post(format!("{}/v3/personal-access-tokens", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "secretive"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let new_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &new_id),
                ("client_secret", &secret)
            ])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let wrong = typo(&secret);
    assert_eq!(
        client
            .post(format!(
                "{url}?grant_type=client_credentials&client_id={new_id}&client_secret={wrong}"
            ))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let listed = client
        .get(format!("{}/v3/personal-access-tokens", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(&secret) && !listed.contains(&bootstrap_secret),
        "a list never shows a secret"
    );

    let (_, stdout, stderr) = server.stop();
    assert!(
        stderr.contains("/oauth/token"),
        "the log level was high enough to see requests"
    );
    for (what, value) in [
        ("bootstrap secret", &bootstrap_secret),
        ("created secret", &secret),
        ("wrong secret", &wrong),
    ] {
        assert!(
            !stderr.contains(value.as_str()),
            "the {what} is in the logs"
        );
        let files = std::fs::read_dir(dir.path()).unwrap();
        for file in files {
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(value.len())
                    .any(|window| window == value.as_bytes()),
                "the {what} is in {}",
                path.display()
            );
        }
    }
    // stdout carries the bootstrap line once and nothing else.
    assert_eq!(stdout.lines().count(), 1);
    assert!(!stdout.contains(&secret));
}
