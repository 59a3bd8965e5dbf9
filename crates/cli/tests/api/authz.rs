//! The authorization matrix: callers × operations → expected status.

use crate::helpers::*;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    User,
    /// ORG_ADMIN whose token's scope leaves out the managed right.
    OrgAdmin,
    /// ORG_ADMIN with every right, the managed one included.
    OrgAdminManaged,
    /// A token scoped to `my-personal-access-tokens:read` only.
    ScopedReadMy,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    ListMine,
    ListOther,
    ListAll,
    Create,
    PatchOwn,
    PatchOthers,
    DeleteOwn,
    DeleteOthers,
    PatchOthersManaged,
}

const ADMIN_NO_MANAGED: [&str; 5] = [
    "sp:my-personal-access-tokens:read",
    "sp:my-personal-access-tokens:manage",
    "idn:all-personal-access-tokens:read",
    "idn:all-personal-access-tokens:manage",
    "idn:all-personal-access-tokens:update",
];

#[tokio::test]
async fn authorization_matrix() {
    use Caller::*;
    use Op::*;
    let app = spawn_app().await;
    let target = app.actor("target", "USER", &[], &["sp:scopes:all"]).await;
    let mut actors = Vec::new();
    for (caller, level, scope) in [
        (User, "USER", vec!["sp:scopes:all"]),
        (OrgAdmin, "ORG_ADMIN", ADMIN_NO_MANAGED.to_vec()),
        (OrgAdminManaged, "ORG_ADMIN", vec!["sp:scopes:all"]),
        (
            ScopedReadMy,
            "USER",
            vec!["sp:my-personal-access-tokens:read"],
        ),
    ] {
        actors.push((
            caller,
            app.actor(&format!("{caller:?}"), level, &[], &scope).await,
        ));
    }
    let cases = [
        (User, ListMine, 200),
        (User, ListOther, 403),
        (User, ListAll, 403),
        (User, Create, 200),
        (User, PatchOwn, 200),
        (User, PatchOthers, 404),
        (User, DeleteOwn, 204),
        (User, DeleteOthers, 404),
        (User, PatchOthersManaged, 404),
        (OrgAdmin, ListMine, 200),
        (OrgAdmin, ListOther, 200),
        (OrgAdmin, ListAll, 200),
        // Its token lacks the managed right that the default scope (sp:scopes:all) would give.
        (OrgAdmin, Create, 403),
        (OrgAdmin, PatchOwn, 200),
        (OrgAdmin, PatchOthers, 200),
        (OrgAdmin, DeleteOwn, 204),
        (OrgAdmin, DeleteOthers, 204),
        (OrgAdmin, PatchOthersManaged, 404),
        (OrgAdminManaged, ListMine, 200),
        (OrgAdminManaged, ListOther, 200),
        (OrgAdminManaged, ListAll, 200),
        (OrgAdminManaged, Create, 200),
        (OrgAdminManaged, PatchOwn, 200),
        (OrgAdminManaged, PatchOthers, 200),
        (OrgAdminManaged, DeleteOwn, 204),
        (OrgAdminManaged, DeleteOthers, 204),
        (OrgAdminManaged, PatchOthersManaged, 200),
        (ScopedReadMy, ListMine, 200),
        (ScopedReadMy, ListOther, 403),
        (ScopedReadMy, ListAll, 403),
        (ScopedReadMy, Create, 403),
        (ScopedReadMy, PatchOwn, 403),
        (ScopedReadMy, PatchOthers, 403),
        (ScopedReadMy, DeleteOwn, 403),
        (ScopedReadMy, DeleteOthers, 403),
        (ScopedReadMy, PatchOthersManaged, 403),
    ];
    for (n, (caller, op, want)) in cases.into_iter().enumerate() {
        let actor = &actors.iter().find(|(c, _)| *c == caller).unwrap().1;
        let own = &actor.identity.id;
        let rename = json!([{"op": "replace", "path": "/name", "value": format!("renamed {n}")}]);
        let response = match op {
            ListMine => app.list(&actor.token, CLASSIC, "owner-id=me").await,
            ListOther => {
                app.list(
                    &actor.token,
                    CLASSIC,
                    &format!("owner-id={}", target.identity.id),
                )
                .await
            }
            ListAll => app.list(&actor.token, CLASSIC, "").await,
            Create => {
                app.create(
                    &actor.token,
                    CLASSIC,
                    json!({"name": format!("created {n}")}),
                )
                .await
            }
            PatchOwn | DeleteOwn => {
                let pat = app
                    .admin_pat(own, &format!("own {n}"), &[], AdminExpiry::Default, false)
                    .await;
                match op {
                    PatchOwn => app.patch(&actor.token, CLASSIC, &pat.id, rename).await,
                    _ => app.delete(&actor.token, CLASSIC, &pat.id).await,
                }
            }
            PatchOthers | DeleteOthers | PatchOthersManaged => {
                let managed = matches!(op, PatchOthersManaged);
                let pat = app
                    .admin_pat(
                        &target.identity.id,
                        &format!("other {n}"),
                        &[],
                        AdminExpiry::Default,
                        managed,
                    )
                    .await;
                match op {
                    DeleteOthers => app.delete(&actor.token, CLASSIC, &pat.id).await,
                    _ => app.patch(&actor.token, CLASSIC, &pat.id, rename).await,
                }
            }
        };
        let got = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(got, want, "{caller:?} doing {op:?}: {body}");
    }
}

