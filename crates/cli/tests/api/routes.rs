//! Every route on every prefix, with success bodies checked field by field against §2.

use crate::helpers::*;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const CREATE_KEYS: [&str; 8] = [
    "accessTokenValiditySeconds",
    "created",
    "expirationDate",
    "id",
    "name",
    "owner",
    "scope",
    "secret",
];

fn get_keys(aware: bool) -> Vec<String> {
    let mut keys = vec![
        "accessTokenValiditySeconds",
        "created",
        "expirationDate",
        "id",
        "lastUsed",
        "managed",
        "name",
        "owner",
        "scope",
    ];
    if aware {
        keys.push("userAwareTokenNeverExpires");
    }
    let mut keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn every_pat_route_works_on_every_prefix_with_exact_bodies() {
    let app = spawn_app().await;
    let admin_id = app.bootstrap.owner.id.clone();
    for (prefix, aware) in PREFIXES {
        let before = OffsetDateTime::now_utc() - Duration::milliseconds(1);
        let name = format!("ci {prefix}");
        let mut request = json!({"name": name, "scope": ["sp:scopes:default"], "accessTokenValiditySeconds": 600});
        if aware {
            request["expirationDate"] = json!("2099-01-01T00:00:00.000Z");
        }
        // Create.
        let response = app.create(&app.admin_token, prefix, request).await;
        assert_eq!(response.status(), 200, "{prefix}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let created: Value = response.json().await.unwrap();
        assert_eq!(keys_of(&created), CREATE_KEYS, "{prefix}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(is_hex32(&id));
        assert!(created["secret"].as_str().unwrap().starts_with("patd_"));
        assert_eq!(created["name"], name.as_str());
        assert_eq!(created["scope"], json!(["sp:scopes:default"]));
        assert_eq!(
            created["owner"],
            json!({"type": "IDENTITY", "id": admin_id, "name": "admin"})
        );
        assert_eq!(created["accessTokenValiditySeconds"], 600);
        assert!(
            is_millis_timestamp(&created["created"]),
            "{}",
            created["created"]
        );
        let created_at = parse_ts(&created["created"]);
        assert!(created_at >= before && created_at <= OffsetDateTime::now_utc());
        let expected_expiry = if aware {
            json!("2099-01-01T00:00:00.000Z")
        } else {
            // Six calendar months after creation, to the millisecond.
            let at = created_at;
            let months = at.month() as u8 + 6;
            let (year, month) = if months > 12 {
                (at.year() + 1, months - 12)
            } else {
                (at.year(), months)
            };
            let month = time::Month::try_from(month).unwrap();
            let day = at.day().min(time::util::days_in_month(month, year));
            let date = time::Date::from_calendar_date(year, month, day).unwrap();
            json!(patd_proto::timestamp::format(at.replace_date(date)))
        };
        assert_eq!(created["expirationDate"], expected_expiry, "{prefix}");

        // List.
        let listed = app.list_ok(&app.admin_token, prefix, "owner-id=me").await;
        let item = listed
            .iter()
            .find(|item| item["id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(keys_of(&item), get_keys(aware), "{prefix}");
        assert_eq!(item["name"], name.as_str());
        assert_eq!(item["scope"], json!(["sp:scopes:default"]));
        assert_eq!(item["owner"], created["owner"]);
        assert_eq!(item["created"], created["created"]);
        assert_eq!(item["lastUsed"], Value::Null);
        assert_eq!(item["managed"], false);
        assert_eq!(item["accessTokenValiditySeconds"], 600);
        assert_eq!(item["expirationDate"], created["expirationDate"]);
        if aware {
            assert_eq!(item["userAwareTokenNeverExpires"], false);
        }
        assert!(item.get("secret").is_none());

        // Patch.
        let renamed = format!("renamed {prefix}");
        let response = app
            .patch(
                &app.admin_token,
                prefix,
                &id,
                json!([{"op": "replace", "path": "/name", "value": renamed}]),
            )
            .await;
        assert_eq!(response.status(), 200, "{prefix}");
        let patched: Value = response.json().await.unwrap();
        assert_eq!(keys_of(&patched), get_keys(aware));
        assert_eq!(patched["name"], renamed.as_str());
        let mut unchanged = item.clone();
        unchanged["name"] = json!(renamed);
        assert_eq!(patched, unchanged, "only the name changed");

        // Delete.
        let response = app.delete(&app.admin_token, prefix, &id).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.unwrap().is_empty());
        let listed = app.list_ok(&app.admin_token, prefix, "").await;
        assert!(listed.iter().all(|item| item["id"] != id.as_str()));
        let response = app.delete(&app.admin_token, prefix, &id).await;
        assert_eq!(response.status(), 404);
    }
}

#[tokio::test]
async fn never_expiring_tokens_show_null_expiration_everywhere() {
    let app = spawn_app().await;
    for prefix in [
        "/v2025/personal-access-tokens",
        "/personal-access-tokens/v1",
    ] {
        let created = app
            .create_ok(
                &app.admin_token,
                prefix,
                json!({"name": format!("forever {prefix}"), "userAwareTokenNeverExpires": true}),
            )
            .await;
        assert_eq!(created["expirationDate"], Value::Null);
        assert_eq!(keys_of(&created), CREATE_KEYS);
        let id = created["id"].as_str().unwrap();
        for (list_prefix, aware) in PREFIXES {
            let listed = app.list_ok(&app.admin_token, list_prefix, "").await;
            let item = listed.iter().find(|item| item["id"] == id).unwrap();
            assert_eq!(item["expirationDate"], Value::Null, "{list_prefix}");
            if aware {
                assert_eq!(item["userAwareTokenNeverExpires"], true);
            } else {
                assert!(item.get("userAwareTokenNeverExpires").is_none());
            }
        }
    }
}

#[tokio::test]
async fn defaults_apply_when_fields_are_omitted_or_null() {
    let app = spawn_app().await;
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "nulls", "scope": null, "accessTokenValiditySeconds": null, "expirationDate": null, "unknown": 1}))
        .await;
    assert_eq!(created["scope"], json!(["sp:scopes:all"]));
    assert_eq!(created["accessTokenValiditySeconds"], 43200);
    assert!(is_millis_timestamp(&created["expirationDate"]));
    // Classic ignores userAwareTokenNeverExpires.
    let created = app
        .create_ok(
            &app.admin_token,
            CLASSIC,
            json!({"name": "classic ignores", "userAwareTokenNeverExpires": true}),
        )
        .await;
    assert!(is_millis_timestamp(&created["expirationDate"]));
    // Names are trimmed.
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "  spaced  "}))
        .await;
    assert_eq!(created["name"], "spaced");
}

