//! Each validation rule gives its 400 with a cause; unknown and hidden PATs give 404.

use crate::helpers::*;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

fn ts(at: OffsetDateTime) -> String {
    patd_proto::timestamp::format(at)
}

#[tokio::test]
async fn each_create_rule_gives_400_content_with_its_cause() {
    let app = spawn_app().await;
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "taken"}))
        .await;
    let now = OffsetDateTime::now_utc();
    let cases: Vec<(&str, Value, &str)> = vec![
        (CLASSIC, json!({}), "name is required"),
        (CLASSIC, json!({"name": null}), "name is required"),
        (CLASSIC, json!({"name": "   "}), "name must not be blank"),
        (
            CLASSIC,
            json!({"name": "x".repeat(129)}),
            "name must be at most 128 characters",
        ),
        (
            CLASSIC,
            json!({"name": "bell\u{7}"}),
            "name must not contain control characters",
        ),
        (
            CLASSIC,
            json!({"name": "taken"}),
            "name 'taken' is already used",
        ),
        (
            CLASSIC,
            json!({"name": "s", "scope": []}),
            "scope must not be empty",
        ),
        (
            CLASSIC,
            json!({"name": "s", "scope": ["has space"]}),
            "scope entry 'has space'",
        ),
        (
            CLASSIC,
            json!({"name": "s", "scope": ["a".repeat(257)]}),
            "scope entry",
        ),
        (
            CLASSIC,
            json!({"name": "s", "scope": vec!["a"; 51]}),
            "scope must have at most 50 entries",
        ),
        (
            CLASSIC,
            json!({"name": "v", "accessTokenValiditySeconds": 14}),
            "accessTokenValiditySeconds must be between 15 and 43200",
        ),
        (
            CLASSIC,
            json!({"name": "v", "accessTokenValiditySeconds": 43201}),
            "accessTokenValiditySeconds must be between 15 and 43200",
        ),
        (
            CLASSIC,
            json!({"name": "e", "expirationDate": ts(now - Duration::minutes(1))}),
            "expirationDate must be in the future",
        ),
        (
            CLASSIC,
            json!({"name": "e", "expirationDate": ts(now + Duration::days(190))}),
            "expirationDate must be at most 6 months",
        ),
        (
            AWARE,
            json!({"name": "e"}),
            "expirationDate may be null only when userAwareTokenNeverExpires is true",
        ),
        (
            AWARE,
            json!({"name": "e", "userAwareTokenNeverExpires": false}),
            "expirationDate may be null only",
        ),
        (
            AWARE,
            json!({"name": "e", "expirationDate": null, "userAwareTokenNeverExpires": null}),
            "expirationDate may be null only",
        ),
        (
            AWARE,
            json!({"name": "e", "expirationDate": ts(now - Duration::minutes(1)), "userAwareTokenNeverExpires": true}),
            "expirationDate must be in the future",
        ),
    ];
    for (prefix, body, want) in cases {
        let response = app.create(&app.admin_token, prefix, body.clone()).await;
        let (status, code, cause) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{prefix} {body}"
        );
        assert!(cause.starts_with(want), "{prefix} {body}: {cause}");
    }
    // A far expiry is fine in the never-expires-aware family.
    app.create_ok(
        &app.admin_token,
        AWARE,
        json!({"name": "far", "expirationDate": ts(now + Duration::days(3650))}),
    )
    .await;
    // Names are unique per owner by exact match: another case is another name.
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "TAKEN"}))
        .await;
}