#[tokio::test]
async fn lists_show_exactly_what_the_caller_may_see() {
    let app = spawn_app().await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let bob = app.actor("bob", "USER", &[], &["sp:scopes:all"]).await;
    let visible = app
        .admin_pat(
            &bob.identity.id,
            "visible",
            &[],
            AdminExpiry::Default,
            false,
        )
        .await;
    let hidden = app
        .admin_pat(&bob.identity.id, "hidden", &[], AdminExpiry::Default, true)
        .await;
    let admin = app
        .actor("scoped admin", "ORG_ADMIN", &[], &ADMIN_NO_MANAGED)
        .await;
    let ids = |items: Vec<serde_json::Value>| {
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    // Alice sees only her own, by `me` or by her id.
    assert_eq!(
        ids(app.list_ok(&alice.token, CLASSIC, "owner-id=me").await),
        vec![alice.pat.id.clone()]
    );
    assert_eq!(
        ids(app
            .list_ok(
                &alice.token,
                CLASSIC,
                &format!("owner-id={}", alice.identity.id)
            )
            .await),
        vec![alice.pat.id.clone()]
    );
    // Bob does not see his managed PAT without the managed right.
    assert_eq!(
        ids(app.list_ok(&bob.token, CLASSIC, "owner-id=me").await),
        [bob.pat.id.clone(), visible.id.clone()]
    );
    let all = ids(app.list_ok(&admin.token, CLASSIC, "").await);
    assert!(all.contains(&alice.pat.id) && all.contains(&visible.id) && !all.contains(&hidden.id));
    // The managed right shows it.
    let all = ids(app.list_ok(&app.admin_token, CLASSIC, "").await);
    assert!(all.contains(&hidden.id));
    let bobs = app
        .list_ok(
            &app.admin_token,
            CLASSIC,
            &format!("owner-id={}", bob.identity.id),
        )
        .await;
    assert_eq!(bobs.iter().filter(|i| i["managed"] == true).count(), 1);
    // An unknown owner has no PATs.
    assert!(app
        .list_ok(
            &app.admin_token,
            CLASSIC,
            "owner-id=86f1dc6fe8f54414950454cbb11278fa"
        )
        .await
        .is_empty());
}

#[tokio::test]
async fn extra_rights_widen_a_user() {
    let app = spawn_app().await;
    let auditor = app
        .actor(
            "auditor",
            "USER",
            &["idn:all-personal-access-tokens:read"],
            &["sp:scopes:all"],
        )
        .await;
    assert_eq!(app.list(&auditor.token, CLASSIC, "").await.status(), 200);
    // Seeing another's PAT is not the right to change it.
    let response = app
        .patch(
            &auditor.token,
            CLASSIC,
            &app.bootstrap.id,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn forbidden_answers_name_the_rights_that_would_allow_the_call() {
    let app = spawn_app().await;
    let user = app.actor("user", "USER", &[], &["sp:scopes:all"]).await;
    let reader = app
        .actor(
            "reader",
            "USER",
            &[],
            &["sp:my-personal-access-tokens:read"],
        )
        .await;
    let auditor = app
        .actor(
            "auditor",
            "USER",
            &["idn:all-personal-access-tokens:read"],
            &["sp:scopes:all"],
        )
        .await;
    let rename = json!([{"op": "replace", "path": "/name", "value": "x"}]);
    let bulk = app
        .client
        .post(app.url("/personal-access-tokens/v1/bulk-update"))
        .bearer_auth(&user.token)
        .json(&json!({"ids": [user.pat.id], "patch": [
            {"op": "replace", "path": "/expirationDate", "value": "2099-01-01T00:00:00Z"}]}))
        .send()
        .await
        .unwrap();
    let cases = [
        (
            app.list(&user.token, CLASSIC, "").await,
            "requires one of the rights idn:all-personal-access-tokens:read, \
             idn:all-personal-access-tokens:manage",
        ),
        (
            app.create(&reader.token, AWARE, json!({"name": "nope"}))
                .await,
            "requires one of the rights idn:my-personal-access-tokens:manage, \
             idn:all-personal-access-tokens:manage",
        ),
        (
            app.patch(&auditor.token, CLASSIC, &app.bootstrap.id, rename)
                .await,
            "requires the right idn:all-personal-access-tokens:manage",
        ),
        (
            bulk,
            "requires the right idn:all-personal-access-tokens:update",
        ),
    ];
    for (response, want) in cases {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.unwrap();
        let (code, cause) = error_body_of(&content_type, &request_id, &body);
        assert_eq!(code, "403 Forbidden");
        assert_eq!(cause, want);
        // One cause, of the ErrorMessageDto shape and nothing more.
        assert_eq!(
            body["causes"],
            json!([{"locale": "en-US", "localeOrigin": "DEFAULT", "text": want}])
        );
        assert_eq!(
            keys_of(&body),
            ["causes", "detailCode", "messages", "trackingId"]
        );
    }
}