#[tokio::test]
async fn aware_patch_can_move_and_clear_the_expiration() {
    let app = spawn_app().await;
    let created = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "dated", "expirationDate": "2030-01-01T00:00:00Z"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let response = app.patch(&app.admin_token, "/personal-access-tokens/v1", id, json!([{"op": "replace", "path": "/expirationDate", "value": "2031-02-03T04:05:06.789Z"}])).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expirationDate"], "2031-02-03T04:05:06.789Z");
    let response = app
        .patch(
            &app.admin_token,
            AWARE,
            id,
            json!([
                {"op": "replace", "path": "/expirationDate", "value": null},
                {"op": "replace", "path": "/userAwareTokenNeverExpires", "value": true}
            ]),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expirationDate"], Value::Null);
    assert_eq!(body["userAwareTokenNeverExpires"], true);
    // Scope edits through an array index.
    let response = app
        .patch(
            &app.admin_token,
            CLASSIC,
            id,
            json!([{"op": "add", "path": "/scope/-", "value": "demo:x"}]),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], json!(["sp:scopes:all", "demo:x"]));
    assert!(body.get("userAwareTokenNeverExpires").is_none());
}

#[tokio::test]
async fn patch_accepts_application_json_too() {
    let app = spawn_app().await;
    let created = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "json"}))
        .await;
    let response = app
        .client
        .patch(app.url(&format!("{CLASSIC}/{}", created["id"].as_str().unwrap())))
        .bearer_auth(&app.admin_token)
        .json(&json!([{"op": "replace", "path": "/name", "value": "via json"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn discovery_documents_are_served() {
    let app = spawn_app().await;
    let info: Value = app
        .client
        .get(app.url("/oauth/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["tokenEndpoint"], format!("{}/oauth/token", app.base));
    for key in ["tenantId", "tenantName", "pod", "org"] {
        assert!(info[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert!(key["kid"].as_str().is_some());
    assert!(
        key.get("d").is_none(),
        "the private part is never published"
    );
}
