//! `patd-client` against the real server.

use crate::helpers::*;
use patd_client::{
    ApiVersion, Client, CreatePersonalAccessTokenRequest, Error, JsonPatchOperation, ListOptions,
};
use patd_server::ratelimit::Limit;
use std::time::Duration;

fn client_for(app: &TestApp, id: &str, secret: &str) -> Client {
    Client::builder(&app.base)
        .credentials(id, secret)
        .build()
        .unwrap()
}

fn replace(path: &str, value: serde_json::Value) -> JsonPatchOperation {
    JsonPatchOperation {
        op: "replace".into(),
        path: path.into(),
        from: None,
        value: Some(value),
    }
}

fn named(name: &str) -> CreatePersonalAccessTokenRequest {
    // A date every version accepts: the never-expires-aware ones require one or an acknowledgement.
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    CreatePersonalAccessTokenRequest {
        name: Some(name.to_owned()),
        expiration_date: Some(expires),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_operation_works_through_the_client_on_every_version() {
    let app = spawn_app().await;
    let client = client_for(&app, &app.bootstrap.id, &app.bootstrap.secret);
    for version in ApiVersion::ALL {
        let created = client
            .create(version, &named(&format!("client {version:?}")))
            .await
            .unwrap();
        assert!(created.secret.starts_with("patd_"));
        let page = client
            .list(
                version,
                &ListOptions {
                    filters: Some(format!("name eq \"client {version:?}\"")),
                    count: true,
                    ..ListOptions::mine()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.total, Some(1));
        assert_eq!(page.items[0].id, created.id);
        let patched = client
            .patch(
                version,
                &created.id,
                &[replace("/name", serde_json::json!("renamed"))],
            )
            .await
            .unwrap();
        assert_eq!(patched.name, "renamed");
        client.delete(version, &created.id).await.unwrap();
        let err = client.delete(version, &created.id).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.body().unwrap().detail_code, "404 Not found");
    }
    // Bulk update, on the v1 layout.
    let ids: Vec<String> = futures::future::join_all((0..3).map(|n| {
        let client = client.clone();
        async move {
            let mut request = named(&format!("bulk {n}"));
            request.expiration_date = None;
            request.user_aware_token_never_expires = Some(true);
            client.create(ApiVersion::V1, &request).await.unwrap().id
        }
    }))
    .await;
    let updated = client
        .bulk_update(
            &ids,
            &[replace(
                "/expirationDate",
                serde_json::json!("2099-01-01T00:00:00Z"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(updated.len(), 3);
    assert!(updated.iter().all(|pat| pat.expiration_date.is_some()));
}

#[tokio::test]
async fn errors_are_typed_and_carry_the_body() {
    let app = spawn_app().await;
    let client = client_for(&app, &app.bootstrap.id, &app.bootstrap.secret);
    let err = client.create(ApiVersion::V3, &named("")).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadRequest(body) if body.causes[0].text == "name must not be blank"),
        "{err}"
    );
    let user = app
        .actor(
            "reader",
            "USER",
            &[],
            &["sp:my-personal-access-tokens:read"],
        )
        .await;
    let reader = client_for(&app, &user.pat.id, &user.pat.secret);
    let err = reader
        .create(ApiVersion::V3, &named("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    let wrong = client_for(&app, &app.bootstrap.id, "patd_not_the_secret");
    let err = wrong
        .list(ApiVersion::V3, &ListOptions::mine())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { status: 401, body } if body.error == "invalid_client"),
        "{err}"
    );
    let stale = Client::builder(&app.base)
        .access_token("not.a.token")
        .build()
        .unwrap();
    let err = stale
        .list(ApiVersion::V3, &ListOptions::mine())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized(text) if text.starts_with("JWT validation failed")),
        "{err}"
    );
    let nowhere = Client::builder("http://127.0.0.1:9")
        .credentials("a", "b")
        .build()
        .unwrap();
    let err = nowhere
        .list(ApiVersion::V3, &ListOptions::mine())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
    assert!(Client::builder("not a url")
        .credentials("a", "b")
        .build()
        .is_err());
}

#[tokio::test]
async fn the_access_token_is_cached_and_refreshed_before_it_expires() {
    let app = spawn_app().await;
    let created = app
        .create_ok(
            &app.admin_token,
            CLASSIC,
            serde_json::json!({"name": "short-lived", "accessTokenValiditySeconds": 15}),
        )
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let client = Client::builder(&app.base)
        .credentials(id, secret)
        .refresh_before(Duration::from_secs(14))
        .build()
        .unwrap();
    let first = client.access_token().await.unwrap();
    assert_eq!(client.access_token().await.unwrap(), first, "cached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = client.access_token().await.unwrap();
    assert_ne!(
        second, first,
        "refreshed a second before the 15 s token's refresh point"
    );
    // Default margin: a tenth of the life, so the 15 s token is reused for 13.5 s.
    let default = client_for(&app, id, secret);
    let token = default.access_token().await.unwrap();
    assert_eq!(default.access_token().await.unwrap(), token);
}

#[tokio::test]
async fn a_429_is_waited_out_a_bounded_number_of_times() {
    let app = spawn_app_with(|config| {
        config.rate_limit = Limit::PerWindow {
            requests: 2,
            seconds: 1,
        }
    })
    .await;
    let patient = Client::builder(&app.base)
        .access_token(&app.admin_token)
        .max_retries(5)
        .build()
        .unwrap();
    for _ in 0..5 {
        patient
            .list(ApiVersion::V3, &ListOptions::mine())
            .await
            .unwrap();
    }
    let impatient = Client::builder(&app.base)
        .access_token(&app.admin_token)
        .max_retries(0)
        .build()
        .unwrap();
    let mut limited = None;
    for _ in 0..5 {
        if let Err(err) = impatient.list(ApiVersion::V3, &ListOptions::mine()).await {
            limited = Some(err);
            break;
        }
    }
    let err = limited.expect("the limit was reached");
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_client_rotates_a_pat_and_its_own() {
    let app = spawn_app().await;
    let admin = client_for(&app, &app.bootstrap.id, &app.bootstrap.secret);
    let created = admin
        .create(ApiVersion::V2025, &named("rotated by the client"))
        .await
        .unwrap();
    let request = patd_client::RotatePersonalAccessTokenRequest {
        grace_period_seconds: Some(60),
        ..Default::default()
    };
    let rotated = admin.rotate(&created.id, &request).await.unwrap();
    assert_eq!(rotated.id, created.id);
    assert_ne!(rotated.secret, created.secret);
    client_for(&app, &created.id, &rotated.secret)
        .exchange()
        .await
        .unwrap();
    // A PAT that may rotate itself, through its own client.
    let robot = app
        .actor(
            "robot",
            "USER",
            &[],
            &["patd:self-rotate", "sp:scopes:default"],
        )
        .await;
    let own = client_for(&app, &robot.pat.id, &robot.pat.secret);
    let renewed = own
        .rotate_self(&patd_client::RotatePersonalAccessTokenRequest::default())
        .await
        .unwrap();
    assert_eq!(renewed.id, robot.pat.id);
    client_for(&app, &robot.pat.id, &renewed.secret)
        .exchange()
        .await
        .unwrap();
    let refused = client_for(&app, &robot.pat.id, &robot.pat.secret)
        .exchange()
        .await;
    assert!(
        matches!(refused, Err(Error::OAuth { status: 401, .. })),
        "{refused:?}"
    );
    // Without the scope entry: a typed 403.
    let plain = client_for(&app, &created.id, &rotated.secret);
    let denied = plain
        .rotate_self(&patd_client::RotatePersonalAccessTokenRequest::default())
        .await;
    assert!(matches!(denied, Err(Error::Forbidden(_))), "{denied:?}");
}