#[tokio::test]
async fn wrong_types_give_400_syntax() {
    let app = spawn_app().await;
    for body in [
        json!({"name": 5}),
        json!({"name": "t", "scope": [1]}),
        json!({"name": "t", "accessTokenValiditySeconds": "600"}),
        json!({"name": "t", "accessTokenValiditySeconds": 60.5}),
        json!({"name": "t", "expirationDate": "next tuesday"}),
        json!({"name": "t", "userAwareTokenNeverExpires": "yes"}),
        json!(["name"]),
    ] {
        let (status, code, _) =
            error_of(app.create(&app.admin_token, AWARE, body.clone()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.0 Bad Request Syntax"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_eleventh_token_is_refused_naming_the_limit() {
    let app = spawn_app().await;
    let user = app.actor("limited", "USER", &[], &["sp:scopes:all"]).await;
    // The actor's own login PAT is the first of ten; managed ones do not count.
    app.admin_pat(
        &user.identity.id,
        "managed one",
        &[],
        AdminExpiry::Default,
        true,
    )
    .await;
    for n in 2..=10 {
        app.create_ok(&user.token, CLASSIC, json!({"name": format!("t{n}")}))
            .await;
    }
    let (status, code, cause) = error_of(
        app.create(&user.token, CLASSIC, json!({"name": "t11"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "400.1 Bad Request Content"));
    assert_eq!(cause, "an owner may have at most 10 personal access tokens");
    // Deleting one frees a place.
    let listed = app.list_ok(&user.token, CLASSIC, "owner-id=me").await;
    let t2 = listed.iter().find(|item| item["name"] == "t2").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.delete(&user.token, CLASSIC, &t2).await.status(), 204);
    app.create_ok(&user.token, CLASSIC, json!({"name": "t11"}))
        .await;
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let app = spawn_app_with(|config| config.max_tokens_per_owner = 2).await;
    // The bootstrap PAT is one.
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "second"}))
        .await;
    let (_, _, cause) = error_of(
        app.create(&app.admin_token, CLASSIC, json!({"name": "third"}))
            .await,
    )
    .await;
    assert_eq!(cause, "an owner may have at most 2 personal access tokens");
}

#[tokio::test]
async fn each_patch_rule_gives_400_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_ok(&app.admin_token, CLASSIC, json!({"name": "other"}))
        .await;
    let created = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "subject", "expirationDate": "2090-01-01T00:00:00.000Z"}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let before = app.list_ok(&app.admin_token, AWARE, "").await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            CLASSIC,
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            "400.1 Bad Request Content",
            "path '/expirationDate' is not patchable",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/id", "value": "x"}]),
            "400.1 Bad Request Content",
            "path '/id' is not patchable",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/owner/name", "value": "x"}]),
            "400.1 Bad Request Content",
            "path '/owner/name' is not patchable",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/name", "value": "new"}, {"op": "test", "path": "/name", "value": "old"}]),
            "400.1 Bad Request Content",
            "the patch could not be applied",
        ),
        (
            AWARE,
            json!([{"op": "remove", "path": "/scope/7"}]),
            "400.1 Bad Request Content",
            "the patch could not be applied",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/name", "value": "other"}]),
            "400.1 Bad Request Content",
            "name 'other' is already used",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/name", "value": ""}]),
            "400.1 Bad Request Content",
            "name must not be blank",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/scope", "value": []}]),
            "400.1 Bad Request Content",
            "scope must not be empty",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/expirationDate", "value": "2001-01-01T00:00:00Z"}]),
            "400.1 Bad Request Content",
            "expirationDate must be in the future",
        ),
        (
            AWARE,
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            "400.1 Bad Request Content",
            "expirationDate may be null only",
        ),
        (
            AWARE,
            json!({"op": "replace", "path": "/name", "value": "x"}),
            "400.0 Bad Request Syntax",
            "the body is not a JSON Patch",
        ),
        (
            AWARE,
            json!([{"op": "rename", "path": "/name"}]),
            "400.0 Bad Request Syntax",
            "the body is not a JSON Patch",
        ),
        (
            AWARE,
            json!([{"path": "/name", "value": "x"}]),
            "400.0 Bad Request Syntax",
            "the body is not a JSON Patch",
        ),
    ];
    for (prefix, body, want_code, want_cause) in cases {
        let response = app.patch(&app.admin_token, prefix, &id, body.clone()).await;
        let (status, code, cause) = error_of(response).await;
        assert_eq!((status, code.as_str()), (400, want_code), "{prefix} {body}");
        assert!(cause.starts_with(want_cause), "{body}: {cause}");
    }
    // Wrong and missing content types.
    for content_type in [Some("text/plain"), None] {
        let mut request = app
            .client
            .patch(app.url(&format!("{AWARE}/{id}")))
            .bearer_auth(&app.admin_token)
            .body("[]");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, code, _) = error_of(request.send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (400, "400.0 Bad Request Syntax"));
    }
    assert_eq!(
        app.list_ok(&app.admin_token, AWARE, "").await,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn unknown_malformed_and_foreign_ids_give_404() {
    let app = spawn_app().await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let bob = app.actor("bob", "USER", &[], &["sp:scopes:all"]).await;
    for id in [
        "86f1dc6fe8f54414950454cbb11278fa",
        "not-an-id",
        bob.pat.id.as_str(),
    ] {
        let (status, code, _) = error_of(app.delete(&alice.token, CLASSIC, id).await).await;
        assert_eq!((status, code.as_str()), (404, "404 Not found"), "{id}");
        let response = app
            .patch(
                &alice.token,
                AWARE,
                id,
                json!([{"op": "replace", "path": "/name", "value": "x"}]),
            )
            .await;
        assert_eq!(error_of(response).await.0, 404, "{id}");
    }
    // Bob's PAT is untouched.
    assert_eq!(
        app.list_ok(&bob.token, CLASSIC, "owner-id=me").await[0]["name"],
        "login"
    );
}

#[tokio::test]
async fn a_bad_owner_id_gives_400() {
    let app = spawn_app().await;
    let (status, code, cause) =
        error_of(app.list(&app.admin_token, CLASSIC, "owner-id=bogus").await).await;
    assert_eq!((status, code.as_str()), (400, "400.1 Bad Request Content"));
    assert_eq!(cause, "owner-id must be 'me' or an identity id");
}
