//! Instant revocation: deleting a PAT, or its expiry, makes every token minted from it fail.

use crate::helpers::*;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

#[tokio::test]
async fn a_token_minted_before_a_delete_is_refused_right_after_it() {
    let app = spawn_app().await;
    let user = app.actor("leaver", "USER", &[], &["sp:scopes:all"]).await;
    let second_token = app.exchange(&user.pat.id, &user.pat.secret).await;
    assert_eq!(
        app.list(&user.token, CLASSIC, "owner-id=me").await.status(),
        200
    );
    // Deleted through the API by someone else: both tokens die at once.
    assert_eq!(
        app.delete(&app.admin_token, CLASSIC, &user.pat.id)
            .await
            .status(),
        204
    );
    for token in [&user.token, &second_token] {
        let response = app.list(token, CLASSIC, "owner-id=me").await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "JWT validation failed: the personal access token was deleted"})
        );
    }
    // Other PATs' tokens are unaffected.
    assert_eq!(app.list(&app.admin_token, CLASSIC, "").await.status(), 200);
}

#[tokio::test]
async fn a_pat_deleting_itself_kills_its_own_token() {
    let app = spawn_app().await;
    let user = app.actor("self", "USER", &[], &["sp:scopes:all"]).await;
    assert_eq!(
        app.delete(&user.token, CLASSIC, &user.pat.id)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.list(&user.token, CLASSIC, "owner-id=me").await.status(),
        401
    );
}

#[tokio::test]
async fn tokens_die_when_their_pat_expires() {
    let app = spawn_app().await;
    let expires = OffsetDateTime::now_utc() + Duration::seconds(2);
    let pat = app
        .admin_pat(
            &app.bootstrap.owner.id,
            "brief",
            &[],
            AdminExpiry::At(expires),
            false,
        )
        .await;
    let token = app.exchange(&pat.id, &pat.secret).await;
    assert_eq!(app.list(&token, CLASSIC, "").await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = app.list(&token, CLASSIC, "").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    // The JWT itself has expired too (its life is capped at the PAT's), which is checked first.
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("JWT validation failed: "),
        "{body}"
    );
}

#[tokio::test]
async fn an_expiry_moved_into_the_past_by_patch_is_impossible_but_a_bulk_date_is_honoured() {
    let app = spawn_app().await;
    let created = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "moving", "expirationDate": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let token = app.exchange(id, secret).await;
    let soon = OffsetDateTime::now_utc() + Duration::seconds(2);
    let body = json!({"ids": [id], "patch": [{"op": "replace", "path": "/expirationDate", "value": patd_proto::timestamp::format(soon)}]});
    let response = app
        .client
        .post(app.url("/personal-access-tokens/v1/bulk-update"))
        .bearer_auth(&app.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The token was minted for 12 hours, but its PAT now expires in two seconds.
    assert_eq!(app.list(&token, CLASSIC, "").await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = app.list(&token, CLASSIC, "").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "JWT validation failed: the personal access token has expired"})
    );
}
