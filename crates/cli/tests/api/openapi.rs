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
            if operation.get("security").is_some() {
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
