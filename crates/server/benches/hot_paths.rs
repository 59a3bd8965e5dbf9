//! Micro-benchmarks of the hot paths' pieces: secret verification, JWT signing and
//! verification, and filter parsing. `cargo bench -p patd-server`.

#![allow(clippy::unwrap_used)] // A benchmark that cannot set up should stop loudly.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use patd_core::filter::Filter;
use patd_core::secret::Secret;
use patd_proto::AccessTokenClaims;
use patd_server::keys::{KeyRing, SigningKey};
use patd_server::{admin, router, AppState, ServerConfig};
use std::net::SocketAddr;
use tower::ServiceExt;

fn claims() -> AccessTokenClaims<'static> {
    let now = 1_800_000_000;
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: Some("2c9180a46faadee4016fb4e018c20639".into()),
        aud: patd_proto::Audience(vec!["http://127.0.0.1:8080".into()]),
        iat: now,
        exp: now + 43_200,
        nbf: None,
        jti: "0b6f6d4e-2f57-4c8e-8d0f-8e3b1f4a9c21".into(),
        client_id: "86f1dc6fe8f54414950454cbb11278fa".into(),
        identity_id: "2c9180a46faadee4016fb4e018c20639".into(),
        user_name: "admin".into(),
        tenant_id: "3b5e7a4e-6a3f-4d55-9a43-5c8b1f0c2d11".into(),
        org: "patd".into(),
        pod: "local".into(),
        internal: false,
        strong_auth: false,
        authorities: vec!["ORG_ADMIN".into()],
        scope: vec!["sp:scopes:all".to_owned()].into(),
        rights: vec![
            "idn:my-personal-access-tokens:read".into(),
            "idn:my-personal-access-tokens:manage".into(),
        ],
    }
}

fn hot_paths(c: &mut Criterion) {
    let secret = Secret::generate(&mut rand::rng());
    let digest = secret.digest();
    let raw = secret.expose().to_owned();
    c.bench_function(
        "secret: parse, checksum and constant-time digest compare",
        |b| {
            b.iter(|| {
                let presented = Secret::parse(black_box(&raw)).unwrap();
                black_box(digest.matches(&presented))
            })
        },
    );

    let issuer = "http://127.0.0.1:8080".to_owned();
    let ring = KeyRing::new(
        SigningKey::generate().unwrap(),
        Vec::new(),
        std::slice::from_ref(&issuer),
        std::slice::from_ref(&issuer),
    );
    let mut claims = claims();
    c.bench_function("jwt: sign (EdDSA)", |b| {
        b.iter(|| ring.mint(black_box(&claims)).unwrap())
    });
    // Issued now, whatever day the bench runs: a token from the future is refused.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims.iat = now;
    claims.exp = i64::MAX / 2;
    let token = ring.mint(&claims).unwrap();
    c.bench_function("jwt: verify (EdDSA, kid, crit, iss, times)", |b| {
        b.iter(|| ring.verify(black_box(&token), now).unwrap())
    });

    let filter = r#"(name sw "ci-" or name in ("deploy", "nightly")) and not managed eq true and lastUsed le 2026-06-25T20:22:28.104Z"#;
    c.bench_function("filter: parse", |b| {
        b.iter(|| Filter::<patd_core::filter::Comparison>::parse(black_box(filter)).unwrap())
    });
}

/// A whole token exchange through the router (extractors, middleware, cache, signing, JSON),
/// without the network: the server's own share of the exchange's cost.
fn exchange_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (app, body) = runtime.block_on(async {
        let store = patd_store::connect(&url).await.unwrap();
        let mut config = ServerConfig::new("http://127.0.0.1:8080");
        config.rate_limit = patd_server::ratelimit::Limit::Off;
        let state = AppState::prepare(store.clone(), config, None)
            .await
            .unwrap();
        let pat = admin::bootstrap(store.as_ref(), 10).await.unwrap().unwrap();
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            pat.id, pat.secret
        );
        (router(state), body)
    });
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    c.bench_function("exchange: one request through the router", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut request = axum::http::Request::post("/oauth/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from(body.clone()))
                    .unwrap();
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let response = app.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                black_box(
                    axum::body::to_bytes(response.into_body(), 1 << 20)
                        .await
                        .unwrap(),
                )
            })
        })
    });
}

criterion_group!(benches, hot_paths, exchange_request);
criterion_main!(benches);
