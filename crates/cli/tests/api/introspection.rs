//! For resource servers (EXTENSIONS E10): RFC 9068 access tokens (`typ`, `sub`, `aud`), the
//! RFC 8414 discovery documents, introspection (RFC 7662) and the revocation of access tokens
//! by `jti` (RFC 7009): who may, how fast every node hears of it, that it survives a restart and
//! is pruned after `exp`. Independent libraries check the same from Python in
//! `sdk-checks/python/check_resource_server.py`.

use crate::exchange::{decode_part, forge_with_header};
use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const INTROSPECT: &str = "/oauth/introspect";
const REVOKE: &str = "/oauth/revoke";

/// An identity that may introspect, and its PAT (id, secret).
async fn resource_server(app: &TestApp) -> Actor {
    app.actor(
        "orders-api",
        "USER",
        &["patd:token-introspection"],
        &["sp:scopes:all"],
    )
    .await
}

/// Introspects `token` at the node `base`, authenticated with HTTP Basic as `client`.
async fn introspect(base: &str, client: &Actor, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{INTROSPECT}"))
        .basic_auth(client.pat.id.as_str(), Some(&client.pat.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.unwrap())
}

async fn is_active(base: &str, client: &Actor, token: &str) -> bool {
    let (status, body) = introspect(base, client, token).await;
    assert_eq!(status, 200, "{body}");
    match body["active"].as_bool().unwrap() {
        true => true,
        false => {
            // No reason is ever given for a dead token.
            assert_eq!(body, json!({"active": false}));
            false
        }
    }
}

async fn bearer_status(base: &str, token: &str) -> u16 {
    crate::nodes::list_status(&reqwest::Client::new(), base, token).await
}

/// Revokes `token` with the given credentials (HTTP Basic as a PAT, or a bearer token).
async fn revoke_as(app: &TestApp, auth: Auth<'_>, token: &str) -> reqwest::Response {
    let request = app.client.post(app.url(REVOKE)).form(&[("token", token)]);
    let request = match auth {
        Auth::None => request,
        Auth::Basic(id, secret) => request.basic_auth(id, Some(secret)),
        Auth::Bearer(bearer) => request.bearer_auth(bearer),
    };
    request.send().await.unwrap()
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

async fn oauth_error(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn access_tokens_carry_typ_sub_and_aud_and_keep_every_contract_claim() {
    let app = spawn_app().await;
    let token = &app.admin_token;
    let header = decode_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let claims = decode_part(token, 1);
    assert_eq!(claims["sub"], app.bootstrap.owner.id.as_str());
    assert_eq!(claims["aud"], app.base.as_str());
    for claim in [
        "iss",
        "iat",
        "exp",
        "jti",
        "client_id",
        "identity_id",
        "user_name",
        "tenant_id",
        "org",
        "pod",
        "internal",
        "strong_auth",
        "authorities",
        "scope",
        "rights",
    ] {
        assert!(claims.get(claim).is_some(), "{claim} is missing: {claims}");
    }
    assert_eq!(bearer_status(&app.base, token).await, 200);

    // `--audience`, twice: an array, and patd's own check accepts it.
    let app = spawn_app_with(|config| {
        config.audiences = vec!["https://orders.example.com".into(), "urn:billing".into()]
    })
    .await;
    let claims = decode_part(&app.admin_token, 1);
    assert_eq!(
        claims["aud"],
        json!(["https://orders.example.com", "urn:billing"])
    );
    assert_eq!(bearer_status(&app.base, &app.admin_token).await, 200);

    // Signed with the server's own key: only the claim or header named differs.
    let header = decode_part(&app.admin_token, 0);
    let claims = decode_part(&app.admin_token, 1);
    let mut elsewhere = claims.clone();
    elsewhere["aud"] = json!("https://elsewhere.example.com");
    let forged = forge_with_header(&app, header.clone(), &elsewhere).await;
    let response = app.list(&forged, CLASSIC, "").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "JWT validation failed: JWT audience is invalid"
    );
    let mut set_header = header.clone();
    set_header["typ"] = json!("secevent+jwt");
    let forged = forge_with_header(&app, set_header, &claims).await;
    let body: Value = app.list(&forged, CLASSIC, "").await.json().await.unwrap();
    assert_eq!(
        body["error"],
        "JWT validation failed: JWT type is not an access token's"
    );
    // A token minted before patd 0.13: `typ: JWT`, no `aud`, no `sub`. Honoured until it expires.
    let mut legacy_header = header.clone();
    legacy_header["typ"] = json!("JWT");
    let mut legacy = claims.clone();
    legacy.as_object_mut().unwrap().remove("aud");
    legacy.as_object_mut().unwrap().remove("sub");
    let forged = forge_with_header(&app, legacy_header, &legacy).await;
    assert_eq!(bearer_status(&app.base, &forged).await, 200);
}

#[tokio::test]
async fn both_discovery_documents_point_to_every_endpoint() {
    let app = spawn_app().await;
    let oauth = get_json(
        &app.client,
        &app.url("/.well-known/oauth-authorization-server"),
    )
    .await;
    let openid = get_json(&app.client, &app.url("/.well-known/openid-configuration")).await;
    assert_eq!(oauth, openid);
    let base = app.base.as_str();
    assert_eq!(oauth["issuer"], base);
    assert_eq!(oauth["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(oauth["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(
        oauth["introspection_endpoint"],
        format!("{base}{INTROSPECT}")
    );
    assert_eq!(oauth["revocation_endpoint"], format!("{base}{REVOKE}"));
    assert_eq!(
        oauth["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        oauth["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(oauth.get("id_token_signing_alg_values_supported").is_none());
    // The issuer is what the tokens say.
    assert_eq!(decode_part(&app.admin_token, 1)["iss"], oauth["issuer"]);
}

#[tokio::test]
async fn introspection_answers_each_kind_of_token_and_each_kind_of_caller() {
    let app = spawn_app().await;
    let server = resource_server(&app).await;
    let user = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;

    // Active, with its claims, whichever way the caller authenticates.
    let (status, body) = introspect(&app.base, &server, &user.token).await;
    assert_eq!(status, 200);
    let claims = decode_part(&user.token, 1);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], user.pat.id.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["sub"], user.identity.id.as_str());
    assert_eq!(body["scope"], "sp:scopes:all");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.base.as_str());
    for claim in ["exp", "iat", "jti"] {
        assert_eq!(body[claim], claims[claim], "{claim}");
    }
    let in_form: Value = app
        .client
        .post(app.url(INTROSPECT))
        .form(&[
            ("token", user.token.as_str()),
            ("client_id", server.pat.id.as_str()),
            ("client_secret", server.pat.secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_form["active"], true);
    let (status, with_bearer) = introspect_bearer(&app, &server.token, &user.token).await;
    assert_eq!((status, with_bearer["active"].as_bool()), (200, Some(true)));

    // Garbage, a PAT secret, a token signed by no key of patd's: inactive, no reason.
    for token in ["garbage", user.pat.secret.as_str(), "a.b.c"] {
        assert!(!is_active(&app.base, &server, token).await, "{token}");
    }
    // Expired (signed by patd, `exp` passed).
    let mut expired = decode_part(&user.token, 1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    expired["iat"] = json!(now - 120);
    expired["exp"] = json!(now - 60);
    let expired = forge_with_header(&app, decode_part(&user.token, 0), &expired).await;
    assert!(!is_active(&app.base, &server, &expired).await);

    // Callers: none, bad credentials, and one without the right.
    let anonymous = app
        .client
        .post(app.url(INTROSPECT))
        .form(&[("token", user.token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(oauth_error(anonymous).await, (401, "invalid_client".into()));
    let wrong = app
        .client
        .post(app.url(INTROSPECT))
        .basic_auth(server.pat.id.as_str(), Some(&user.pat.secret))
        .form(&[("token", user.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(wrong).await, (401, "invalid_client".into()));
    let (status, body) = introspect(&app.base, &user, &user.token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    // A PAT whose scope leaves the right out cannot introspect either.
    let narrowed = app
        .admin_pat(
            &server.identity.id,
            "narrow",
            &["idn:my-personal-access-tokens:read"],
            patd_core::expiry::AdminExpiry::Default,
            false,
        )
        .await;
    let narrowed_answer = app
        .client
        .post(app.url(INTROSPECT))
        .basic_auth(narrowed.id.as_str(), Some(&narrowed.secret))
        .form(&[("token", user.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(narrowed_answer).await,
        (403, "insufficient_scope".into())
    );
    // ORG_ADMIN holds the right.
    let (status, body) = introspect_bearer(&app, &app.admin_token, &user.token).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)));

    // The PAT deleted: inactive at once.
    assert_eq!(
        app.delete(&user.token, CLASSIC, user.pat.id.as_str())
            .await
            .status(),
        204
    );
    assert!(!is_active(&app.base, &server, &user.token).await);
}

async fn introspect_bearer(app: &TestApp, bearer: &str, token: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(INTROSPECT))
        .bearer_auth(bearer)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_access_token_is_revoked_by_its_pat_or_a_manager_and_by_no_one_else() {
    let app = spawn_app().await;
    let server = resource_server(&app).await;
    let alice = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let mallory = app.actor("mallory", "USER", &[], &["sp:scopes:all"]).await;
    let (id, secret) = (alice.pat.id.as_str(), alice.pat.secret.as_str());

    // Without credentials, an access token is not revoked: 401.
    let (status, error) = oauth_error(revoke_as(&app, Auth::None, &alice.token).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    // Another user's PAT, by Basic or bearer: not its token to revoke.
    for auth in [
        Auth::Basic(mallory.pat.id.as_str(), &mallory.pat.secret),
        Auth::Bearer(&mallory.token),
    ] {
        let (status, error) = oauth_error(revoke_as(&app, auth, &alice.token).await).await;
        assert_eq!((status, error.as_str()), (400, "unauthorized_client"));
    }
    assert!(is_active(&app.base, &server, &alice.token).await);
    assert_eq!(bearer_status(&app.base, &alice.token).await, 200);

    // The PAT that minted it revokes it: refused at once, inactive, audited; the PAT lives on.
    let response = revoke_as(&app, Auth::Basic(id, secret), &alice.token).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(bearer_status(&app.base, &alice.token).await, 401);
    assert!(!is_active(&app.base, &server, &alice.token).await);
    let fresh = app.exchange(id, secret).await;
    assert_eq!(bearer_status(&app.base, &fresh).await, 200);
    let jti = decode_part(&alice.token, 1)["jti"].clone();
    let events = crate::webhooks::events_about(&app, "token.revoked", id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["jti"], jti);
    assert_eq!(events[0]["actor"]["id"], alice.identity.id.as_str());
    // Again: already revoked, the same answer, no second event.
    assert_eq!(
        revoke_as(&app, Auth::Basic(id, secret), &alice.token)
            .await
            .status(),
        200
    );

    // Its owner with another token, and an admin: allowed too. Garbage: 200, nothing.
    let second = app.exchange(id, secret).await;
    let third = app.exchange(id, secret).await;
    assert_eq!(
        revoke_as(&app, Auth::Bearer(&fresh), &second)
            .await
            .status(),
        200
    );
    assert_eq!(
        revoke_as(&app, Auth::Bearer(&app.admin_token), &third)
            .await
            .status(),
        200
    );
    for token in [&second, &third] {
        assert_eq!(bearer_status(&app.base, token).await, 401);
    }
    assert_eq!(bearer_status(&app.base, &fresh).await, 200);
    // Whether a token is still live is told to no one else: a revoked token gets an outsider,
    // and a caller with no credentials, the same answers as a live one.
    for token in [&second, &fresh] {
        let (status, error) = oauth_error(revoke_as(&app, Auth::None, token).await).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"));
        let outsider = Auth::Basic(mallory.pat.id.as_str(), &mallory.pat.secret);
        let (status, error) = oauth_error(revoke_as(&app, outsider, token).await).await;
        assert_eq!((status, error.as_str()), (400, "unauthorized_client"));
    }
    assert_eq!(
        revoke_as(&app, Auth::Basic(id, secret), "garbage")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn revocations_survive_a_restart_and_are_pruned_after_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let app = spawn_app_full_on(&url, |_| {}).await;
    let user = app.actor("alice", "USER", &[], &["sp:scopes:all"]).await;
    let response = revoke_as(
        &app,
        Auth::Basic(user.pat.id.as_str(), &user.pat.secret),
        &user.token,
    )
    .await;
    assert_eq!(response.status(), 200);
    // A node started after the revocation, with nothing cached, refuses the token.
    let restarted = PreparedNode::new(&url, |_| {}, |store| store).await;
    let restarted_base = restarted.base.clone();
    restarted.serve(std::future::pending());
    assert_eq!(bearer_status(&restarted_base, &user.token).await, 401);
    // Nothing is pruned before the token's `exp`.
    assert_eq!(
        app.store
            .prune_revoked_tokens(time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        0
    );
    // A node whose clock is past the token's `exp` prunes its revocation in the background.
    let clock = patd_server::state::Clock::default();
    clock.advance(time::Duration::hours(13));
    let _pruning = PreparedNode::new(
        &url,
        |config| {
            config.clock = clock;
            config.revocation_prune_interval = Duration::from_millis(50);
        },
        |store| store,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Had the node not pruned the row, this would find it.
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    assert_eq!(app.store.prune_revoked_tokens(far).await.unwrap(), 0);
}

#[tokio::test]
async fn past_the_per_pat_cap_a_revocation_ends_every_earlier_token_of_that_pat() {
    let app = spawn_app().await;
    let user = app.actor("busy", "USER", &[], &["sp:scopes:all"]).await;
    let (id, secret) = (user.pat.id.as_str(), user.pat.secret.as_str());
    let mut tokens = Vec::new();
    for _ in 0..=patd_core::exchange::MAX_REVOKED_PER_PAT {
        tokens.push(app.exchange(id, secret).await);
    }
    let kept = user.token.clone();
    for token in &tokens[..patd_core::exchange::MAX_REVOKED_PER_PAT] {
        assert_eq!(
            revoke_as(&app, Auth::Basic(id, secret), token)
                .await
                .status(),
            200
        );
    }
    // At the cap, only the revoked ones are refused.
    assert_eq!(bearer_status(&app.base, &kept).await, 200);
    assert_eq!(bearer_status(&app.base, &tokens[0]).await, 401);
    let last = tokens.last().unwrap();
    assert_eq!(bearer_status(&app.base, last).await, 200);
    // One more: every token minted up to it is refused; new ones are not.
    assert_eq!(
        revoke_as(&app, Auth::Basic(id, secret), last)
            .await
            .status(),
        200
    );
    assert_eq!(bearer_status(&app.base, last).await, 401);
    assert_eq!(bearer_status(&app.base, &kept).await, 401);
    // The trail says so (and Shared Signals tell it as the whole PAT's tokens revoked).
    let events = crate::webhooks::events_about(&app, "token.revoked", id).await;
    let bulk: Vec<&Value> = events
        .iter()
        .filter(|event| event["details"]["earlierTokens"] == true)
        .collect();
    assert_eq!(bulk.len(), 1, "{events:?}");
    assert_eq!(bulk[0]["details"]["jti"], decode_part(last, 1)["jti"]);
    // Minted in the same second as the newest revoked token, or later: still good.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = app.exchange(id, secret).await;
    assert_eq!(bearer_status(&app.base, &fresh).await, 200);
}

#[tokio::test]
async fn a_token_revoked_on_one_node_is_refused_and_inactive_on_another_within_a_second() {
    // Several nodes share PostgreSQL; SQLite serves one.
    let Some(base_url) = postgres_url() else {
        eprintln!("skipped: PATD_TEST_POSTGRES_URL is not set, so the two-node case did not run");
        return;
    };
    let url = fresh_postgres_schema(&base_url).await;
    let first = spawn_app_full_on(&url, |_| {}).await;
    let public_url = first.base.clone();
    let second =
        PreparedNode::new(&url, |config| config.public_url = public_url, |store| store).await;
    let second_base = second.base.clone();
    second.serve(std::future::pending());
    let server = resource_server(&first).await;
    let user = first
        .actor("roaming", "USER", &[], &["sp:scopes:all"])
        .await;
    // The second node has the PAT in its cache, and calls the token active.
    assert_eq!(bearer_status(&second_base, &user.token).await, 200);
    assert!(is_active(&second_base, &server, &user.token).await);
    let response = revoke_as(
        &first,
        Auth::Basic(user.pat.id.as_str(), &user.pat.secret),
        &user.token,
    )
    .await;
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    while bearer_status(&second_base, &user.token).await != 401
        || is_active(&second_base, &server, &user.token).await
    {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the second node still honours the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
