//! The Shared Signals transmitter (EXTENSIONS E11) against receivers in the test: the routes and
//! their right, SailPoint's limits, the stream's configuration and status, verification, one SET
//! per kind of change (each checked against `/ssf/v1/jwks` with jsonwebtoken, on the SET's own
//! header and claims), RFC 8936 polling with acknowledgements, and two nodes on one database
//! pushing each SET once.

use crate::helpers::*;
use crate::leak::{keys_file, report_ok, Reporter};
use crate::webhooks::{Received, Receiver};
use base64::Engine as _;
use patd_server::scanning_keys::ScanningKeys;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const STREAMS: &str = "/ssf/v1/streams";
const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const MANAGE: &str = "idn:ssf-transmitter-streams:manage";

fn quick(config: &mut patd_server::ServerConfig) {
    config.webhook_allow_private = true;
    config.outbox_poll = Duration::from_millis(50);
    config.outbox_retry_base = Duration::from_millis(400);
}

fn push_body(url: &str) -> Value {
    json!({
        "delivery": {"method": PUSH, "endpoint_url": url,
                     "authorization_header": "Bearer receiver-secret"},
        "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE],
        "description": "a test receiver"
    })
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn create_stream(app: &TestApp, token: &str, body: Value) -> Value {
    let response = send(app, reqwest::Method::POST, STREAMS, token, Some(body)).await;
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created
}

/// The SET's header and claims, once its signature verified with the transmitter's JWK set
/// (the key named by its `kid`) and its `iss` and `aud` matched.
async fn verified(app: &TestApp, set: &str, audience: &str) -> (Value, Value) {
    let jwks: Value = get_json(&app.client, &app.url("/ssf/v1/jwks")).await;
    let header = jsonwebtoken::decode_header(set).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.clone().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .expect("the SET's kid is in /ssf/v1/jwks");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
        .unwrap()
        .claims;
    let segment = set.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .unwrap(),
    )
    .unwrap();
    (header, claims)
}

fn event_type(claims: &Value) -> String {
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "{claims}");
    events.keys().next().unwrap().clone()
}

