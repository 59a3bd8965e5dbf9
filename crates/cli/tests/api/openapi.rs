//! The OpenAPI document covers every route the router serves, with the right methods, statuses
//! and unique operation ids; the route table is what the router really does.

use crate::helpers::*;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;

fn pairs(entries: &[patd_server::RouteEntry]) -> BTreeSet<(String, String)> {
    entries
        .iter()
        .flat_map(|entry| {
            entry
                .methods
                .iter()
                .map(|method| (entry.path.clone(), method.as_str().to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods_and_errors() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((path.clone(), method.to_uppercase()));
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_owned()), "{id} is unique");
            let responses = operation["responses"].as_object().unwrap();
            for status in ["405", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            if operation.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("413"),
                    "{method} {path} documents 413"
                );
            }
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|scheme| scheme.get("bearer").is_some()));
            if bearer {
                for status in ["400", "401", "403", "429"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }
    let table = patd_server::route_table();
    assert_eq!(
        documented,
        pairs(&table),
        "the document and the router serve the same routes"
    );
    for schema in [
        "ErrorResponseDto",
        "UnauthorizedBody",
        "RateLimitBody",
        "OAuthErrorBody",
        "GetPersonalAccessTokenResponse",
        "CreatePersonalAccessTokenResponse",
        "BulkUpdateRequest",
        "TokenResponse",
    ] {
        assert!(
            document["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }

    // And the table is what the router really does: each listed method is routed, every other
    // one is a 405.
    for entry in &table {
        let path = entry
            .path
            .replace("{id}", "86f1dc6fe8f54414950454cbb11278fa");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let response = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&app.admin_token)
                .send()
                .await
                .unwrap();
            let routed = response.status() != 405;
            assert_eq!(
                routed,
                entry.methods.contains(&method),
                "{method} {path}: {}",
                response.status()
            );
        }
    }
}

/// The document describes the bodies as they are: every member always sent is required (null
/// where empty, CONTRACT §2), a patch operation's `value` is any JSON value (a rename's is a
/// string), and the token endpoint documents HTTP Basic, its query parameters and its
/// OAuth-shaped 400 and 413.
#[tokio::test]
async fn the_document_says_what_bodies_hold_and_how_the_token_endpoint_is_called() {
    let app = spawn_app().await;
    let document = get_json(&app.client, &app.url("/openapi.json")).await;
    let schemas = &document["components"]["schemas"];
    let names = |value: &Value| -> BTreeSet<String> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect(),
            Value::Object(map) => map.keys().cloned().collect(),
            _ => BTreeSet::new(),
        }
    };
    for (schema, optional) in [
        (
            "GetPersonalAccessTokenResponse",
            &["userAwareTokenNeverExpires"][..],
        ),
        ("CreatePersonalAccessTokenResponse", &[]),
        ("PatOwner", &[]),
        ("AuditEventDto", &[]),
        ("AuditActor", &[]),
        ("AuditTarget", &[]),
        ("TokenResponse", &[]),
        ("OAuthInfo", &[]),
        ("ErrorResponseDto", &[]),
        ("ErrorMessageDto", &[]),
        ("OAuthErrorBody", &[]),
    ] {
        let mut always = names(&schemas[schema]["properties"]);
        assert!(!always.is_empty(), "{schema}");
        for member in optional {
            always.remove(*member);
        }
        assert_eq!(
            names(&schemas[schema]["required"]),
            always,
            "{schema}: required"
        );
    }
    let value = &schemas["JsonPatchOperation"]["properties"]["value"];
    assert!(
        value.get("type").is_none() && value.get("$ref").is_none() && value.get("oneOf").is_none(),
        "value takes any JSON value: {value}"
    );

    let token = &document["paths"]["/oauth/token"]["post"];
    let security = token["security"].as_array().unwrap();
    assert!(security.contains(&serde_json::json!({})), "{security:?}");
    assert!(
        security.contains(&serde_json::json!({"basic": []})),
        "{security:?}"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["basic"],
        serde_json::json!({"type": "http", "scheme": "basic"})
    );
    let query: BTreeSet<String> = token["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|parameter| parameter["in"] == "query" && parameter["required"] != true)
        .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        query,
        ["client_id", "client_secret", "grant_type"]
            .map(str::to_owned)
            .into()
    );
    for status in ["400", "401", "413"] {
        let answer = &token["responses"][status];
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/OAuthErrorBody",
            "{status}: {answer}"
        );
        assert!(answer["headers"].get("Cache-Control").is_some(), "{status}");
    }
}
