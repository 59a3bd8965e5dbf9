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
