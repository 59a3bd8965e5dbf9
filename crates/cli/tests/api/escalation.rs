//! A narrowed token cannot mint or patch itself a wider PAT (issue 17, item 2): for each scope a
//! caller's token may hold, what it may create and what it may patch a scope to.

use crate::helpers::*;
use serde_json::{json, Value};

const MY_READ: &str = "idn:my-personal-access-tokens:read";
const MY_MANAGE: &str = "idn:my-personal-access-tokens:manage";
const ALL_READ: &str = "idn:all-personal-access-tokens:read";
const ALL_MANAGE: &str = "idn:all-personal-access-tokens:manage";

/// The 403's one cause for a scope that reaches past the token.
fn wider_cause(cause: &str) -> bool {
    cause.contains("which the calling token does not hold")
        || cause.contains("may be given only by a token whose own scope holds it")
}

/// A token's scope, the scope it asks for (`None`: omitted), and the status it gets.
type Case<'a> = (&'a [&'a str], Option<&'a [&'a str]>, u16);

#[tokio::test]
async fn a_token_creates_no_pat_wider_than_itself() {
    let app = spawn_app().await;
    // (token scope, requested scope (None: omitted, so sp:scopes:all), expected status), for an
    // ORG_ADMIN owner, who holds every right.
    let all: Option<&[&str]> = Some(&["sp:scopes:all"]);
    let cases: Vec<Case> = vec![
        // The reported escalation: manage-only asks for everything, by default or by name.
        (&[MY_MANAGE], None, 403),
        (&[MY_MANAGE], all, 403),
        (&[MY_MANAGE], Some(&[ALL_MANAGE]), 403),
        (
            &["sp:my-personal-access-tokens:manage"],
            Some(&[MY_READ]),
            403,
        ),
        (&[MY_MANAGE], Some(&["sp:scopes:default"]), 403),
        (&[MY_MANAGE], Some(&[MY_MANAGE]), 200),
        (
            &[MY_MANAGE],
            Some(&["sp:my-personal-access-tokens:manage"]),
            200,
        ),
        (&[MY_MANAGE], Some(&["demo:unknown"]), 200),
        (&[MY_READ, MY_MANAGE], Some(&["sp:scopes:default"]), 200),
        (&[MY_READ, MY_MANAGE], Some(&[MY_READ, MY_MANAGE]), 200),
        (&[MY_READ, MY_MANAGE], Some(&[ALL_READ]), 403),
        (&[MY_READ, MY_MANAGE], None, 403),
        (&[ALL_MANAGE], Some(&[ALL_MANAGE]), 200),
        (&[ALL_MANAGE], Some(&[MY_MANAGE]), 403),
        // A token of sp:scopes:all (every SDK flow) is not limited.
        (&["sp:scopes:all"], None, 200),
        (&["sp:scopes:all"], all, 200),
        (
            &["sp:scopes:all"],
            Some(&[ALL_MANAGE, "idn:audit-events:read"]),
            200,
        ),
    ];
    for (n, (token_scope, requested, want)) in cases.into_iter().enumerate() {
        let actor = app
            .actor(&format!("admin {n}"), "ORG_ADMIN", &[], token_scope)
            .await;
        let mut body = json!({"name": format!("made {n}")});
        if let Some(scope) = requested {
            body["scope"] = json!(scope);
        }
        let response = app.create(&actor.token, CLASSIC, body).await;
        assert_eq!(
            response.status(),
            want,
            "token {token_scope:?} creating {requested:?}"
        );
        if want == 403 {
            let (_, code, cause) = error_of(response).await;
            assert_eq!(code, "403 Forbidden");
            assert!(wider_cause(&cause), "{cause}");
        }
    }

    // A USER's token naming both of its rights holds all it has today, but sp:scopes:all would
    // follow the owner's rights wherever they go.
    let user = app.actor("user", "USER", &[], &[MY_READ, MY_MANAGE]).await;
    let response = app
        .create(&user.token, CLASSIC, json!({"name": "wide"}))
        .await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 403);
    assert!(cause.contains("sp:scopes:all may be given only"), "{cause}");

    // The missing rights are named.
    let narrow = app.actor("narrow", "ORG_ADMIN", &[], &[MY_MANAGE]).await;
    let response = app
        .create(
            &narrow.token,
            CLASSIC,
            json!({"name": "x", "scope": [ALL_MANAGE, MY_READ]}),
        )
        .await;
    let (_, _, cause) = error_of(response).await;
    assert_eq!(
        cause,
        format!(
            "the scope would grant {MY_READ}, {ALL_MANAGE}, which the calling token does not hold"
        )
    );
    // Nothing was created by the refused calls.
    let mine = app
        .list_ok(
            &app.admin_token,
            CLASSIC,
            &format!("owner-id={}", narrow.identity.id),
        )
        .await;
    assert_eq!(mine.len(), 1, "{mine:?}");
}

#[tokio::test]
async fn a_token_patches_no_scope_wider_than_itself() {
    let app = spawn_app().await;
    let narrow = app.actor("narrow", "ORG_ADMIN", &[], &[MY_MANAGE]).await;
    let own = &narrow.pat.id;
    let patch_scope = |value: Value| json!([{"op": "replace", "path": "/scope", "value": value}]);
    for (patch, want) in [
        (patch_scope(json!(["sp:scopes:all"])), 403),
        (
            json!([{"op": "add", "path": "/scope/-", "value": ALL_MANAGE}]),
            403,
        ),
        (patch_scope(json!([MY_MANAGE, MY_READ])), 403),
        (json!([{"op": "remove", "path": "/scope"}]), 403),
        (patch_scope(json!([MY_MANAGE, "demo:x"])), 200),
        (patch_scope(json!([MY_MANAGE])), 200),
    ] {
        let response = app.patch(&narrow.token, CLASSIC, own, patch.clone()).await;
        assert_eq!(response.status(), want, "{patch}");
        if want == 403 {
            let (_, _, cause) = error_of(response).await;
            assert!(wider_cause(&cause), "{cause}");
        }
    }
    // The PAT kept the last scope it was allowed, and its tokens still cannot list the tenant.
    let listed = app
        .list_ok(
            &app.admin_token,
            CLASSIC,
            &format!("owner-id={}", narrow.identity.id),
        )
        .await;
    assert_eq!(listed[0]["scope"], json!([MY_MANAGE]));
    let token = app.exchange(own, &narrow.pat.secret).await;
    assert_eq!(app.list(&token, CLASSIC, "").await.status(), 403);

    // Renaming a wider PAT changes no scope, so it is allowed.
    let wide = app
        .admin_pat(
            &narrow.identity.id,
            "wide",
            &["sp:scopes:all"],
            AdminExpiry::Default,
            false,
        )
        .await;
    let rename = json!([{"op": "replace", "path": "/name", "value": "renamed"}]);
    assert_eq!(
        app.patch(&narrow.token, CLASSIC, &wide.id, rename)
            .await
            .status(),
        200
    );

    // An administrator's narrowed token patching someone else's PAT is judged by that owner's
    // rights.
    let manager = app.actor("manager", "ORG_ADMIN", &[], &[ALL_MANAGE]).await;
    let target = app.actor("target", "USER", &[], &[MY_MANAGE]).await;
    for (value, want) in [
        (json!(["sp:scopes:all"]), 403),
        (json!([MY_READ]), 403),
        (json!([ALL_MANAGE]), 200),
    ] {
        let response = app
            .patch(
                &manager.token,
                CLASSIC,
                &target.pat.id,
                patch_scope(value.clone()),
            )
            .await;
        assert_eq!(response.status(), want, "{value}");
    }
    // A token of sp:scopes:all may widen as before.
    let response = app
        .patch(
            &app.admin_token,
            CLASSIC,
            own,
            patch_scope(json!(["sp:scopes:all"])),
        )
        .await;
    assert_eq!(response.status(), 200);
}
