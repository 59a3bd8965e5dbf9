//! Paging and sorting: walking a large list never skips or repeats a PAT.

use crate::filters::urlencode;
use crate::helpers::*;
use serde_json::Value;
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};

#[tokio::test]
async fn walking_600_tokens_with_each_sorter_skips_and_repeats_nothing() {
    let app = spawn_app().await;
    let base = OffsetDateTime::now_utc() - Duration::days(30);
    let mut expected: HashSet<String> = HashSet::new();
    expected.insert(app.bootstrap.id.clone());
    for owner_index in 0..60 {
        let owner = app
            .identity(&format!("owner {owner_index}"), "USER", &[])
            .await
            .id;
        for n in 0..10 {
            let index = owner_index * 10 + n;
            // Many equal timestamps and repeated names, so the order needs its tie-breaker.
            let created = base + Duration::minutes(index / 7);
            let expires = match index % 3 {
                0 => AdminExpiry::Never,
                _ => AdminExpiry::At(base + Duration::days(60 + index % 5)),
            };
            let last_used = (index % 4 != 0).then(|| base + Duration::hours(index % 9));
            let id = seed_pat(
                &app.store,
                &owner,
                &format!("pat {}", index % 13),
                created,
                expires,
                false,
                last_used,
            )
            .await;
            expected.insert(id);
        }
    }
    assert_eq!(expected.len(), 601);
    for sorters in [
        "",
        "name",
        "-name",
        "created",
        "-created",
        "lastUsed",
        "-lastUsed",
        "expirationDate",
        "-expirationDate",
        "name,-lastUsed",
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut previous: Option<Value> = None;
        let mut offset = 0;
        loop {
            let query = format!(
                "limit=250&offset={offset}&count=true&sorters={}",
                urlencode(sorters)
            );
            let response = app.list(&app.admin_token, CLASSIC, &query).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-total-count"], "601", "{sorters}");
            let page: Vec<Value> = response.json().await.unwrap();
            assert!(page.len() <= 250);
            for item in &page {
                if let (Some(prev), Some(key)) = (
                    &previous,
                    sorters.split(',').next().filter(|s| !s.is_empty()),
                ) {
                    assert!(in_order(prev, item, key), "{sorters}: {prev} then {item}");
                }
                previous = Some(item.clone());
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            if page.len() < 250 {
                break;
            }
            offset += 250;
        }
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), 601, "{sorters}: every PAT once");
        assert_eq!(unique, expected, "{sorters}");
    }
}

/// Whether `a` may come before `b` under the first sort key; missing dates sort last ascending.
fn in_order(a: &Value, b: &Value, key: &str) -> bool {
    let (descending, field) = match key.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, key),
    };
    let value = |item: &Value| -> (bool, String) {
        let v = &item[field];
        (
            v.is_null(),
            v.as_str().map(str::to_owned).unwrap_or_default(),
        )
    };
    // Millisecond RFC 3339 UTC strings sort as text in time order.
    let (a, b) = (value(a), value(b));
    if descending {
        a >= b
    } else {
        a <= b
    }
}

#[tokio::test]
async fn paging_parameters_are_checked() {
    let app = spawn_app().await;
    for (query, want) in [
        ("limit=251", "limit must be an integer from 0 to 250"),
        ("limit=-1", "limit must be an integer from 0 to 250"),
        ("offset=x", "offset must be a non-negative integer"),
        ("count=maybe", "count must be true or false"),
        ("sorters=owner", "sorter 'owner' is not supported"),
    ] {
        let (status, code, cause) =
            error_of(app.list(&app.admin_token, CLASSIC, query).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.1 Bad Request Content"),
            "{query}"
        );
        assert!(cause.starts_with(want), "{query}: {cause}");
    }
    // limit=0 with count=true only counts.
    let response = app
        .list(&app.admin_token, CLASSIC, "limit=0&count=true")
        .await;
    assert_eq!(response.headers()["x-total-count"], "1");
    assert!(response.json::<Vec<Value>>().await.unwrap().is_empty());
    // Without count there is no header.
    let response = app.list(&app.admin_token, CLASSIC, "").await;
    assert!(!response.headers().contains_key("x-total-count"));
}
