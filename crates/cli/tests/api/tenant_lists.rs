//! Whole-tenant lists against a reference written here: 20,000 PATs of many owners, with ties in
//! every date, missing dates and names holding LIKE's own characters, listed with the filters and
//! sorters of CONTRACT §6 at two offsets. Some filters match more PATs than the store's bound and
//! some fewer, so both ways of finding a page (store/src/list.rs: walking the order, reading the
//! matches) are checked, on each backend.

use crate::filters::urlencode;
use crate::helpers::*;
use patd_core::expiry::{Expiry, ExpiryRequest};
use patd_core::ids::IdentityId;
use patd_core::pat::{plan_create, CreateInput, PatRecord};
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// What the reference knows of a PAT: its id and what lists filter and sort by (milliseconds).
#[derive(Debug, Clone)]
struct Row {
    id: String,
    name: String,
    created: i64,
    last_used: Option<i64>,
    expires: Option<i64>,
    managed: bool,
}

impl Row {
    fn of(record: &PatRecord) -> Row {
        Row {
            id: record.id.to_string(),
            name: record.name.as_str().to_owned(),
            created: millis(record.created),
            last_used: record.last_used.map(millis),
            expires: record.expiry.date().map(millis),
            managed: record.managed,
        }
    }
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// The reference order of one sorter (`None`: the default, created then id); a missing date is
/// later than every date; ties go by id, the way the sorter runs.
fn compare(sorter: Option<&str>, a: &Row, b: &Row) -> Ordering {
    let (field, descending) = match sorter {
        None => ("created", false),
        Some(text) => match text.strip_prefix('-') {
            Some(field) => (field, true),
            None => (text, false),
        },
    };
    let date = |value: Option<i64>| value.unwrap_or(i64::MAX);
    let by_key = match field {
        "created" => a.created.cmp(&b.created),
        "name" => a.name.as_bytes().cmp(b.name.as_bytes()),
        "lastUsed" => date(a.last_used).cmp(&date(b.last_used)),
        "expirationDate" => date(a.expires).cmp(&date(b.expires)),
        other => panic!("no sorter {other}"),
    };
    let order = by_key.then_with(|| a.id.cmp(&b.id));
    if descending {
        order.reverse()
    } else {
        order
    }
}

#[tokio::test]
async fn whole_tenant_lists_match_a_reference_whichever_way_a_page_is_found() {
    let app = spawn_app().await;
    let mut owners = Vec::new();
    for index in 0..20 {
        let identity = app.identity(&format!("lister {index}"), "USER", &[]).await;
        owners.push(IdentityId::parse(&identity.id).unwrap());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let start = datetime!(2026-01-01 00:00 UTC);
    let words = ["deploy", "backup", "ci", "a%b", "x_y", "back\\slash"];
    let hour = |hours: i64| Duration::hours(hours);
    let mut rows = Vec::new();
    let mut batch = Vec::new();
    for index in 0..20_000_usize {
        let word = words[rng.random_range(0..words.len())];
        let input = CreateInput {
            name: Some(format!("{word}-{index}")),
            scope: None,
            validity_seconds: None,
            expiry: ExpiryRequest::Admin(AdminExpiry::Default),
            managed: false,
        };
        let owner = owners[index % owners.len()].clone();
        let (mut new_pat, _) = plan_create(owner, input, start, &mut rng).unwrap();
        let record = &mut new_pat.record;
        // Whole hours and days: many PATs share each date, so the ties are ordered by id.
        record.created = start + hour(rng.random_range(0..365 * 24));
        record.last_used = rng
            .random_bool(0.85)
            .then(|| record.created + hour(rng.random_range(0..2_000)));
        record.expiry = if rng.random_bool(0.25) {
            record.never_expires_acknowledged = true;
            Expiry::Never
        } else {
            Expiry::At(record.created + Duration::days(rng.random_range(1..400)))
        };
        record.managed = rng.random_bool(0.05);
        rows.push(Row::of(record));
        batch.push(new_pat);
    }
    for chunk in batch.chunks(5_000) {
        app.store.insert_pats(chunk).await.unwrap();
    }
    // The statistics a node refreshes 10 s after it starts, now: the bound is worked out from
    // the planner's count of PATs (about 20,000), not from the default of a million.
    app.store.optimize().await.unwrap();
    // The bootstrap PAT is the tenant's too; a list first, so that its use is stored.
    app.list(&app.admin_token, CLASSIC, "limit=1").await;
    let bootstrap = patd_core::ids::PatId::parse(&app.bootstrap.id).unwrap();
    let stored = app.store.pat(&bootstrap).await.unwrap().unwrap().pat;
    rows.push(Row::of(&stored));

    let day = |text: &str| {
        millis(OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap())
    };
    let june = day("2026-06-01T00:00:00Z");
    let february = day("2026-02-01T00:00:00Z");
    let mid_january = day("2026-01-15T00:00:00Z");
    let next_year = day("2027-01-01T00:00:00Z");
    type Test = Box<dyn Fn(&Row) -> bool>;
    let filters: Vec<(&str, Test)> = vec![
        ("", Box::new(|_| true)),
        // More matches than the bound (√(250 × 20,000) ≈ 2,236 for a first page, ≈ 4,359 at
        // offset 700): the order is walked.
        ("managed eq false", Box::new(|r| !r.managed)),
        (
            "created gt 2026-02-01T00:00:00Z",
            Box::new(move |r| r.created > february),
        ),
        ("lastUsed pr", Box::new(|r| r.last_used.is_some())),
        // Fewer (some of them only at offset 700): the matches are read and sorted.
        ("managed eq true", Box::new(|r| r.managed)),
        (
            "created lt 2026-01-15T00:00:00Z",
            Box::new(move |r| r.created < mid_january),
        ),
        ("lastUsed isnull", Box::new(|r| r.last_used.is_none())),
        (
            "lastUsed le 2026-06-01T00:00:00Z",
            Box::new(move |r| r.last_used.is_some_and(|at| at <= june)),
        ),
        (
            "lastUsed gt 2026-06-01T00:00:00Z",
            Box::new(move |r| r.last_used.is_some_and(|at| at > june)),
        ),
        ("expirationDate isnull", Box::new(|r| r.expires.is_none())),
        ("expirationDate pr", Box::new(|r| r.expires.is_some())),
        (
            "expirationDate ge 2027-01-01T00:00:00Z",
            Box::new(move |r| r.expires.is_some_and(|at| at >= next_year)),
        ),
        (
            r#"name sw "deploy""#,
            Box::new(|r| r.name.starts_with("deploy")),
        ),
        (r#"name co "%b""#, Box::new(|r| r.name.contains("%b"))),
        (r#"name co "_""#, Box::new(|r| r.name.contains('_'))),
        (r#"name co "\\s""#, Box::new(|r| r.name.contains("\\s"))),
        (r#"name co "99""#, Box::new(|r| r.name.contains("99"))),
        (r#"name eq "ci-7""#, Box::new(|r| r.name == "ci-7")),
        (
            r#"not lastUsed le 2026-06-01T00:00:00Z and managed eq false"#,
            Box::new(move |r| r.last_used.is_none_or(|at| at > june) && !r.managed),
        ),
    ];
    let sorters = [
        None,
        Some("created"),
        Some("-created"),
        Some("name"),
        Some("-name"),
        Some("lastUsed"),
        Some("-lastUsed"),
        Some("expirationDate"),
        Some("-expirationDate"),
    ];
    for (filter, test) in &filters {
        let mut matching: Vec<&Row> = rows.iter().filter(|row| test(row)).collect();
        for sorter in sorters {
            matching.sort_by(|a, b| compare(sorter, a, b));
            for offset in [0_usize, 700] {
                // The first page with its total (the count decides the plan), the later one
                // without (the probe decides it).
                let count = offset == 0;
                let mut query = format!("count={count}&limit=250&offset={offset}");
                if !filter.is_empty() {
                    query.push_str(&format!("&filters={}", urlencode(filter)));
                }
                if let Some(sorter) = sorter {
                    query.push_str(&format!("&sorters={sorter}"));
                }
                let response = app.list(&app.admin_token, CLASSIC, &query).await;
                assert_eq!(response.status(), 200, "{query}");
                if count {
                    let total: usize = response.headers()["x-total-count"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(total, matching.len(), "{query}");
                }
                let items: Vec<serde_json::Value> = response.json().await.unwrap();
                let got: Vec<&str> = items
                    .iter()
                    .map(|item| item["id"].as_str().unwrap())
                    .collect();
                let want: Vec<&str> = matching
                    .iter()
                    .skip(offset)
                    .take(250)
                    .map(|row| row.id.as_str())
                    .collect();
                assert_eq!(got, want, "{query}");
            }
        }
    }
}
