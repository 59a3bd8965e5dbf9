//! Rotation (EXTENSIONS E5) and the lifetime policy (E6): grace periods, revoking the tokens
//! minted before, `self/rotate` behind `patd:self-rotate`, the rights of patch, bad input, and
//! `--max-pat-lifetime` on create, patch, bulk update and rotation.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn rotate_url(app: &TestApp, id: &str) -> String {
    app.url(&format!("/patd/v1/personal-access-tokens/{id}/rotate"))
}

async fn rotate(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> reqwest::Response {
    let request = app.client.post(rotate_url(app, id)).bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

/// Rotates and returns the answer, panicking unless it is a 200 of the create answer's shape.
async fn rotate_ok(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> Value {
    let response = rotate(app, token, id, body).await;
    let status = response.status();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys_of(&body),
        [
            "accessTokenValiditySeconds",
            "created",
            "expirationDate",
            "id",
            "name",
            "owner",
            "scope",
            "secret"
        ]
    );
    body
}

async fn list_status(app: &TestApp, token: &str) -> u16 {
    app.list(token, CLASSIC, "owner-id=me")
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn during_the_grace_both_secrets_exchange_and_after_it_only_the_new_one() {
    let app = spawn_app().await;
    let created = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "ci", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await;
    let (id, old) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let before_token = app.exchange(id, old).await;
    let rotated = rotate_ok(
        &app,
        &app.admin_token,
        id,
        Some(json!({"gracePeriodSeconds": 2})),
    )
    .await;
    let rotated_at = Instant::now();
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(new, old);
    // The PAT is the same PAT: id, name, scope, owner, validity, created and expiry stay.
    for key in [
        "id",
        "name",
        "scope",
        "owner",
        "created",
        "accessTokenValiditySeconds",
        "expirationDate",
    ] {
        assert_eq!(rotated[key], created[key], "{key}");
    }
    assert_eq!(app.exchange_status(id, new).await, 200);
    assert_eq!(app.exchange_status(id, old).await, 200);
    // Tokens minted before a rotation without revokeIssuedTokens stay good.
    assert_eq!(list_status(&app, &before_token).await, 200);
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(rotated_at.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        app.exchange_status(id, old).await,
        401,
        "the old secret outlived its grace"
    );
    assert_eq!(app.exchange_status(id, new).await, 200);

    // A rotation without a grace ends the old secret at once; a body may be left out.
    let again = rotate_ok(&app, &app.admin_token, id, None).await;
    assert_eq!(app.exchange_status(id, new).await, 401);
    assert_eq!(
        app.exchange_status(id, again["secret"].as_str().unwrap())
            .await,
        200
    );

    // Audited with what changed, never a secret.
    let events: Vec<Value> = app
        .client
        .get(app.url(&format!("/patd/v1/audit-events?filters=type%20eq%20%22pat.rotated%22%20and%20target.id%20eq%20%22{id}%22")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["details"]["gracePeriodSeconds"], 2);
    assert_eq!(events[0]["details"]["revokeIssuedTokens"], false);
    assert!(!serde_json::to_string(&events).unwrap().contains(new));
}

#[tokio::test]
async fn revoke_issued_tokens_ends_every_earlier_access_token_and_none_minted_after() {
    let app = spawn_app().await;
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "deploy"}))
        .await;
    let (id, old) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let earlier = app.exchange(id, old).await;
    assert_eq!(list_status(&app, &earlier).await, 200);
    let rotated = rotate_ok(
        &app,
        &app.admin_token,
        id,
        Some(json!({"revokeIssuedTokens": true, "gracePeriodSeconds": 60})),
    )
    .await;
    // At once, in the same second as the rotation.
    let response = app.list(&earlier, CLASSIC, "owner-id=me").await;
    let (status, _, _) = error_of_unauthorized(response).await;
    assert_eq!(status, 401);
    let new = rotated["secret"].as_str().unwrap();
    let later = app.exchange(id, new).await;
    assert_eq!(list_status(&app, &later).await, 200);
    // The grace lets the old secret mint a token, and that token is good: it is newer.
    let from_old = app.exchange(id, old).await;
    assert_eq!(list_status(&app, &from_old).await, 200);
}

/// A 401's status and `error` (the contract's 401 body is `{"error": …}`).
async fn error_of_unauthorized(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        String::new(),
    )
}

