//! Bulk update: all or nothing, with its own right.

use crate::helpers::*;
use serde_json::{json, Value};

pub const BULK: &str = "/personal-access-tokens/v1/bulk-update";

pub async fn bulk(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    body: Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(BULK))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn three_pats(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..3 {
        let created = app
            .create_ok(
                &app.admin_token,
                AWARE,
                json!({"name": format!("bulk {n}"), "expirationDate": "2090-01-01T00:00:00Z"}),
            )
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn bulk_update_changes_every_pat_with_patch_and_post() {
    let app = spawn_app().await;
    let ids = three_pats(&app).await;
    let body = json!({"ids": ids, "patch": [{"op": "replace", "path": "/expirationDate", "value": "2091-02-03T04:05:06.007Z"}]});
    let response = bulk(&app, &app.admin_token, reqwest::Method::PATCH, body).await;
    assert_eq!(response.status(), 200);
    let items: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(items
        .iter()
        .all(|i| i["expirationDate"] == "2091-02-03T04:05:06.007Z"));
    assert!(items
        .iter()
        .all(|i| i.get("userAwareTokenNeverExpires").is_some()));

    let body = json!({"ids": ids, "patch": [
        {"op": "remove", "path": "/expirationDate"},
        {"op": "replace", "path": "/userAwareTokenNeverExpires", "value": true}
    ]});
    let response = bulk(&app, &app.admin_token, reqwest::Method::POST, body).await;
    assert_eq!(response.status(), 200);
    let listed = app
        .list_ok(&app.admin_token, AWARE, "filters=expirationDate%20isnull")
        .await;
    assert_eq!(
        listed
            .iter()
            .filter(|i| ids.contains(&i["id"].as_str().unwrap().to_owned()))
            .count(),
        3
    );
    assert!(listed
        .iter()
        .all(|i| i["userAwareTokenNeverExpires"] == true));
}

#[tokio::test]
async fn bad_bulk_requests_change_nothing() {
    let app = spawn_app().await;
    let ids = three_pats(&app).await;
    let before = app.list_ok(&app.admin_token, AWARE, "").await;
    let date =
        json!([{"op": "replace", "path": "/expirationDate", "value": "2095-01-01T00:00:00Z"}]);
    let many: Vec<String> = (0..26).map(|n| format!("{n:032x}")).collect();
    let mut with_unknown = ids.clone();
    with_unknown.push("86f1dc6fe8f54414950454cbb11278fa".to_owned());
    with_unknown.push("not-an-id".to_owned());
    let cases = vec![
        (
            "a bad path",
            json!({"ids": ids, "patch": [{"op": "replace", "path": "/name", "value": "x"}]}),
            "path '/name' is not patchable",
        ),
        (
            "26 ids",
            json!({"ids": many, "patch": date}),
            "ids must hold 1 to 25 ids, not 26",
        ),
        (
            "an unknown id",
            json!({"ids": with_unknown, "patch": date}),
            "no personal access tokens with ids: 86f1dc6fe8f54414950454cbb11278fa, not-an-id",
        ),
        (
            "clearing without acknowledging",
            json!({"ids": ids, "patch": [{"op": "replace", "path": "/expirationDate", "value": null}]}),
            "expirationDate may be null only when userAwareTokenNeverExpires is true",
        ),
        (
            "no ids",
            json!({"ids": [], "patch": date}),
            "ids must hold 1 to 25 ids",
        ),
        (
            "a repeated id",
            json!({"ids": [ids[0], ids[0]], "patch": date}),
            "is given twice",
        ),
        (
            "no operations",
            json!({"ids": ids, "patch": []}),
            "patch must hold at least one operation",
        ),
        (
            "a date in the past",
            json!({"ids": ids, "patch": [{"op": "replace", "path": "/expirationDate", "value": "2001-01-01T00:00:00Z"}]}),
            "expirationDate must be in the future",
        ),
    ];
    for (case, body, want) in cases {
        let response = bulk(&app, &app.admin_token, reqwest::Method::POST, body).await;
        let (status, code, cause) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{case}"
        );
        assert!(cause.contains(want), "{case}: {cause}");
    }
    for body in [json!({"ids": ids}), json!({"patch": date}), json!([1])] {
        let (status, code, _) =
            error_of(bulk(&app, &app.admin_token, reqwest::Method::POST, body).await).await;
        assert_eq!((status, code.as_str()), (400, "400.0 Bad Request Syntax"));
    }
    assert_eq!(
        app.list_ok(&app.admin_token, AWARE, "").await,
        before,
        "the database is unchanged"
    );
}

#[tokio::test]
async fn bulk_update_needs_its_right() {
    let app = spawn_app().await;
    let ids = three_pats(&app).await;
    let body = json!({"ids": ids, "patch": [{"op": "replace", "path": "/expirationDate", "value": "2095-01-01T00:00:00Z"}]});
    let user = app.actor("plain", "USER", &[], &["sp:scopes:all"]).await;
    assert_eq!(
        bulk(&app, &user.token, reqwest::Method::PATCH, body.clone())
            .await
            .status(),
        403
    );
    let updater = app
        .actor(
            "updater",
            "USER",
            &["idn:all-personal-access-tokens:update"],
            &["sp:scopes:all"],
        )
        .await;
    assert_eq!(
        bulk(&app, &updater.token, reqwest::Method::PATCH, body)
            .await
            .status(),
        200
    );
    // A managed PAT is unknown to a caller without the managed right.
    let managed = app
        .admin_pat(
            &app.bootstrap.owner.id,
            "managed",
            &[],
            AdminExpiry::Default,
            true,
        )
        .await;
    let body = json!({"ids": [managed.id], "patch": [{"op": "replace", "path": "/expirationDate", "value": "2095-01-01T00:00:00Z"}]});
    let (status, _, cause) =
        error_of(bulk(&app, &updater.token, reqwest::Method::PATCH, body.clone()).await).await;
    assert_eq!(status, 400);
    assert!(cause.contains(&managed.id));
    assert_eq!(
        bulk(&app, &app.admin_token, reqwest::Method::PATCH, body)
            .await
            .status(),
        200
    );
}
