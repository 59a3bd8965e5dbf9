//! Date-times as .NET, PowerShell and Python write them (EXTENSIONS E1): with or without an
//! offset, with 0 to 9 fractional digits, read by one rule in create, patch, bulk update and
//! filters; stored to the millisecond.

use crate::bulk::{bulk, three_pats};
use crate::filters::urlencode;
use crate::helpers::*;
use serde_json::{json, Value};
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime};

const V1: &str = "/personal-access-tokens/v1";

/// What clients send, on distinct days, and the instant each must be stored as:
/// PowerShell's `[DateTime]` with kind Unspecified, Utc and Local (7 digits), Python's naive
/// `isoformat()` with and without microseconds.
const CLIENT_FORMS: [(&str, &str); 5] = [
    ("2090-12-08T10:00:00.1234567", "2090-12-08T10:00:00.123Z"),
    ("2090-12-09T10:00:00.9876543Z", "2090-12-09T10:00:00.987Z"),
    (
        "2090-12-10T10:00:00.1234567+01:00",
        "2090-12-10T09:00:00.123Z",
    ),
    ("2090-12-11T10:00:00.654321", "2090-12-11T10:00:00.654Z"),
    ("2090-12-12T10:00:00", "2090-12-12T10:00:00.000Z"),
];

/// Ten fractional digits, with `Z` so that `time`'s RFC 3339 parser alone would take it.
const TEN_DIGITS: &str = "2090-12-08T10:00:00.1234567890Z";
const TEN_DIGITS_CAUSE: &str = "at most 9 fractional digits";

fn replace_expiration(value: &str) -> Value {
    json!([{"op": "replace", "path": "/expirationDate", "value": value}])
}

/// The PAT named `name` as `prefix` lists it.
async fn listed(app: &TestApp, prefix: &str, name: &str) -> Value {
    let filter = urlencode(&format!("name eq \"{name}\""));
    let items = app
        .list_ok(&app.admin_token, prefix, &format!("filters={filter}"))
        .await;
    assert_eq!(items.len(), 1, "{name}: {items:?}");
    items[0].clone()
}

#[tokio::test]
async fn patching_expiration_date_takes_dotnet_and_python_date_times_on_v2025_and_v1() {
    let app = spawn_app().await;
    for prefix in [AWARE, V1] {
        let name = format!("patched on {prefix}");
        let created = app
            .create_ok(
                &app.admin_token,
                prefix,
                json!({"name": name, "expirationDate": "2090-01-01T00:00:00.000Z"}),
            )
            .await;
        let id = created["id"].as_str().unwrap();
        for (sent, stored) in CLIENT_FORMS {
            let response = app
                .patch(&app.admin_token, prefix, id, replace_expiration(sent))
                .await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{prefix} {sent}: {body}");
            assert_eq!(body["expirationDate"], stored, "{prefix} {sent}");
            assert_eq!(
                listed(&app, prefix, &name).await["expirationDate"],
                stored,
                "{prefix} {sent}"
            );
        }
    }
}

#[tokio::test]
async fn bulk_update_takes_dotnet_and_python_date_times() {
    let app = spawn_app().await;
    let ids = three_pats(&app).await;
    for (sent, stored) in CLIENT_FORMS {
        let body = json!({"ids": ids, "patch": replace_expiration(sent)});
        let response = bulk(&app, &app.admin_token, reqwest::Method::POST, body).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{sent}: {body}");
        let items = body.as_array().unwrap();
        assert_eq!(items.len(), 3, "{sent}: {body}");
        assert!(
            items.iter().all(|item| item["expirationDate"] == stored),
            "{sent}: {body}"
        );
        for n in 0..3 {
            assert_eq!(
                listed(&app, AWARE, &format!("bulk {n}")).await["expirationDate"],
                stored,
                "{sent}"
            );
        }
    }
}

