//! Concurrent writers: the database, not a race in our code, decides.

use crate::helpers::*;
use futures::future::join_all;
use serde_json::json;

#[tokio::test]
async fn twenty_concurrent_creates_with_one_name_give_exactly_one_success() {
    let app = spawn_app().await;
    let responses =
        join_all((0..20).map(|_| app.create(&app.admin_token, CLASSIC, json!({"name": "race"}))))
            .await;
    let mut n_ok = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => n_ok += 1,
            400 => {
                let (_, code, cause) = error_of(response).await;
                assert_eq!(code, "400.1 Bad Request Content");
                assert_eq!(
                    cause,
                    "name 'race' is already used by another personal access token of this owner"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(n_ok, 1);
    let listed = app.list_ok(&app.admin_token, CLASSIC, "owner-id=me").await;
    assert_eq!(
        listed.iter().filter(|item| item["name"] == "race").count(),
        1
    );
}

#[tokio::test]
async fn concurrent_creates_never_pass_the_limit() {
    let app = spawn_app().await;
    let user = app.actor("busy", "USER", &[], &["sp:scopes:all"]).await;
    let responses = join_all(
        (0..20).map(|n| app.create(&user.token, CLASSIC, json!({"name": format!("t{n}")}))),
    )
    .await;
    let n_ok = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(n_ok, 9, "the login PAT plus nine make ten");
    assert_eq!(
        app.list_ok(&user.token, CLASSIC, "owner-id=me").await.len(),
        10
    );
}

/// Creates that arrive together share one SQLite transaction (group commit): successes, name
/// conflicts and limit refusals mixed in one burst must each get their own answer, and exactly
/// the acknowledged PATs are stored.
#[tokio::test]
async fn a_burst_of_mixed_creates_answers_each_one_and_stores_exactly_the_successes() {
    let app = spawn_app().await;
    let busy = app.actor("burst-a", "USER", &[], &["sp:scopes:all"]).await;
    let roomy = app.actor("burst-b", "USER", &[], &["sp:scopes:all"]).await;
    // For `busy`: 15 creates over 12 names (three conflicts) against a limit of ten, the login
    // PAT included, so nine get in. For `roomy`: 5 distinct names, all within the limit.
    let requests = (0..15)
        .map(|n| (&busy.token, format!("dup-{}", n % 12)))
        .chain((0..5).map(|n| (&roomy.token, format!("own-{n}"))));
    let responses =
        join_all(requests.map(|(token, name)| app.create(token, CLASSIC, json!({ "name": name }))))
            .await;
    let mut created = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            200 => {
                let body: serde_json::Value = response.json().await.unwrap();
                created.push(body["id"].as_str().unwrap().to_owned());
            }
            400 => {
                let (_, _, cause) = error_of(response).await;
                assert!(
                    cause.contains("is already used")
                        || cause == "an owner may have at most 10 personal access tokens",
                    "{cause}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created.len(), 9 + 5);
    let mut stored: Vec<String> = app
        .list_ok(&busy.token, CLASSIC, "owner-id=me")
        .await
        .into_iter()
        .chain(app.list_ok(&roomy.token, CLASSIC, "owner-id=me").await)
        .filter(|item| item["name"] != "login")
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    created.sort();
    assert_eq!(stored, created);
}