/// Checks a pushed request's framing (RFC 8935) and returns its verified claims.
async fn pushed(app: &TestApp, request: &Received, audience: &str) -> Value {
    assert_eq!(request.header("content-type"), "application/secevent+jwt");
    assert_eq!(request.header("authorization"), "Bearer receiver-secret");
    verified(app, &request.body, audience).await.1
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn ssf_routes_need_their_right_and_the_metadata_needs_none() {
    let app = spawn_app_with(quick).await;
    let user = app.actor("user", "USER", &[], &["sp:scopes:all"]).await;
    let with_right = app
        .actor("receiver", "USER", &[MANAGE], &["sp:scopes:all"])
        .await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;

    for path in [
        "/.well-known/v1/ssf-configuration",
        "/.well-known/ssf-configuration",
    ] {
        let metadata: Value = get_json(&app.client, &app.url(path)).await;
        assert_eq!(metadata["spec_version"], "1_0");
        assert_eq!(metadata["issuer"], app.base.as_str());
        assert_eq!(metadata["jwks_uri"], app.url("/ssf/v1/jwks"));
        assert_eq!(metadata["configuration_endpoint"], app.url(STREAMS));
        assert_eq!(
            metadata["status_endpoint"],
            app.url("/ssf/v1/streams/status")
        );
        assert_eq!(
            metadata["verification_endpoint"],
            app.url("/ssf/v1/streams/verify")
        );
        assert_eq!(metadata["delivery_methods_supported"], json!([PUSH, POLL]));
        assert!(metadata["authorization_schemes"]
            .as_array()
            .unwrap()
            .contains(&json!({"spec_urn": "urn:ietf:rfc:6750"})));
    }
    let jwks: Value = get_json(&app.client, &app.url("/ssf/v1/jwks")).await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert!(key["n"].as_str().unwrap().len() > 300, "a 2048-bit modulus");

    let cases: [(reqwest::Method, &str, Option<Value>); 9] = [
        (
            reqwest::Method::POST,
            STREAMS,
            Some(push_body(&receiver.url)),
        ),
        (reqwest::Method::GET, STREAMS, None),
        (
            reqwest::Method::PUT,
            STREAMS,
            Some(json!({"stream_id": "x"})),
        ),
        (
            reqwest::Method::PATCH,
            STREAMS,
            Some(json!({"stream_id": "x"})),
        ),
        (reqwest::Method::DELETE, "/ssf/v1/streams?stream_id=x", None),
        (
            reqwest::Method::GET,
            "/ssf/v1/streams/status?stream_id=x",
            None,
        ),
        (
            reqwest::Method::POST,
            "/ssf/v1/streams/status",
            Some(json!({"stream_id": "x", "status": "paused"})),
        ),
        (
            reqwest::Method::POST,
            "/ssf/v1/streams/verify",
            Some(json!({"stream_id": "x"})),
        ),
        (
            reqwest::Method::POST,
            "/ssf/v1/streams/poll?stream_id=x",
            Some(json!({})),
        ),
    ];
    for (method, path, body) in cases {
        let response = send(&app, method.clone(), path, &user.token, body.clone()).await;
        let (status, _, cause) = error_of(response).await;
        assert_eq!(status, 403, "{method} {path}");
        assert!(cause.contains(MANAGE), "{cause}");
        let response = send(&app, method.clone(), path, "not.a.jwt", body).await;
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    // The right alone is enough, and ORG_ADMIN holds it.
    create_stream(&app, &with_right.token, push_body(&receiver.url)).await;
    create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
}

#[tokio::test]
async fn one_stream_per_client_id_and_ten_per_tenant() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    let first = create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
    let response = send(
        &app,
        reqwest::Method::POST,
        STREAMS,
        &app.admin_token,
        Some(push_body(&receiver.url)),
    )
    .await;
    let (status, code, cause) = error_of(response).await;
    assert_eq!((status, code.as_str()), (409, "409 Conflict"), "{cause}");

    // Nine more clients fill the tenant; the eleventh is refused.
    let a = app.actor("a", "ORG_ADMIN", &[], &["sp:scopes:all"]).await;
    let mut tokens = vec![a.token.clone()];
    for n in 0..8 {
        let pat = app
            .admin_pat(
                &a.identity.id,
                &format!("more {n}"),
                &["sp:scopes:all"],
                AdminExpiry::Default,
                false,
            )
            .await;
        tokens.push(app.exchange(&pat.id, &pat.secret).await);
    }
    let b = app.actor("b", "ORG_ADMIN", &[], &["sp:scopes:all"]).await;
    let mut ids = vec![first["stream_id"].as_str().unwrap().to_owned()];
    for token in &tokens {
        let created = create_stream(&app, token, push_body(&receiver.url)).await;
        ids.push(created["stream_id"].as_str().unwrap().to_owned());
    }
    let response = send(
        &app,
        reqwest::Method::POST,
        STREAMS,
        &b.token,
        Some(push_body(&receiver.url)),
    )
    .await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 409, "{cause}");
    assert!(cause.contains("10 streams"), "{cause}");
    let all: Value = send(&app, reqwest::Method::GET, STREAMS, &app.admin_token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 10);
    // A deleted stream frees its place.
    let response = send(
        &app,
        reqwest::Method::DELETE,
        &format!("{STREAMS}?stream_id={}", ids[3]),
        &app.admin_token,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    create_stream(&app, &b.token, push_body(&receiver.url)).await;
}

#[tokio::test]
async fn a_stream_round_trips_through_create_read_replace_update_and_delete() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    let created = create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
    let id = created["stream_id"].as_str().unwrap().to_owned();
    assert!(is_hex32(&id));
    assert_eq!(created["iss"], app.base.as_str());
    assert_eq!(created["aud"], app.bootstrap.id.as_str());
    assert_eq!(
        created["delivery"],
        json!({"method": PUSH, "endpoint_url": receiver.url})
    );
    assert_eq!(
        created["events_supported"],
        json!([SESSION_REVOKED, CREDENTIAL_CHANGE])
    );
    assert_eq!(
        created["events_delivered"],
        json!([SESSION_REVOKED, CREDENTIAL_CHANGE])
    );
    assert_eq!(created["description"], "a test receiver");
    assert!(created.get("updatedAt").is_none());
    assert!(
        !created.to_string().contains("receiver-secret"),
        "never shown back"
    );

    let one: Value = send(
        &app,
        reqwest::Method::GET,
        &format!("{STREAMS}?stream_id={id}"),
        &app.admin_token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one, created);
    let all: Value = send(&app, reqwest::Method::GET, STREAMS, &app.admin_token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all, json!([created]));

    let replaced: Value = send(
        &app,
        reqwest::Method::PUT,
        STREAMS,
        &app.admin_token,
        Some(json!({"stream_id": id, "delivery": {"method": POLL},
                    "events_requested": [SESSION_REVOKED, "urn:example:unknown"]})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(replaced["delivery"]["method"], POLL);
    assert_eq!(
        replaced["delivery"]["endpoint_url"],
        app.url(&format!("/ssf/v1/streams/poll?stream_id={id}"))
    );
    assert_eq!(
        replaced["events_requested"],
        json!([SESSION_REVOKED, "urn:example:unknown"])
    );
    assert_eq!(replaced["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(
        replaced["description"], "",
        "a replace resets what it leaves out"
    );
    assert!(replaced["updatedAt"].is_string());

    let updated: Value = send(
        &app,
        reqwest::Method::PATCH,
        STREAMS,
        &app.admin_token,
        Some(json!({"stream_id": id, "description": "patched",
                    "delivery": {"method": PUSH, "endpoint_url": receiver.url}})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(updated["description"], "patched");
    assert_eq!(updated["delivery"]["method"], PUSH);
    assert_eq!(
        updated["events_requested"],
        json!([SESSION_REVOKED, "urn:example:unknown"]),
        "kept"
    );

    // What a client sends is bounded and checked.
    let bad = [
        json!({"stream_id": id, "description": "x".repeat(257)}),
        json!({"stream_id": id, "events_requested": vec!["urn:x"; 33]}),
        json!({"stream_id": id, "delivery": {"method": PUSH, "endpoint_url": format!("http://a/{}", "x".repeat(2100))}}),
        json!({"stream_id": id, "delivery": {"method": PUSH, "endpoint_url": "ftp://example.com/"}}),
        json!({"stream_id": id, "delivery": {"method": "push"}}),
        json!({"stream_id": id, "delivery": {"authorization_header": "a\r\nb: c"}}),
        json!({"description": "no id"}),
    ];
    for body in bad {
        let response = send(
            &app,
            reqwest::Method::PATCH,
            STREAMS,
            &app.admin_token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let private = spawn_app().await;
    let response = send(
        &private,
        reqwest::Method::POST,
        STREAMS,
        &private.admin_token,
        Some(push_body("http://127.0.0.1:9/x")),
    )
    .await;
    let (status, _, cause) = error_of(response).await;
    assert_eq!(status, 400);
    assert!(cause.contains("--webhook-allow-private"), "{cause}");

    // An unknown stream is 404 wherever it is named.
    let unknown = "0123456789abcdef0123456789abcdef";
    let named = [
        (
            reqwest::Method::GET,
            format!("{STREAMS}?stream_id={unknown}"),
            None,
        ),
        (
            reqwest::Method::PUT,
            STREAMS.to_owned(),
            Some(json!({"stream_id": unknown, "delivery": {"method": POLL}})),
        ),
        (
            reqwest::Method::PATCH,
            STREAMS.to_owned(),
            Some(json!({"stream_id": unknown})),
        ),
        (
            reqwest::Method::GET,
            format!("/ssf/v1/streams/status?stream_id={unknown}"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/ssf/v1/streams/status".to_owned(),
            Some(json!({"stream_id": unknown, "status": "paused"})),
        ),
        (
            reqwest::Method::POST,
            format!("/ssf/v1/streams/poll?stream_id={unknown}"),
            Some(json!({})),
        ),
    ];
    let named = named.into_iter().chain([
        // Ids patd never makes name nothing, whatever they hold (U+0000 cannot reach PostgreSQL).
        (
            reqwest::Method::GET,
            format!("{STREAMS}?stream_id=%00"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("{STREAMS}?stream_id=a%00b"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            STREAMS.to_owned(),
            Some(json!({"stream_id": "\u{0}"})),
        ),
    ]);
    for (method, path, body) in named {
        let response = send(&app, method.clone(), &path, &app.admin_token, body).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let unreadable = app
        .client
        .post(app.url(STREAMS))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body("{\"delivery\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(unreadable.status(), 400);

    let delete = format!("{STREAMS}?stream_id={id}");
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            &delete,
            &app.admin_token,
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            &delete,
            &app.admin_token,
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(&app, reqwest::Method::GET, &delete, &app.admin_token, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            STREAMS,
            &app.admin_token,
            None
        )
        .await
        .status(),
        400
    );
}

#[tokio::test]
async fn verification_carries_the_state_and_status_holds_or_drops_events() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    let created = create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
    let id = created["stream_id"].as_str().unwrap().to_owned();
    let audience = app.bootstrap.id.clone();

    let response = send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/verify",
        &app.admin_token,
        Some(json!({"stream_id": id, "state": "s-123"})),
    )
    .await;
    assert_eq!(response.status(), 204);
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let claims = pushed(&app, &got[0], &audience).await;
    assert_eq!(event_type(&claims), VERIFICATION);
    assert_eq!(claims["events"][VERIFICATION]["state"], "s-123");
    assert_eq!(claims["sub_id"], json!({"format": "opaque", "id": id}));
    assert!(is_hex32(claims["jti"].as_str().unwrap()));
    assert!(claims["iat"].is_i64());
    let response = send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/verify",
        &app.admin_token,
        Some(json!({"stream_id": "0123456789abcdef0123456789abcdef"})),
    )
    .await;
    assert_eq!(response.status(), 404);

    let status_path = format!("/ssf/v1/streams/status?stream_id={id}");
    let status: Value = send(
        &app,
        reqwest::Method::GET,
        &status_path,
        &app.admin_token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(status, json!({"stream_id": id, "status": "enabled"}));
    let set_status = |value: &str, reason: Option<&str>| json!({"stream_id": id, "status": value, "reason": reason});

    // Paused: the SET is held, then sent once the stream is enabled again.
    let paused: Value = send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/status",
        &app.admin_token,
        Some(set_status("paused", Some("maintenance"))),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        paused,
        json!({"stream_id": id, "status": "paused", "reason": "maintenance"})
    );
    let held = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "held", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await;
    let held_id = held["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&app.admin_token, AWARE, held_id).await.status(),
        204
    );
    settle().await;
    assert_eq!(receiver.received().len(), 1, "nothing while paused");
    send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/status",
        &app.admin_token,
        Some(set_status("enabled", None)),
    )
    .await;
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    let claims = pushed(&app, &got[1], &audience).await;
    assert_eq!(event_type(&claims), SESSION_REVOKED);
    assert_eq!(claims["sub_id"]["id"], held_id);

    // Disabled: the SET is dropped, and not sent when the stream is enabled again.
    send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/status",
        &app.admin_token,
        Some(set_status("disabled", None)),
    )
    .await;
    let dropped = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "dropped", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await;
    app.delete(&app.admin_token, AWARE, dropped["id"].as_str().unwrap())
        .await;
    settle().await;
    send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/status",
        &app.admin_token,
        Some(set_status("enabled", None)),
    )
    .await;
    settle().await;
    assert_eq!(
        receiver.received().len(),
        2,
        "nothing from while it was disabled"
    );
    let response = send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/status",
        &app.admin_token,
        Some(set_status("off", None)),
    )
    .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn each_kind_of_change_sends_one_set() {
    let reporter = Reporter::new("reporter-1");
    let dir = tempfile::tempdir().unwrap();
    let keys = ScanningKeys::load(&keys_file(dir.path(), &[&reporter])).unwrap();
    let clock = patd_server::state::Clock::default();
    let scan_clock = clock.clone();
    let app = spawn_app_with(move |config| {
        quick(config);
        config.secret_scanning_keys = Some(Arc::new(keys));
        config.expiry_scan_interval = Duration::from_millis(50);
        config.clock = scan_clock;
    })
    .await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
    let audience = app.bootstrap.id.clone();
    let never = json!({"expirationDate": null, "userAwareTokenNeverExpires": true});
    let make = |name: &str| {
        let mut body = never.clone();
        body["name"] = json!(name);
        body["scope"] = json!(["sp:scopes:all"]);
        body
    };
    let mut expected: Vec<(String, String)> = Vec::new();

    let deleted = app
        .create_ok(&app.admin_token, AWARE, make("deleted"))
        .await;
    app.delete(&app.admin_token, AWARE, deleted["id"].as_str().unwrap())
        .await;
    expected.push((
        deleted["id"].as_str().unwrap().to_owned(),
        SESSION_REVOKED.to_owned(),
    ));

    let leaked = app.create_ok(&app.admin_token, AWARE, make("leaked")).await;
    report_ok(&app, &reporter, &[leaked["secret"].as_str().unwrap()]).await;
    expected.push((
        leaked["id"].as_str().unwrap().to_owned(),
        SESSION_REVOKED.to_owned(),
    ));

    let rotated = app
        .create_ok(&app.admin_token, AWARE, make("rotated"))
        .await;
    let rotated_id = rotated["id"].as_str().unwrap();
    let response = app
        .client
        .post(app.url(&format!(
            "/patd/v1/personal-access-tokens/{rotated_id}/rotate"
        )))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    expected.push((rotated_id.to_owned(), CREDENTIAL_CHANGE.to_owned()));

    let scoped = app.create_ok(&app.admin_token, AWARE, make("scoped")).await;
    let scoped_id = scoped["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &app.admin_token,
            AWARE,
            scoped_id,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(renamed.status(), 200, "a rename signals nothing");
    let patched = app.patch(&app.admin_token, AWARE, scoped_id, json!([{"op": "replace", "path": "/scope", "value": ["sp:my-personal-access-tokens:read"]}])).await;
    assert_eq!(patched.status(), 200);
    expected.push((scoped_id.to_owned(), CREDENTIAL_CHANGE.to_owned()));

    // An access token revoked by its jti: the audit event as the revocation writes it (the
    // target its PAT, details.jti the token), stored through the store with an unchanged PAT.
    let revoked = app
        .create_ok(&app.admin_token, AWARE, make("token revoked"))
        .await;
    let revoked_id = patd_core::ids::PatId::parse(revoked["id"].as_str().unwrap()).unwrap();
    let record = app.store.pat(&revoked_id).await.unwrap().unwrap();
    let mut event = patd_core::audit::AuditEvent::new(
        patd_core::audit::EventType::TokenRevoked,
        patd_core::audit::Actor::system("test"),
        Some(patd_core::audit::Target {
            kind: patd_core::audit::Target::PAT,
            id: revoked_id.as_str().to_owned(),
            name: None,
            owner_id: None,
        }),
        time::OffsetDateTime::now_utc(),
        &mut rand::rng(),
    );
    event = event.detail("jti", "the-revoked-jti");
    app.store.update_pat(&record.pat, &event).await.unwrap();
    expected.push((revoked_id.as_str().to_owned(), SESSION_REVOKED.to_owned()));

    let expiring = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "expired", "scope": ["sp:scopes:all"],
                   "expirationDate": patd_proto::timestamp::format(time::OffsetDateTime::now_utc() + time::Duration::days(3))}),
        )
        .await;
    settle().await;
    clock.advance(time::Duration::days(3) + time::Duration::hours(1));
    expected.push((
        expiring["id"].as_str().unwrap().to_owned(),
        SESSION_REVOKED.to_owned(),
    ));

    let got = receiver
        .wait_for(expected.len(), Duration::from_secs(10))
        .await;
    settle().await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    let mut seen = Vec::new();
    let mut jtis = HashSet::new();
    for request in &got {
        let claims = pushed(&app, request, &audience).await;
        let kind = event_type(&claims);
        assert_eq!(claims["sub_id"]["format"], "opaque");
        let body = &claims["events"][kind.as_str()];
        assert!(body["event_timestamp"].is_i64(), "{claims}");
        if kind == CREDENTIAL_CHANGE {
            assert_eq!(body["credential_type"], "password");
            assert_eq!(body["change_type"], "update");
        }
        if claims["sub_id"]["id"] == revoked_id.as_str() {
            assert_eq!(claims["sub_id"]["jti"], "the-revoked-jti");
        }
        jtis.insert(claims["jti"].as_str().unwrap().to_owned());
        seen.push((claims["sub_id"]["id"].as_str().unwrap().to_owned(), kind));
    }
    assert_eq!(seen, expected, "one SET per change, in order");
    assert_eq!(jtis.len(), got.len(), "every SET has its own jti");
}

/// RFC 8936 polls of `stream_id`: the answer's body.
async fn poll(app: &TestApp, stream_id: &str, body: Value) -> Value {
    let response = send(
        app,
        reqwest::Method::POST,
        &format!("/ssf/v1/streams/poll?stream_id={stream_id}"),
        &app.admin_token,
        Some(body),
    )
    .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn polled_sets_come_until_acknowledged_and_never_after() {
    let app = spawn_app_with(quick).await;
    let created = create_stream(
        &app,
        &app.admin_token,
        json!({"delivery": {"method": POLL}, "events_requested": [SESSION_REVOKED]}),
    )
    .await;
    let id = created["stream_id"].as_str().unwrap().to_owned();
    let audience = app.bootstrap.id.clone();
    let mut pat_ids = Vec::new();
    for n in 0..3 {
        let pat = app.create_ok(&app.admin_token, AWARE, json!({"name": format!("polled {n}"), "expirationDate": null, "userAwareTokenNeverExpires": true})).await;
        app.delete(&app.admin_token, AWARE, pat["id"].as_str().unwrap())
            .await;
        pat_ids.push(pat["id"].as_str().unwrap().to_owned());
    }

    let first = poll(
        &app,
        &id,
        json!({"maxEvents": 2, "returnImmediately": true}),
    )
    .await;
    let sets = first["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(first["moreAvailable"], true);
    let mut subjects = Vec::new();
    for (jti, set) in sets {
        let (_, claims) = verified(&app, set.as_str().unwrap(), &audience).await;
        assert_eq!(claims["jti"], jti.as_str());
        assert_eq!(event_type(&claims), SESSION_REVOKED);
        subjects.push(claims["sub_id"]["id"].as_str().unwrap().to_owned());
    }
    subjects.sort();
    let mut oldest: Vec<String> = pat_ids[..2].to_vec();
    oldest.sort();
    assert_eq!(subjects, oldest, "oldest first");

    // Unacknowledged, they come again; acknowledged, never.
    let again = poll(
        &app,
        &id,
        json!({"maxEvents": 2, "returnImmediately": true}),
    )
    .await;
    assert_eq!(again["sets"], first["sets"]);
    let acked: Vec<String> = sets.keys().cloned().collect();
    let after = poll(
        &app,
        &id,
        json!({"ack": acked, "maxEvents": 10, "returnImmediately": true}),
    )
    .await;
    let rest = after["sets"].as_object().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(after["moreAvailable"], false);
    assert!(acked.iter().all(|jti| !rest.contains_key(jti)));
    let last: Vec<String> = rest.keys().cloned().collect();
    let only_ack = poll(&app, &id, json!({"ack": last, "maxEvents": 0})).await;
    assert_eq!(only_ack["sets"], json!({}));
    // A SET the receiver refuses (setErrs) is not sent again either.
    let refused = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "refused", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await;
    app.delete(&app.admin_token, AWARE, refused["id"].as_str().unwrap())
        .await;
    let pending = poll(&app, &id, json!({"returnImmediately": true})).await;
    let jti = pending["sets"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let errs = json!({"setErrs": {jti.clone(): {"err": "invalid_key", "description": "test"}}, "returnImmediately": true});
    assert_eq!(poll(&app, &id, errs).await["sets"], json!({}));
    let junk = json!({"ack": ["\u{0}", "x"], "setErrs": {"\u{0}": {"err": "\u{0}"}}, "returnImmediately": true});
    assert_eq!(
        poll(&app, &id, junk).await["sets"],
        json!({}),
        "junk jtis are ignored"
    );
    let empty = poll(&app, &id, json!({"returnImmediately": true})).await;
    assert_eq!(empty, json!({"sets": {}, "moreAvailable": false}));

    // A long poll waits for the next SET.
    let waiting = {
        let client = app.client.clone();
        let url = app.url(&format!("/ssf/v1/streams/poll?stream_id={id}"));
        let token = app.admin_token.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = app
        .create_ok(
            &app.admin_token,
            AWARE,
            json!({"name": "late", "expirationDate": null, "userAwareTokenNeverExpires": true}),
        )
        .await;
    app.delete(&app.admin_token, AWARE, late["id"].as_str().unwrap())
        .await;
    let answer = waiting.await.unwrap();
    assert_eq!(answer["sets"].as_object().unwrap().len(), 1, "{answer}");

    let bounds = send(
        &app,
        reqwest::Method::POST,
        &format!("/ssf/v1/streams/poll?stream_id={id}"),
        &app.admin_token,
        Some(json!({"maxEvents": 1001})),
    )
    .await;
    assert_eq!(bounds.status(), 400);
}

#[tokio::test]
async fn two_nodes_push_each_set_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let a = spawn_app_full_on(&url, quick).await;
    let public_url = a.base.clone();
    let b = PreparedNode::new(
        &url,
        move |config| {
            quick(config);
            config.public_url = public_url;
        },
        |store| store,
    )
    .await;
    let b_base = b.base.clone();
    b.serve(std::future::pending());
    // Both nodes make the database's RSA key at the same moment: one key results, used by both.
    let (a_jwks, b_jwks) = (a.url("/ssf/v1/jwks"), format!("{b_base}/ssf/v1/jwks"));
    let (a_keys, b_keys) = tokio::join!(get_json(&a.client, &a_jwks), get_json(&a.client, &b_jwks));
    assert_eq!(a_keys, b_keys);
    assert_eq!(a_keys["keys"].as_array().unwrap().len(), 1);
    // A slow receiver, so that both nodes look at the outbox while a push is in flight.
    let receiver = Receiver::start(vec![], Duration::from_millis(150)).await;
    create_stream(&a, &a.admin_token, push_body(&receiver.url)).await;
    let mut pat_ids = Vec::new();
    for n in 0..5 {
        let pat = a.create_ok(&a.admin_token, AWARE, json!({"name": format!("two nodes {n}"), "expirationDate": null, "userAwareTokenNeverExpires": true})).await;
        a.delete(&a.admin_token, AWARE, pat["id"].as_str().unwrap())
            .await;
        pat_ids.push(pat["id"].as_str().unwrap().to_owned());
    }
    let got = receiver.wait_for(5, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receiver.received().len().max(got.len());
    assert_eq!(got, 5, "each SET pushed once");
    let mut subjects = Vec::new();
    for request in receiver.received() {
        let claims = pushed(&a, &request, &a.bootstrap.id).await;
        subjects.push(claims["sub_id"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(subjects, pat_ids, "in order");
}

/// A key-encryption key written to a file, as `--key-encryption-key-file` reads it.
fn kek_file(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, patd_server::kek::KeyEncryptionKey) {
    let bytes: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let path = dir.join(name);
    std::fs::write(&path, &text).unwrap();
    (
        path,
        patd_server::kek::KeyEncryptionKey::from_base64(&text).unwrap(),
    )
}

#[tokio::test]
async fn the_rsa_key_is_sealed_with_the_kek_and_follows_a_kek_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let (old_path, old) = kek_file(dir.path(), "old.kek");
    let (new_path, new) = kek_file(dir.path(), "new.kek");
    let app = spawn_app_full_on(&url, move |config| {
        config.key_encryption_key = Some(Arc::new(old));
    })
    .await;
    let before: Value = get_json(&app.client, &app.url("/ssf/v1/jwks")).await;
    let stored = app.store.setting("ssf_rsa_key").await.unwrap().unwrap();
    assert!(
        stored.starts_with("sealed:v1:"),
        "never stored in the clear"
    );
    assert!(!stored.contains("PRIVATE KEY"));

    let done = crate::cli::run_json(&[
        "key",
        "rotate-kek",
        "--old",
        old_path.to_str().unwrap(),
        "--new",
        new_path.to_str().unwrap(),
        "--database",
        &url,
    ]);
    assert_eq!(done["sealedWith"], new.id());
    let resealed = app.store.setting("ssf_rsa_key").await.unwrap().unwrap();
    assert!(
        resealed.contains(new.id()) && resealed != stored,
        "sealed with the new KEK"
    );
    let again = PreparedNode::new(
        &url,
        move |config| config.key_encryption_key = Some(Arc::new(new)),
        |store| store,
    )
    .await;
    let again_base = again.base.clone();
    again.serve(std::future::pending());
    let after: Value = get_json(&app.client, &format!("{again_base}/ssf/v1/jwks")).await;
    assert_eq!(after, before, "the same key, opened with the new KEK");
}

#[tokio::test]
async fn with_eddsa_the_sets_are_signed_with_patds_own_keys() {
    let app = spawn_app_with(|config| {
        quick(config);
        config.ssf_signing_alg = patd_server::ssf::SigningAlg::EdDsa;
    })
    .await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    // No authorization_header: the pushes carry no Authorization.
    let created = create_stream(
        &app,
        &app.admin_token,
        json!({"delivery": {"method": PUSH, "endpoint_url": receiver.url}}),
    )
    .await;
    let jwks: Value = get_json(&app.client, &app.url("/ssf/v1/jwks")).await;
    let own: Value = get_json(&app.client, &app.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks, own);
    send(
        &app,
        reqwest::Method::POST,
        "/ssf/v1/streams/verify",
        &app.admin_token,
        Some(json!({"stream_id": created["stream_id"]})),
    )
    .await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("authorization"), "");
    assert_eq!(got[0].header("content-type"), "application/secevent+jwt");
    let header = jsonwebtoken::decode_header(&got[0].body).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == header.kid.as_deref().unwrap())
        .unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.set_audience(&[app.bootstrap.id.as_str()]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(&got[0].body, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(event_type(&claims), VERIFICATION);
}

#[tokio::test]
async fn an_access_token_revoked_at_oauth_revoke_sends_session_revoked_with_its_jti() {
    let app = spawn_app_with(quick).await;
    let receiver = Receiver::start(vec![], Duration::ZERO).await;
    create_stream(&app, &app.admin_token, push_body(&receiver.url)).await;
    let pat = app.create_ok(&app.admin_token, AWARE, json!({"name": "minting", "scope": ["sp:scopes:all"], "expirationDate": null, "userAwareTokenNeverExpires": true})).await;
    let (id, secret) = (pat["id"].as_str().unwrap(), pat["secret"].as_str().unwrap());
    let token = app.exchange(id, secret).await;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let jti = claims["jti"].clone();
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let claims = pushed(&app, &got[0], &app.bootstrap.id).await;
    assert_eq!(event_type(&claims), SESSION_REVOKED);
    assert_eq!(
        claims["sub_id"],
        json!({"format": "opaque", "id": id, "jti": jti})
    );
}

#[tokio::test]
async fn a_stream_moved_to_a_new_endpoint_does_not_take_its_authorization_there() {
    let app = spawn_app_with(quick).await;
    let first = Receiver::start(vec![], Duration::ZERO).await;
    let second = Receiver::start(vec![], Duration::ZERO).await;
    let created = create_stream(&app, &app.admin_token, push_body(&first.url)).await;
    let id = created["stream_id"].as_str().unwrap().to_owned();
    let verify = |state: &'static str| {
        send(
            &app,
            reqwest::Method::POST,
            "/ssf/v1/streams/verify",
            &app.admin_token,
            Some(json!({"stream_id": id, "state": state})),
        )
    };
    assert_eq!(verify("here").await.status(), 204);
    let got = first.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("authorization"), "Bearer receiver-secret");
    // Only the endpoint changes: the stored Authorization, meant for the first receiver, stays
    // behind.
    let moved = send(
        &app,
        reqwest::Method::PATCH,
        STREAMS,
        &app.admin_token,
        Some(json!({"stream_id": id, "delivery": {"endpoint_url": second.url}})),
    )
    .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(verify("there").await.status(), 204);
    let got = second.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("authorization"), "");
    // Moved back with a header of its own, it carries that one.
    let back = send(
        &app,
        reqwest::Method::PATCH,
        STREAMS,
        &app.admin_token,
        Some(
            json!({"stream_id": id, "delivery": {"endpoint_url": first.url,
                     "authorization_header": "Bearer again"}}),
        ),
    )
    .await;
    assert_eq!(back.status(), 200);
    assert_eq!(verify("back").await.status(), 204);
    let got = first.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].header("authorization"), "Bearer again");
}
