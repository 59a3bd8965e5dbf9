//! The filter grammar against a known set of PATs: each operator and combination, and the
//! names it must return.

use crate::helpers::*;
use time::macros::datetime;

#[tokio::test]
async fn filter_table() {
    let app = spawn_app().await;
    let owner = app.identity("filtered", "USER", &[]).await.id;
    let day = |d: u8| {
        time::Date::from_calendar_date(2030, time::Month::January, d)
            .unwrap()
            .midnight()
            .assume_utc()
    };
    // name, created, expiry, managed, lastUsed
    let rows = [
        (
            "alpha",
            datetime!(2026-01-01 00:00 UTC),
            AdminExpiry::At(day(1)),
            false,
            Some(datetime!(2026-02-01 00:00 UTC)),
        ),
        (
            "alpine",
            datetime!(2026-01-02 00:00 UTC),
            AdminExpiry::At(day(2)),
            false,
            None,
        ),
        (
            "beta \"quoted\"",
            datetime!(2026-01-03 00:00 UTC),
            AdminExpiry::Never,
            false,
            Some(datetime!(2026-03-01 00:00 UTC)),
        ),
        (
            "gamma",
            datetime!(2026-01-04 00:00 UTC),
            AdminExpiry::Never,
            true,
            None,
        ),
        (
            "delta\\slash",
            datetime!(2026-01-05 00:00:00.500 UTC),
            AdminExpiry::At(day(5)),
            false,
            Some(datetime!(2026-04-01 00:00 UTC)),
        ),
    ];
    for (name, created, expires, managed, last_used) in rows {
        seed_pat(
            &app.store, &owner, name, created, expires, managed, last_used,
        )
        .await;
    }
    let query = |filter: &str| {
        format!(
            "owner-id={owner}&sorters=name&filters={}",
            urlencode(filter)
        )
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (r#"name eq "alpha""#, vec!["alpha"]),
        (r#"name eq "ALPHA""#, vec![]),
        (r#"name eq "beta \"quoted\"""#, vec!["beta \"quoted\""]),
        (r#"name eq "delta\\slash""#, vec!["delta\\slash"]),
        (r#"name co "lp""#, vec!["alpha", "alpine"]),
        (r#"name co "\"""#, vec!["beta \"quoted\""]),
        // LIKE's own characters are plain characters in a filter (PostgreSQL's `co` is a LIKE).
        (r#"name co "\\""#, vec!["delta\\slash"]),
        (r#"name co "a%a""#, vec![]),
        (r#"name co "a_p""#, vec![]),
        (r#"name co "%""#, vec![]),
        (r#"name sw "delta\\""#, vec!["delta\\slash"]),
        (r#"name sw "alpha""#, vec!["alpha"]),
        (r#"name sw "al""#, vec!["alpha", "alpine"]),
        (r#"name sw "lp""#, vec![]),
        (
            r#"name in ("alpha", "gamma", "nope")"#,
            vec!["alpha", "gamma"],
        ),
        ("managed eq true", vec!["gamma"]),
        (
            "managed eq false",
            vec!["alpha", "alpine", "beta \"quoted\"", "delta\\slash"],
        ),
        ("lastUsed isnull", vec!["alpine", "gamma"]),
        (
            "lastUsed pr",
            vec!["alpha", "beta \"quoted\"", "delta\\slash"],
        ),
        (
            "lastUsed le 2026-03-01T00:00:00.000Z",
            vec!["alpha", "beta \"quoted\""],
        ),
        ("lastUsed lt 2026-03-01T00:00:00Z", vec!["alpha"]),
        ("lastUsed gt 2026-03-01T00:00:00Z", vec!["delta\\slash"]),
        (
            "lastUsed ge 2026-03-01T01:00:00+01:00",
            vec!["beta \"quoted\"", "delta\\slash"],
        ),
        (
            "created gt 2026-01-03T00:00:00Z",
            vec!["delta\\slash", "gamma"],
        ),
        (
            "created ge 2026-01-03T00:00:00Z",
            vec!["beta \"quoted\"", "delta\\slash", "gamma"],
        ),
        ("created lt 2026-01-02T00:00:00Z", vec!["alpha"]),
        ("created le 2026-01-02T00:00:00Z", vec!["alpha", "alpine"]),
        // Sub-millisecond bounds compare exactly against millisecond timestamps.
        ("created ge 2026-01-05T00:00:00.4999Z", vec!["delta\\slash"]),
        ("created gt 2026-01-05T00:00:00.5001Z", vec![]),
        (
            "created le 2026-01-05T00:00:00.5001Z",
            vec![
                "alpha",
                "alpine",
                "beta \"quoted\"",
                "delta\\slash",
                "gamma",
            ],
        ),
        (
            "created lt 2026-01-05T00:00:00.4999Z",
            vec!["alpha", "alpine", "beta \"quoted\"", "gamma"],
        ),
        ("expirationDate isnull", vec!["beta \"quoted\"", "gamma"]),
        ("expirationDate pr", vec!["alpha", "alpine", "delta\\slash"]),
        (
            "expirationDate lt 2030-01-03T00:00:00Z",
            vec!["alpha", "alpine"],
        ),
        (
            "expirationDate gt 2030-01-01T00:00:00Z",
            vec!["alpine", "delta\\slash"],
        ),
        (
            "expirationDate ge 2030-01-05T00:00:00Z",
            vec!["delta\\slash"],
        ),
        ("expirationDate le 2030-01-01T00:00:00Z", vec!["alpha"]),
        // Combinations: not > and > or.
        (r#"name sw "al" and lastUsed isnull"#, vec!["alpine"]),
        (
            r#"name eq "gamma" or name eq "alpha" and lastUsed isnull"#,
            vec!["gamma"],
        ),
        (
            r#"(name eq "gamma" or name eq "alpha") and lastUsed isnull"#,
            vec!["gamma"],
        ),
        (
            r#"(name eq "gamma" or name eq "alpha") and lastUsed pr"#,
            vec!["alpha"],
        ),
        (
            r#"not name sw "al""#,
            vec!["beta \"quoted\"", "delta\\slash", "gamma"],
        ),
        (
            r#"not name sw "al" and not managed eq true"#,
            vec!["beta \"quoted\"", "delta\\slash"],
        ),
        (
            r#"not (name sw "al" or managed eq true)"#,
            vec!["beta \"quoted\"", "delta\\slash"],
        ),
        // `not` of a comparison on a missing date includes the PATs that lack it.
        (
            "not lastUsed le 2026-03-01T00:00:00Z",
            vec!["alpine", "delta\\slash", "gamma"],
        ),
        (
            "not expirationDate lt 2030-01-03T00:00:00Z",
            vec!["beta \"quoted\"", "delta\\slash", "gamma"],
        ),
        (r#"NAME EQ "alpha""#, vec![]),
    ];
    for (filter, want) in cases {
        let response = app.list(&app.admin_token, CLASSIC, &query(filter)).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        if filter.starts_with("NAME") {
            // Field names are case-sensitive: an unknown field is a 400 naming it.
            assert_eq!(status, 400, "{filter}: {text}");
            assert!(text.contains("field 'NAME' is not supported"), "{text}");
            continue;
        }
        assert_eq!(status, 200, "{filter}: {text}");
        let items: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = items
            .iter()
            .map(|item| item["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "{filter}");
    }
}

#[tokio::test]
async fn unsupported_filters_give_400_naming_the_part() {
    let app = spawn_app().await;
    let cases = [
        (r#"owner.id eq "x""#, "field 'owner.id' is not supported"),
        (
            r#"name ne "x""#,
            "operator 'ne' is not supported for field 'name'",
        ),
        (
            "created isnull",
            "operator 'isnull' is not supported for field 'created'",
        ),
        (
            "lastUsed eq 2020-01-01T00:00:00Z",
            "operator 'eq' is not supported for field 'lastUsed'",
        ),
        ("name eq", "expected a quoted string"),
        (r#"name eq "x" and ("#, "expected a field name"),
        (
            "created gt someday",
            "'someday' is not an RFC 3339 date-time",
        ),
    ];
    for (filter, want) in cases {
        let response = app
            .list(
                &app.admin_token,
                CLASSIC,
                &format!("filters={}", urlencode(filter)),
            )
            .await;
        let (status, code, cause) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{filter}"
        );
        assert!(cause.contains(want), "{filter}: {cause}");
    }
}

#[tokio::test]
async fn filter_values_never_reach_sql_as_text() {
    let app = spawn_app().await;
    let owner = app.identity("injected", "USER", &[]).await.id;
    let evil = "x'); DROP TABLE pats; --";
    seed_pat(
        &app.store,
        &owner,
        evil,
        time::OffsetDateTime::now_utc(),
        AdminExpiry::Default,
        false,
        None,
    )
    .await;
    let filter = format!("name eq \"{evil}\"");
    let items = app
        .list_ok(
            &app.admin_token,
            CLASSIC,
            &format!("filters={}", urlencode(&filter)),
        )
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], evil);
    assert!(
        app.list_ok(&app.admin_token, CLASSIC, "").await.len() >= 2,
        "the table is still there"
    );
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// PostgreSQL's `text` cannot hold U+0000, so a NUL in a filter string once reached the
/// database and came back as a 500 there. Every control character in a filter string is now a
/// 400.1 naming the rule, on PATs and audit events alike, and the cause never quotes the value.
#[tokio::test]
async fn control_characters_in_filter_strings_are_refused_on_every_backend() {
    let app = spawn_app().await;
    let token = app.admin_token.as_str();
    let mut filters = Vec::new();
    for control in ["\u{0}", "\u{1}", "\t", "\u{7f}", "\u{9b}"] {
        filters.push((CLASSIC, format!("name eq \"a{control}b\"")));
        filters.push((AWARE, format!("name co \"{control}\"")));
        filters.push((CLASSIC, format!("name sw \"{control}zz\"")));
        filters.push((AWARE, format!("name in (\"x\", \"{control}\")")));
        filters.push((
            "/patd/v1/audit-events",
            format!("actor.id eq \"{control}\""),
        ));
        filters.push((
            "/patd/v1/audit-events",
            format!("target.id eq \"zz{control}\" or target.ownerId eq \"{control}\""),
        ));
    }
    for (path, filter) in filters {
        let query = serde_urlencoded::to_string([("filters", &filter)]).unwrap();
        let (status, code, cause) = error_of(app.list(token, path, &query).await).await;
        assert_eq!(
            (status, code.as_str(), cause.as_str()),
            (
                400,
                "400.1 Bad Request Content",
                "invalid filter: a string must not contain control characters"
            ),
            "{path} {filter:?}"
        );
    }
}
