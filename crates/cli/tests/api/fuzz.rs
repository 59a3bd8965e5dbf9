//! No input makes patd answer 5xx: generated and mutated list queries (filters and paging),
//! JSON Patches and bulk updates, sent to the real server on the suite's backend (SQLite, or
//! PostgreSQL with `PATD_TEST_BACKEND=postgres`). A few hundred cases each keep a run to seconds;
//! a failure prints the smallest input proptest found.

use crate::helpers::*;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const CASES: u32 = 500;

const LIST_PATHS: [&str; 6] = [
    "/v3/personal-access-tokens",
    "/beta/personal-access-tokens",
    "/v2024/personal-access-tokens",
    "/v2025/personal-access-tokens",
    "/personal-access-tokens/v1",
    "/patd/v1/audit-events",
];

/// A server with PATs to patch, on a runtime of its own: proptest's runner is synchronous.
struct Harness {
    app: Option<TestApp>,
    targets: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, targets) = runtime.block_on(async {
            let app = spawn_app().await;
            let mut targets = Vec::new();
            for (n, prefix) in [CLASSIC, AWARE, CLASSIC].into_iter().enumerate() {
                let body = json!({
                    "name": format!("target {n}"),
                    "scope": ["sp:scopes:all"],
                    "userAwareTokenNeverExpires": true,
                });
                let created = app.create_ok(&app.admin_token, prefix, body).await;
                targets.push(created["id"].as_str().unwrap().to_owned());
            }
            (app, targets)
        });
        Harness {
            app: Some(app),
            targets,
            runtime,
        }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().unwrap()
    }

    /// Sends one request and fails the case on a 5xx or a body that is not JSON.
    fn check(&self, what: &str, request: reqwest::RequestBuilder) -> Result<(), TestCaseError> {
        let (status, content_type, body) = self.runtime.block_on(async {
            let response = request
                .bearer_auth(&self.app().admin_token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap_or("?").to_owned());
            (status, content_type, response.bytes().await.unwrap())
        });
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            eprintln!("{status} {what:?}");
        }
        if status >= 500 {
            return Err(TestCaseError::fail(format!(
                "{status} for {what}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let json = serde_json::from_slice::<Value>(&body).is_ok();
        if status != 204 && (content_type.as_deref() != Some("application/json") || !json) {
            return Err(TestCaseError::fail(format!(
                "{status} for {what} is not JSON ({content_type:?})"
            )));
        }
        Ok(())
    }

    /// Runs `CASES` cases of `strategy` through `case`; panics with the smallest failing input.
    fn run<S: Strategy>(
        &self,
        strategy: S,
        case: impl Fn(&Harness, S::Value) -> Result<(), TestCaseError>,
    ) where
        S::Value: std::fmt::Debug,
    {
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 500,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(err) = runner.run(&strategy, |value| case(self, value)) {
            panic!("{err}");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The store's pool closes on the runtime it was made on.
        let app = self.app.take();
        self.runtime.block_on(async move { drop(app) });
    }
}

/// Text of every kind: plain, any Unicode, control characters, long, and odd characters.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.:*-]{0,12}",
        2 => any::<String>(),
        2 => "[\\x00-\\x1f\\x7f-\\u{9f}]{1,3}",
        // U+0000 on its own: PostgreSQL's text cannot hold it.
        1 => ("[a-z]{0,3}", "[a-z]{0,3}").prop_map(|(a, b)| format!("{a}\u{0}{b}")),
        1 => "\\PC{100,300}",
        1 => select(vec![
            "\u{202e}", "\u{feff}", "e\u{301}", "𝔘𝔫𝔦", "\\", "\"", "'", "%00", "\u{10ffff}",
            "sp:scopes:all", "", " ",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Date-times, right and wrong: far years, leap seconds, offsets, too many digits.
fn date_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?",
        2 => select(vec![
            "2030-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "2030-02-30T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "1970-01-01T00:00:00+23:59",
            "1970-01-01T00:00:00-23:59",
            "2030-01-01 00:00:00",
            "2030-01-01T00:00:00.1234567890Z",
        ])
        .prop_map(str::to_owned),
        1 => "[0-9]{1,5}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
    .boxed()
}

/// Numbers as query parameters carry them: huge, negative, not numbers at all.
fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        "-?[0-9]{1,25}",
        select(vec![
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "1e400",
            "",
            " 5",
            "+3",
            "0x10",
            "NaN",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A filter string literal: `"` and `\` escaped, anything else as it is.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A comparison: mostly one a collection knows, with a value of the kind it takes (so the value
/// reaches the database), else any field, operator and value.
fn comparison() -> BoxedStrategy<String> {
    let quoted = || text().prop_map(|text| quote(&text));
    let list = || {
        prop::collection::vec(text(), 0..4).prop_map(|items| {
            let items: Vec<String> = items.iter().map(|item| quote(item)).collect();
            format!("({})", items.join(", "))
        })
    };
    let date = || prop_oneof![date_text(), date_text().prop_map(|date| quote(&date))];
    let time_op = || select(vec!["gt", "ge", "lt", "le"]);
    let typed = prop_oneof![
        (select(vec!["eq", "co", "sw"]), quoted()).prop_map(|(op, v)| format!("name {op} {v}")),
        list().prop_map(|v| format!("name in {v}")),
        select(vec!["true", "false", "maybe"]).prop_map(|v| format!("managed eq {v}")),
        (
            select(vec!["created", "lastUsed", "expirationDate"]),
            time_op(),
            date()
        )
            .prop_map(|(field, op, v)| format!("{field} {op} {v}")),
        (
            select(vec!["lastUsed", "expirationDate"]),
            select(vec!["pr", "isnull"])
        )
            .prop_map(|(field, op)| format!("{field} {op}")),
        prop_oneof![
            select(vec!["pat.created", "pat.updated", "auth.failed"]).prop_map(quote),
            quoted()
        ]
        .prop_map(|v| format!("type eq {v}")),
        list().prop_map(|v| format!("type in {v}")),
        (
            select(vec!["actor.id", "target.id", "target.ownerId"]),
            prop_oneof!["[0-9a-f]{32}".prop_map(|id| quote(&id)), quoted()]
        )
            .prop_map(|(field, v)| format!("{field} eq {v}")),
        (time_op(), date()).prop_map(|(op, v)| format!("time {op} {v}")),
        prop_oneof![select(vec!["SUCCESS", "FAILURE"]).prop_map(quote), quoted()]
            .prop_map(|v| format!("outcome eq {v}")),
    ];
    let field = prop_oneof![
        4 => select(vec![
            "name", "managed", "created", "lastUsed", "expirationDate", "type", "actor.id",
            "target.id", "target.ownerId", "time", "outcome", "id", "owner.id",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z.]{1,8}",
    ];
    let op = prop_oneof![
        4 => select(vec![
            "eq", "ne", "gt", "ge", "lt", "le", "co", "sw", "in", "pr", "isnull", "EQ", "like",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{1,3}",
    ];
    let value = prop_oneof![
        quoted(),
        date(),
        number_text(),
        select(vec!["true", "false", "TRUE", "null", ""]).prop_map(str::to_owned),
        list(),
    ];
    let any = (field, op, value).prop_map(|(field, op, value)| format!("{field} {op} {value}"));
    prop_oneof![3 => typed, 1 => any].boxed()
}

/// Filters: valid-looking trees, deep nesting past the parser's bound, then mutated.
fn filter() -> BoxedStrategy<String> {
    // Small trees: one bad leaf refuses the whole filter before anything reaches the database.
    let tree = comparison().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    });
    let deep = (1usize..80, comparison(), any::<bool>()).prop_map(|(depth, leaf, parens)| {
        if parens {
            format!("{}{leaf}{}", "(".repeat(depth), ")".repeat(depth))
        } else {
            format!("{}{leaf}", "not ".repeat(depth))
        }
    });
    mutated(prop_oneof![6 => tree, 1 => deep, 1 => any::<String>()].boxed())
}

/// What a mutation inserts: grammar and JSON punctuation, escapes, extreme values.
const TOKENS: [&str; 30] = [
    "\"",
    "\\",
    "(",
    ")",
    ",",
    " and ",
    " or ",
    "not ",
    " eq ",
    " in ",
    "\u{0}",
    "\\u0000",
    "\\ud800",
    "\t",
    "\u{85}",
    "9999-12-31T23:59:59Z",
    "1e400",
    "99999999999999999999",
    "-1",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "\u{feff}",
    "𝔘",
    "%",
    "{\"op\":\"copy\",\"from\":\"/name\",\"path\":\"/name\"}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(Index, &'static str),
    Delete(Index, usize),
    Replace(Index, char),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), select(TOKENS.to_vec()))
            .prop_map(|(at, token)| Mutation::Insert(at, token)),
        2 => (any::<Index>(), 1usize..6).prop_map(|(at, n)| Mutation::Delete(at, n)),
        2 => (any::<Index>(), any::<char>()).prop_map(|(at, c)| Mutation::Replace(at, c)),
        1 => (any::<Index>(), 1usize..20).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for mutation in mutations {
        let at = |index: &Index| {
            if chars.is_empty() {
                0
            } else {
                index.index(chars.len() + 1)
            }
        };
        match mutation {
            Mutation::Insert(index, token) => {
                let at = at(index);
                chars.splice(at..at, token.chars());
            }
            Mutation::Delete(index, n) => {
                let at = at(index);
                let end = (at + n).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            Mutation::Replace(index, c) => {
                let at = at(index);
                if at < chars.len() {
                    chars[at] = *c;
                }
            }
            Mutation::Duplicate(index, n) => {
                let at = at(index);
                let end = (at + n).min(chars.len());
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                chars.splice(end..end, copy);
            }
            Mutation::Truncate(index) => {
                let at = at(index);
                chars.truncate(at);
            }
        }
    }
    chars.into_iter().collect()
}

/// `base` as it is about half the time, else with one to three mutations.
fn mutated(base: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (
        base,
        prop_oneof![Just(Vec::new()), prop::collection::vec(mutation(), 1..4)],
    )
        .prop_map(|(text, mutations)| apply(&text, &mutations))
        .boxed()
}

/// Any JSON value: extreme numbers, odd strings, nested arrays and objects.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
        date_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

fn patch_path() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(vec![
            "/name",
            "/scope",
            "/scope/0",
            "/scope/1",
            "/scope/-",
            "/expirationDate",
            "/userAwareTokenNeverExpires",
            "/accessTokenValiditySeconds",
            "/owner",
            "/id",
            "",
            "/",
            "/name/x",
            "/~1",
            "/~2",
            "/scope/99999999999999999999",
            "/scope/-1",
        ])
        .prop_map(str::to_owned),
        1 => text().prop_map(|text| format!("/{text}")),
    ]
    .boxed()
}

/// One operation: mostly well formed with any value, sometimes missing members or not an
/// object at all.
fn operation() -> BoxedStrategy<Value> {
    let op = prop_oneof![
        6 => select(vec!["add", "remove", "replace", "move", "copy", "test"]).prop_map(str::to_owned),
        1 => "[a-zA-Z]{0,6}",
    ];
    let value = prop_oneof![
        json_value(),
        text().prop_map(Value::String),
        prop::collection::vec(text(), 0..5).prop_map(|items| json!(items)),
        date_text().prop_map(Value::String),
    ];
    let well_formed = (
        op,
        patch_path(),
        proptest::option::of(patch_path()),
        proptest::option::of(value),
    )
        .prop_map(|(op, path, from, value)| {
            let mut operation = json!({"op": op, "path": path});
            if let Some(from) = from {
                operation["from"] = json!(from);
            }
            if let Some(value) = value {
                operation["value"] = value;
            }
            operation
        });
    prop_oneof![8 => well_formed, 1 => json_value()].boxed()
}

/// At most 8 operations: the bound on patch sizes (and on what `copy` into an array can grow) is
/// core's business, not this test's.
fn operations() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => prop::collection::vec(operation(), 0..8).prop_map(Value::Array),
        1 => json_value(),
    ]
    .boxed()
}

/// A JSON Patch body: generated, deeply nested, then mutated as text.
fn patch_body() -> BoxedStrategy<String> {
    let deep = (1usize..300).prop_map(|depth| {
        format!(
            "[{{\"op\":\"replace\",\"path\":\"/name\",\"value\":{}1{}}}]",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    });
    mutated(prop_oneof![8 => operations().prop_map(|ops| ops.to_string()), 1 => deep].boxed())
}

fn content_type() -> BoxedStrategy<Option<&'static str>> {
    prop_oneof![
        6 => Just(Some("application/json-patch+json")),
        3 => Just(Some("application/json")),
        1 => select(vec![None, Some("text/plain"), Some("application/json; charset=latin1")]),
    ]
    .boxed()
}

#[test]
fn no_list_query_answers_5xx() {
    let harness = Harness::new();
    // Each parameter absent, valid or anything: one bad parameter refuses the whole query, so
    // the others are mostly valid for the filter to reach the database.
    let param = |valid: BoxedStrategy<String>, anything: BoxedStrategy<String>| prop_oneof![4 => Just(None), 4 => valid.prop_map(Some), 1 => anything.prop_map(Some)];
    let sorters = select(vec![
        "name",
        "-created",
        "lastUsed,-expirationDate",
        "time",
        "-time",
    ])
    .prop_map(str::to_owned)
    .boxed();
    let query = (
        select(LIST_PATHS.to_vec()),
        proptest::option::weighted(0.9, filter()),
        param(
            sorters.clone(),
            mutated(prop_oneof![sorters, text()].boxed()),
        ),
        param("[0-9]{1,3}".boxed(), number_text()),
        param("[0-9]{1,4}".boxed(), number_text()),
        param(
            select(vec!["true", "false"])
                .prop_map(str::to_owned)
                .boxed(),
            text(),
        ),
        param(
            Just("me".to_owned()).boxed(),
            prop_oneof!["[0-9a-f]{32}", text()].boxed(),
        ),
    );
    harness.run(
        query,
        |harness, (path, filters, sorters, limit, offset, count, owner)| {
            let mut params: Vec<(&str, String)> = Vec::new();
            let named = [
                ("filters", filters),
                ("sorters", sorters),
                ("limit", limit),
                ("offset", offset),
                ("count", count),
                ("owner-id", owner),
            ];
            for (name, value) in named {
                if let Some(value) = value {
                    params.push((name, value));
                }
            }
            let query = serde_urlencoded::to_string(&params).unwrap();
            let url = format!("{}?{query}", harness.app().url(path));
            let request = harness.app().client.get(url);
            harness.check(&format!("GET {path}?{query}"), request)
        },
    );
}

#[test]
fn no_json_patch_answers_5xx() {
    let harness = Harness::new();
    let target = prop_oneof![
        8 => select(harness.targets.clone()),
        1 => "[0-9a-f]{32}|[a-zA-Z0-9._~-]{0,40}",
    ];
    let case = (
        select(LIST_PATHS[..5].to_vec()),
        target,
        patch_body(),
        content_type(),
    );
    harness.run(case, |harness, (prefix, id, body, content_type)| {
        let url = harness.app().url(&format!("{prefix}/{id}"));
        let mut request = harness.app().client.patch(url).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        harness.check(&format!("PATCH {prefix}/{id} {body}"), request)
    });
}

#[test]
fn no_bulk_update_answers_5xx() {
    let harness = Harness::new();
    let id = prop_oneof![
        6 => select(harness.targets.clone()),
        2 => "[0-9a-f]{32}",
        1 => text(),
    ];
    // Mostly distinct known ids (a repeated one is refused before anything is read).
    let ids = prop_oneof![
        6 => prop::sample::subsequence(harness.targets.clone(), 1..=3).prop_map(|ids| json!(ids)),
        2 => prop::collection::vec(id, 0..30).prop_map(|ids| json!(ids)),
        1 => json_value(),
    ];
    // Mostly the operations a bulk update takes, on the paths it takes.
    let bulk_operation = prop_oneof![
        (
            select(vec!["replace", "replace", "remove"]),
            prop_oneof![
                3 => date_text().prop_map(Value::String),
                1 => Just(Value::Null),
                1 => json_value(),
            ]
        )
            .prop_map(|(op, value)| json!({"op": op, "path": "/expirationDate", "value": value})),
        (
            select(vec!["replace", "add"]),
            prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => json_value()]
        )
            .prop_map(|(op, value)| {
                json!({"op": op, "path": "/userAwareTokenNeverExpires", "value": value})
            }),
    ];
    let patch = prop_oneof![
        4 => prop::collection::vec(bulk_operation, 1..4).prop_map(Value::Array),
        1 => operations(),
    ];
    let body = (ids, patch, 0u8..16).prop_map(|(ids, patch, shape)| match shape {
        0 => json!({"ids": ids}).to_string(),
        1 => json!({"patch": patch}).to_string(),
        2 => json!({"ids": ids, "patch": patch, "extra": true}).to_string(),
        _ => json!({"ids": ids, "patch": patch}).to_string(),
    });
    let case = (
        select(vec![reqwest::Method::POST, reqwest::Method::PATCH]),
        mutated(body.boxed()),
    );
    harness.run(case, |harness, (method, body)| {
        let url = harness.app().url("/personal-access-tokens/v1/bulk-update");
        let request = harness
            .app()
            .client
            .request(method.clone(), url)
            .header("content-type", "application/json")
            .body(body.clone());
        harness.check(&format!("{method} bulk-update {body}"), request)
    });
}