#[tokio::test]
async fn self_rotate_needs_its_scope_entry_and_rotates_only_the_callers_own_pat() {
    let app = spawn_app().await;
    // sp:scopes:all does not imply patd:self-rotate.
    let whole = app.actor("whole", "USER", &[], &["sp:scopes:all"]).await;
    let response = app
        .client
        .post(app.url("/patd/v1/personal-access-tokens/self/rotate"))
        .bearer_auth(&whole.token)
        .send()
        .await
        .unwrap();
    let (status, code, cause) = error_of(response).await;
    assert_eq!((status, code.as_str()), (403, "403 Forbidden"));
    assert!(cause.contains("patd:self-rotate"), "{cause}");

    // A PAT whose scope is only patd:self-rotate rotates itself, and nothing else.
    let robot = app.actor("robot", "USER", &[], &["patd:self-rotate"]).await;
    let response = app
        .client
        .post(app.url("/patd/v1/personal-access-tokens/self/rotate"))
        .bearer_auth(&robot.token)
        .json(&json!({"gracePeriodSeconds": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    assert_eq!(rotated["id"], robot.pat.id.as_str());
    assert_eq!(
        app.exchange_status(&robot.pat.id, rotated["secret"].as_str().unwrap())
            .await,
        200
    );
    assert_eq!(
        app.exchange_status(&robot.pat.id, &robot.pat.secret).await,
        200
    );
    let other = rotate(&app, &robot.token, &whole.pat.id, None).await;
    assert_eq!(other.status(), 403, "self-rotate reached another PAT");
    let own_by_id = rotate(&app, &robot.token, &robot.pat.id, None).await;
    assert_eq!(own_by_id.status(), 403, "self-rotate is not a manage right");
}

#[tokio::test]
async fn rotation_takes_the_rights_of_patch() {
    let app = spawn_app().await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let bob = app.actor("bob", "USER", &[], &["sp:scopes:all"]).await;
    // Another user's PAT is not there for alice; her own is.
    assert_eq!(
        rotate(&app, &alice.token, &bob.pat.id, None).await.status(),
        404
    );
    rotate_ok(&app, &alice.token, &alice.pat.id, None).await;
    // A token narrowed to read cannot rotate.
    let reader = app
        .actor(
            "reader",
            "USER",
            &[],
            &["idn:my-personal-access-tokens:read"],
        )
        .await;
    assert_eq!(
        rotate(&app, &reader.token, &reader.pat.id, None)
            .await
            .status(),
        403
    );
    // An administrator may rotate anyone's.
    rotate_ok(&app, &app.admin_token, &bob.pat.id, None).await;
    assert_eq!(
        rotate(
            &app,
            &app.admin_token,
            "0123456789abcdef0123456789abcdef",
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        rotate(&app, &app.admin_token, "not-an-id", None)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn bad_rotation_input_is_a_400_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "kept"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let past = "2000-01-01T00:00:00Z";
    for (body, want) in [
        (
            json!({"gracePeriodSeconds": -1}),
            "gracePeriodSeconds must be between 0 and 86400",
        ),
        (
            json!({"gracePeriodSeconds": 86401}),
            "gracePeriodSeconds must be between 0 and 86400",
        ),
        (
            json!({"expirationDate": past}),
            "expirationDate must be in the future",
        ),
        (json!({"expirationDate": "tomorrow"}), "expirationDate"),
        (json!({"revokeIssuedTokens": "yes"}), "revokeIssuedTokens"),
        (json!({"gracePeriodSeconds": "60"}), "gracePeriodSeconds"),
        (json!([]), "object"),
    ] {
        let response = rotate(&app, &app.admin_token, id, Some(body.clone())).await;
        let (status, _, cause) = error_of(response).await;
        assert_eq!(status, 400, "{body}");
        assert!(cause.contains(want), "{body}: {cause}");
    }
    let response = app
        .client
        .post(rotate_url(&app, id))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        app.exchange_status(id, secret).await,
        200,
        "a refused rotation changed the secret"
    );
}

#[tokio::test]
async fn the_lifetime_policy_bounds_creates_patches_bulk_updates_and_rotations() {
    let app = spawn_app_with(|config| {
        config.lifetime_policy = patd_core::expiry::LifetimePolicy(Some(30))
    })
    .await;
    let token = app.admin_token.clone();
    let cause_of = |response: reqwest::Response| async move {
        let (status, _, cause) = error_of(response).await;
        assert_eq!(status, 400);
        assert!(cause.contains("30 days"), "{cause}");
        assert!(cause.contains("--max-pat-lifetime"), "{cause}");
        cause
    };
    let days = |n: i64| {
        patd_proto::timestamp::format(time::OffsetDateTime::now_utc() + time::Duration::days(n))
    };
    // Never, and past the bound, are refused; within it is fine.
    cause_of(
        app.create(
            &token,
            AWARE,
            json!({"name": "never", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await,
    )
    .await;
    cause_of(
        app.create(
            &token,
            AWARE,
            json!({"name": "far", "expirationDate": days(31)}),
        )
        .await,
    )
    .await;
    let near = app
        .create_ok(
            &token,
            AWARE,
            json!({"name": "near", "expirationDate": days(29)}),
        )
        .await;
    // A classic create without a date gets the policy's bound instead of six months.
    let classic = app
        .create_ok(&token, CLASSIC, json!({"name": "classic"}))
        .await;
    let expiry = parse_ts(&classic["expirationDate"]);
    let bound = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    assert!(
        expiry <= bound && expiry > bound - time::Duration::minutes(1),
        "{expiry}"
    );

    let id = near["id"].as_str().unwrap();
    let replace_expiry =
        |value: Value| json!([{"op": "replace", "path": "/expirationDate", "value": value}]);
    cause_of(
        app.patch(&token, AWARE, id, replace_expiry(json!(days(40))))
            .await,
    )
    .await;
    let bulk = app
        .client
        .post(app.url("/personal-access-tokens/v1/bulk-update"))
        .bearer_auth(&token)
        .json(&json!({"ids": [id], "patch": [
            {"op": "replace", "path": "/expirationDate", "value": null},
            {"op": "replace", "path": "/userAwareTokenNeverExpires", "value": true}
        ]}))
        .send()
        .await
        .unwrap();
    cause_of(bulk).await;
    // A rename of a PAT made before the policy is not judged by it: the bootstrap PAT's
    // expiry (six months) is past 30 days, and it stays.
    let renamed = app
        .patch(
            &token,
            AWARE,
            &app.bootstrap.id,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    // A rotation is a new credential: it keeps no expiry past the bound, counted from now.
    cause_of(rotate(&app, &token, &app.bootstrap.id, None).await).await;
    cause_of(rotate(&app, &token, id, Some(json!({"expirationDate": days(31)}))).await).await;
    let rotated = rotate_ok(&app, &token, id, Some(json!({"expirationDate": days(10)}))).await;
    assert!(
        parse_ts(&rotated["expirationDate"])
            < time::OffsetDateTime::now_utc() + time::Duration::days(11)
    );
}
