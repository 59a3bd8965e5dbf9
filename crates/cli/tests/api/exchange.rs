//! The token exchange in its four encodings, its failures, and the checks on bearer JWTs.

use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use patd_core::expiry::{AdminExpiry, ExpiryRequest};
use patd_core::ids::IdentityId;
use patd_core::pat::{plan_create, CreateInput};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

async fn check_token_response(response: reqwest::Response, app: &TestApp, pat_id: &str) -> String {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let mut keys = keys_of(&body);
    keys.sort();
    assert_eq!(
        keys,
        [
            "access_token",
            "enabled",
            "expires_in",
            "identity_id",
            "internal",
            "jti",
            "org",
            "pod",
            "scope",
            "strong_auth",
            "strong_auth_supported",
            "tenant_id",
            "token_type",
            "user_name"
        ]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 43200);
    assert_eq!(body["scope"], "sp:scopes:all");
    assert_eq!(body["identity_id"], app.bootstrap.owner.id.as_str());
    assert_eq!(body["user_name"], "admin");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["internal"], false);
    let token = body["access_token"].as_str().unwrap().to_owned();
    // The claims of §5.
    let claims = decode_part(&token, 1);
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["client_id"], pat_id);
    assert_eq!(claims["identity_id"], app.bootstrap.owner.id.as_str());
    assert_eq!(claims["authorities"], json!(["ORG_ADMIN"]));
    assert_eq!(claims["scope"], json!(["sp:scopes:all"]));
    assert_eq!(claims["rights"].as_array().unwrap().len(), 10);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        43200
    );
    assert_eq!(claims["jti"], body["jti"]);
    let header = decode_part(&token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].as_str().is_some());
    token
}

pub(crate) fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn exchange_works_in_all_four_encodings() {
    let app = spawn_app().await;
    let (id, secret) = (app.bootstrap.id.clone(), app.bootstrap.secret.clone());
    let url = app.url("/oauth/token");
    let form = app
        .client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    let multipart = reqwest::multipart::Form::new()
        .text("grant_type", "client_credentials")
        .text("client_id", id.clone())
        .text("client_secret", secret.clone());
    let multipart = app
        .client
        .post(&url)
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    let query = app
        .client
        .post(format!(
            "{url}?grant_type=CLIENT_CREDENTIALS&client_id={id}&client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    let basic = app
        .client
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    for response in [form, multipart, query, basic] {
        let token = check_token_response(response, &app, &id).await;
        assert_eq!(app.list(&token, CLASSIC, "").await.status(), 200);
    }
}

#[tokio::test]
async fn every_bad_credential_gets_the_same_401() {
    let app = spawn_app().await;
    let owner = app.bootstrap.owner.id.clone();
    // An expired PAT: planned as if created a day ago with an expiry an hour ago.
    let now = OffsetDateTime::now_utc();
    let input = CreateInput {
        name: Some("expired".to_owned()),
        scope: None,
        validity_seconds: None,
        expiry: ExpiryRequest::Admin(AdminExpiry::At(now - Duration::hours(1))),
        managed: false,
    };
    let (expired, expired_secret) = plan_create(
        IdentityId::parse(&owner).unwrap(),
        input,
        now - Duration::days(1),
        &mut rand::rng(),
    )
    .unwrap();
    app.store
        .insert_pat(&expired, None, &test_event())
        .await
        .unwrap();
    // A deleted PAT.
    let deleted = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "deleted"}))
        .await;
    let (deleted_id, deleted_secret) = (
        deleted["id"].as_str().unwrap().to_owned(),
        deleted["secret"].as_str().unwrap().to_owned(),
    );
    app.exchange(&deleted_id, &deleted_secret).await;
    assert_eq!(
        app.delete(&app.admin_token, CLASSIC, &deleted_id)
            .await
            .status(),
        204
    );

    let other_secret = app
        .create_ok(&app.admin_token, CLASSIC, json!({"name": "other"}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        (
            "unknown id",
            "86f1dc6fe8f54414950454cbb11278fa".to_owned(),
            app.bootstrap.secret.clone(),
        ),
        (
            "malformed id",
            "nope".to_owned(),
            app.bootstrap.secret.clone(),
        ),
        ("wrong secret", app.bootstrap.id.clone(), other_secret),
        (
            "secret with a typo",
            app.bootstrap.id.clone(),
            typo(&app.bootstrap.secret),
        ),
        (
            "expired",
            expired.record.id.to_string(),
            expired_secret.expose().to_owned(),
        ),
        ("deleted", deleted_id, deleted_secret),
    ];
    for (case, id, secret) in cases {
        let response = app
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ])
            .await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_client", "error_description": "Bad client credentials"}),
            "{case}"
        );
    }
}

