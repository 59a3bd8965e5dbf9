//! Every body is JSON in the contract's shape, whatever went wrong.

use crate::helpers::*;

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/v3",
        "/v9/personal-access-tokens",
        "/v3/personal-access-tokens/a/b",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_of(response).await;
        assert_eq!((status, code.as_str()), (404, "404 Not found"), "{path}");
    }
}

#[tokio::test]
async fn unsupported_methods_get_a_json_405() {
    let app = spawn_app().await;
    let cases = [
        (reqwest::Method::PUT, CLASSIC.to_owned()),
        (reqwest::Method::DELETE, CLASSIC.to_owned()),
        (
            reqwest::Method::GET,
            format!("{CLASSIC}/86f1dc6fe8f54414950454cbb11278fa"),
        ),
        (reqwest::Method::GET, "/oauth/token".to_owned()),
        (reqwest::Method::POST, "/oauth/info".to_owned()),
    ];
    for (method, path) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("allow"));
        let (status, code, _) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (405, "405 Method Not Allowed"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn unauthenticated_calls_get_401_with_the_contract_body() {
    let app = spawn_app().await;
    let response = app.client.get(app.url(CLASSIC)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "JWT is required"}));
    let response = app
        .client
        .get(app.url(CLASSIC))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("JWT validation failed: "));
}

#[tokio::test]
async fn bodies_the_framework_would_reject_get_400_syntax() {
    let app = spawn_app().await;
    let cases: [(Option<&str>, &str); 5] = [
        (Some("application/json"), "{not json"),
        (Some("application/json"), r#"{"name": 5}"#),
        (
            Some("application/json"),
            r#"{"name": "x", "scope": "sp:scopes:all"}"#,
        ),
        (Some("text/plain"), r#"{"name": "x"}"#),
        (None, r#"{"name": "x"}"#),
    ];
    for (content_type, body) in cases {
        let mut request = app
            .client
            .post(app.url(CLASSIC))
            .bearer_auth(&app.admin_token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, code, cause) = error_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "400.0 Bad Request Syntax"),
            "{content_type:?} {body}"
        );
        assert!(!cause.is_empty());
    }
    let response = app
        .client
        .get(format!("{}?owner-id=me&owner-id=you", app.url(CLASSIC)))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