#[tokio::test]
async fn create_takes_up_to_nine_fractional_digits_and_refuses_a_tenth_naming_the_field() {
    let app = spawn_app().await;
    // On v3 the date must fall within 6 months, so it is a week from now, as .NET writes it.
    let week = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::days(7);
    let dotnet = week
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].1234567"
        ))
        .unwrap();
    let created = app
        .create_ok(
            &app.admin_token,
            CLASSIC,
            json!({"name": "seven digits", "expirationDate": dotnet}),
        )
        .await;
    assert_eq!(
        parse_ts(&created["expirationDate"]),
        week + Duration::milliseconds(123),
        "{dotnet}"
    );
    for (n, (sent, stored)) in CLIENT_FORMS.into_iter().enumerate() {
        let created = app
            .create_ok(
                &app.admin_token,
                AWARE,
                json!({"name": format!("form {n}"), "expirationDate": sent}),
            )
            .await;
        assert_eq!(created["expirationDate"], stored, "{sent}");
    }
    for prefix in [CLASSIC, AWARE] {
        let response = app
            .create(
                &app.admin_token,
                prefix,
                json!({"name": "ten digits", "expirationDate": TEN_DIGITS}),
            )
            .await;
        let (status, _, cause) = error_of(response).await;
        assert_eq!(status, 400, "{prefix}: {cause}");
        assert!(
            cause.contains("expirationDate") && cause.contains(TEN_DIGITS_CAUSE),
            "{prefix}: {cause}"
        );
    }
}

#[tokio::test]
async fn ten_fractional_digits_are_refused_in_patch_and_bulk_update_naming_the_field() {
    let app = spawn_app().await;
    let created = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "kept", "expirationDate": "2090-01-01T00:00:00.000Z"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let patch = replace_expiration(TEN_DIGITS);
    let responses = [
        (
            "v2025",
            app.patch(&app.admin_token, AWARE, id, patch.clone()).await,
        ),
        (
            "v1",
            app.patch(&app.admin_token, V1, id, patch.clone()).await,
        ),
        (
            "bulk",
            bulk(
                &app,
                &app.admin_token,
                reqwest::Method::POST,
                json!({"ids": [id], "patch": patch}),
            )
            .await,
        ),
    ];
    for (route, response) in responses {
        let (status, code, cause) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{route}: {cause}"
        );
        assert!(
            cause.starts_with("expirationDate must be an RFC 3339 date-time")
                && cause.contains(TEN_DIGITS_CAUSE),
            "{route}: {cause}"
        );
    }
    assert_eq!(
        listed(&app, AWARE, "kept").await["expirationDate"],
        "2090-01-01T00:00:00.000Z"
    );
}

#[tokio::test]
async fn filters_read_dotnet_and_python_date_times() {
    let app = spawn_app().await;
    let owner = app.identity("dated", "USER", &[]).await.id;
    // name, created, expiry: one millisecond either side of the 7-digit instant.
    let rows = [
        (
            "early",
            datetime!(2026-01-01 00:00:00.999 UTC),
            datetime!(2090-12-08 10:00:00.123 UTC),
        ),
        (
            "late",
            datetime!(2026-01-01 00:00:01 UTC),
            datetime!(2090-12-08 10:00:00.124 UTC),
        ),
    ];
    for (name, created, expires) in rows {
        seed_pat(
            &app.store,
            &owner,
            name,
            created,
            AdminExpiry::At(expires),
            false,
            None,
        )
        .await;
    }
    let cases: [(&str, &[&str]); 8] = [
        ("expirationDate gt 2090-12-08T10:00:00.1234567", &["late"]),
        ("expirationDate lt 2090-12-08T10:00:00.1234567", &["early"]),
        ("expirationDate le 2090-12-08T10:00:00.1234567Z", &["early"]),
        (
            "expirationDate ge 2090-12-08T11:00:00.1234567+01:00",
            &["late"],
        ),
        ("created lt 2026-01-01T00:00:01", &["early"]),
        ("created ge 2026-01-01T00:00:01", &["late"]),
        ("created gt 2026-01-01T00:00:00.999000", &["late"]),
        ("created le 2026-01-01T00:00:00.999000", &["early"]),
    ];
    for (filter, want) in cases {
        let query = format!(
            "owner-id={owner}&sorters=name&filters={}",
            urlencode(filter)
        );
        let names: Vec<String> = app
            .list_ok(&app.admin_token, CLASSIC, &query)
            .await
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, want, "{filter}");
    }
    let filter = format!("created lt {TEN_DIGITS}");
    let response = app
        .list(
            &app.admin_token,
            CLASSIC,
            &format!("filters={}", urlencode(&filter)),
        )
        .await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 400, "{cause}");
    assert!(
        cause.contains("field 'created'") && cause.contains(TEN_DIGITS_CAUSE),
        "{cause}"
    );
}