#[tokio::test]
async fn malformed_exchanges_get_oauth_400s() {
    let app = spawn_app().await;
    let (id, secret) = (app.bootstrap.id.as_str(), app.bootstrap.secret.as_str());
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("client_id", id), ("client_secret", secret)],
            "invalid_request",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", id)],
            "invalid_request",
        ),
        (&[("grant_type", "client_credentials")], "invalid_request"),
        (
            &[
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            "unsupported_grant_type",
        ),
    ];
    for (form, want) in cases {
        let response = app.token_form(form).await;
        assert_eq!(response.status(), 400, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], want, "{form:?}");
        assert!(body["error_description"].as_str().is_some());
    }
}

#[tokio::test]
async fn an_exchange_sets_last_used() {
    let app = spawn_app().await;
    // Written off the request path, so it may take a moment to land.
    let started = std::time::Instant::now();
    loop {
        let listed = app.list_ok(&app.admin_token, CLASSIC, "owner-id=me").await;
        if is_millis_timestamp(&listed[0]["lastUsed"]) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "lastUsed was never set"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Tokens signed with the server's own key but with claims of our choosing.
async fn forge(app: &TestApp, header: Header, claims: Value) -> String {
    let keys = app.store.signing_keys().await.unwrap();
    let key = EncodingKey::from_ed_pem(keys[0].private_key.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn the_jwt_check_rejects_each_kind_of_bad_token() {
    let app = spawn_app().await;
    let valid = app.admin_token.clone();
    let header = decode_part(&valid, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let claims = decode_part(&valid, 1);
    let mut ed_header = Header::new(Algorithm::EdDSA);
    ed_header.kid = Some(kid.clone());

    // Control: a forged token with the server key and honest claims passes.
    let honest = forge(&app, ed_header.clone(), claims.clone()).await;
    assert_eq!(app.list(&honest, CLASSIC, "").await.status(), 200);

    let mut expired_claims = claims.clone();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    expired_claims["iat"] = json!(now - 120);
    expired_claims["exp"] = json!(now - 60);
    let expired = forge(&app, ed_header.clone(), expired_claims).await;

    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("http://elsewhere.example");
    let wrong_iss = forge(&app, ed_header.clone(), wrong_iss).await;

    let parts: Vec<&str> = valid.split('.').collect();
    let mut raised = claims.clone();
    raised["identity_id"] = json!("86f1dc6fe8f54414950454cbb11278fa");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(raised.to_string()),
        parts[2]
    );

    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let alg_none = format!("{none_header}.{}.", parts[1]);

    // HS256 with the public key as the HMAC secret: the classic algorithm-confusion attack.
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let mut hs256 = Vec::new();
    for secret in [
        URL_SAFE_NO_PAD.decode(&public_x).unwrap(),
        public_x.as_bytes().to_vec(),
    ] {
        hs256.push(
            jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&secret)).unwrap(),
        );
    }

    // Signed by a key the server does not know, under an unknown kid and under the server's kid.
    let stranger =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let stranger_key = EncodingKey::from_ed_der(stranger.as_ref());
    let mut unknown_header = Header::new(Algorithm::EdDSA);
    unknown_header.kid = Some("unknown-kid".to_owned());
    let unknown_kid = jsonwebtoken::encode(&unknown_header, &claims, &stranger_key).unwrap();
    let wrong_key = jsonwebtoken::encode(&ed_header, &claims, &stranger_key).unwrap();
    let mut no_kid_header = Header::new(Algorithm::EdDSA);
    no_kid_header.kid = None;
    let no_kid = forge(&app, no_kid_header, claims.clone()).await;

    let mut cases = vec![
        ("expired", expired, "JWT validation failed: JWT is expired"),
        (
            "wrong iss",
            wrong_iss,
            "JWT validation failed: JWT issuer is invalid",
        ),
        (
            "tampered payload",
            tampered,
            "JWT validation failed: JWT signature is invalid",
        ),
        (
            "alg none",
            alg_none,
            "JWT validation failed: JWT is malformed",
        ),
        (
            "unknown kid",
            unknown_kid,
            "JWT validation failed: JWT key id is unknown",
        ),
        (
            "no kid",
            no_kid,
            "JWT validation failed: JWT key id is unknown",
        ),
        (
            "signed by another key",
            wrong_key,
            "JWT validation failed: JWT signature is invalid",
        ),
    ];
    for token in hs256 {
        cases.push((
            "HS256 with the public key",
            token,
            "JWT validation failed: JWT algorithm is not allowed",
        ));
    }
    for (case, token, want) in cases {
        let response = app.list(&token, CLASSIC, "").await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": want}), "{case}");
    }
}

#[tokio::test]
async fn a_scope_change_affects_only_tokens_minted_after_it() {
    let app = spawn_app().await;
    let user = app.actor("scoped", "USER", &[], &["sp:scopes:all"]).await;
    let old_token = user.token.clone();
    let response = app
        .patch(
            &app.admin_token,
            CLASSIC,
            &user.pat.id,
            json!([{"op": "replace", "path": "/scope", "value": ["sp:scopes:default"]}]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let new_token = app.exchange(&user.pat.id, &user.pat.secret).await;
    assert_eq!(
        decode_part(&new_token, 1)["rights"],
        json!(["idn:my-personal-access-tokens:read"])
    );
    // The old token keeps its manage right; the new one can only read.
    assert_eq!(
        app.create(&old_token, CLASSIC, json!({"name": "with old"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.create(&new_token, CLASSIC, json!({"name": "with new"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.list(&new_token, CLASSIC, "owner-id=me").await.status(),
        200
    );
}

#[tokio::test]
async fn a_token_never_outlives_its_pat() {
    let app = spawn_app().await;
    let soon = OffsetDateTime::now_utc() + Duration::minutes(5);
    let pat = app
        .admin_pat(
            &app.bootstrap.owner.id,
            "short",
            &[],
            AdminExpiry::At(soon),
            false,
        )
        .await;
    let response = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &pat.id),
            ("client_secret", &pat.secret),
        ])
        .await;
    let body: Value = response.json().await.unwrap();
    let claims = decode_part(body["access_token"].as_str().unwrap(), 1);
    assert!(claims["exp"].as_i64().unwrap() <= soon.unix_timestamp());
    assert!(body["expires_in"].as_i64().unwrap() <= 300);
}

/// A token with a header of our own writing (jsonwebtoken's `Header` cannot hold `crit`),
/// signed with the server's own key.
pub(crate) async fn forge_with_header(app: &TestApp, header: Value, claims: &Value) -> String {
    let keys = app.store.signing_keys().await.unwrap();
    let key = EncodingKey::from_ed_pem(keys[0].private_key.as_bytes()).unwrap();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn verification_has_one_clock_rule_and_refuses_unknown_critical_headers() {
    let app = spawn_app().await;
    let valid = app.admin_token.clone();
    let header = decode_part(&valid, 0);
    let claims = decode_part(&valid, 1);
    let refused = |reason: &str| format!("JWT validation failed: {reason}");
    let with = |changes: &[(&str, Value)]| {
        let mut claims = claims.clone();
        for (name, value) in changes {
            claims[*name] = value.clone();
        }
        claims
    };
    let now = || OffsetDateTime::now_utc().unix_timestamp();
    let status_and_error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // Control: the honest claims under our own header pass.
    let honest = forge_with_header(&app, header.clone(), &claims).await;
    assert_eq!(app.list(&honest, CLASSIC, "").await.status(), 200);

    // `exp` equal to now is refused on the first (uncached) check, as the cache refuses it.
    let at_exp = forge_with_header(&app, header.clone(), &with(&[("exp", json!(now()))])).await;
    let answer = status_and_error(app.list(&at_exp, CLASSIC, "").await).await;
    assert_eq!(answer, (401, refused("JWT is expired")));

    // Issued, or valid only from, an hour ahead: refused. Within the 60 s leeway: accepted.
    for (changes, want) in [
        (vec![("nbf", json!(now() + 3600))], 401),
        (vec![("iat", json!(now() + 3600))], 401),
        (
            vec![("iat", json!(now() + 30)), ("nbf", json!(now() + 30))],
            200,
        ),
        (vec![("nbf", json!(now() - 10))], 200),
    ] {
        let token = forge_with_header(&app, header.clone(), &with(&changes)).await;
        let (status, error) = status_and_error(app.list(&token, CLASSIC, "").await).await;
        assert_eq!(status, want, "{changes:?}");
        if want == 401 {
            assert_eq!(error, refused("JWT is not valid yet"), "{changes:?}");
        }
        // The second use is answered from the verified-token cache, by the same rule.
        let again = app.list(&token, CLASSIC, "").await.status().as_u16();
        assert_eq!(again, want, "{changes:?} from the cache");
    }

    // An unknown critical header parameter, even one the token also carries.
    let mut critical = header.clone();
    critical["crit"] = json!(["exp-ext"]);
    critical["exp-ext"] = json!(true);
    let token = forge_with_header(&app, critical, &claims).await;
    let answer = status_and_error(app.list(&token, CLASSIC, "").await).await;
    assert_eq!(
        answer,
        (
            401,
            refused("JWT has a critical header parameter that is not supported")
        )
    );

    // A token that expires while cached and one first seen after its `exp` get the same answer.
    let soon = with(&[("exp", json!(now() + 2))]);
    let cached = forge_with_header(&app, header.clone(), &soon).await;
    assert_eq!(app.list(&cached, CLASSIC, "").await.status(), 200);
    let mut late_claims = soon.clone();
    late_claims["jti"] = json!("another");
    let late = forge_with_header(&app, header.clone(), &late_claims).await;
    while now() < soon["exp"].as_i64().unwrap() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for token in [&cached, &late] {
        let answer = status_and_error(app.list(token, CLASSIC, "").await).await;
        assert_eq!(answer, (401, refused("JWT is expired")));
    }
}
