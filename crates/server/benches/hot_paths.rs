//! Micro-benchmarks of the hot paths' pieces: secret verification, JWT signing and
//! verification (and the Ed25519 check patd no longer makes, for comparison), filter parsing,
//! a whole exchange through the router, and the cold paths' database reads and writes, one at a
//! time and batched. `cargo bench -p patd-server`.

#![allow(clippy::unwrap_used)] // A benchmark that cannot set up should stop loudly.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use patd_core::expiry::{AdminExpiry, ExpiryRequest};
use patd_core::filter::Filter;
use patd_core::ids::{IdentityId, PatId};
use patd_core::pat::{plan_create, CreateInput};
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
    // What the signature check cost before patd made the signature again instead: aws-lc-rs's
    // Ed25519 verification on a public key parsed once.
    let x = ring.jwks()["keys"][0]["x"].as_str().unwrap();
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    let public =
        aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ED25519, public).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    c.bench_function("ed25519: verify alone (aws-lc-rs, parsed key)", |b| {
        b.iter(|| {
            public
                .verify_sig(black_box(signed.as_bytes()), &signature)
                .unwrap()
        })
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

/// The cold paths' database work on a file of 100,000 PATs: the records of 64 PATs that missed
/// the cache, read one by one and in one batch; and 256 first uses of the day written as one
/// batch (their lastUsed, addresses and `pat.used` events).
fn cold_paths(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cold.db").display());
    let (store, ids) = runtime.block_on(async {
        let store = patd_store::connect(&url).await.unwrap();
        let owner = admin::create_identity(store.as_ref(), "cold owner", "USER", &[])
            .await
            .unwrap();
        let owner = IdentityId::parse(&owner.id).unwrap();
        let mut ids = Vec::new();
        let now = time::OffsetDateTime::now_utc();
        for chunk in 0..10 {
            let pats: Vec<_> = (0..10_000)
                .map(|index| {
                    let input = CreateInput {
                        name: Some(format!("cold {chunk}-{index}")),
                        scope: None,
                        validity_seconds: None,
                        expiry: ExpiryRequest::Admin(AdminExpiry::Default),
                        managed: false,
                    };
                    plan_create(owner.clone(), input, now, &mut rand::rng())
                        .unwrap()
                        .0
                })
                .collect();
            ids.extend(pats.iter().map(|pat| pat.record.id.clone()));
            store.insert_pats(&pats).await.unwrap();
        }
        (store, ids)
    });
    let mut next = 0_usize;
    let mut take = |n: usize| -> Vec<PatId> {
        let picked = (0..n)
            .map(|i| ids[(next + i * 7919) % ids.len()].clone())
            .collect();
        next += 1;
        picked
    };
    c.bench_function("cold: 64 PAT records read one by one", |b| {
        b.iter_batched(
            || take(64),
            |batch| {
                runtime.block_on(async {
                    for id in &batch {
                        black_box(
                            store
                                .pats_for_exchange(std::slice::from_ref(id))
                                .await
                                .unwrap(),
                        );
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("cold: 64 PAT records read in one batch", |b| {
        b.iter_batched(
            || take(64),
            |batch| {
                runtime
                    .block_on(async { black_box(store.pats_for_exchange(&batch).await.unwrap()) })
            },
            BatchSize::SmallInput,
        )
    });
    let mut day = 0_i64;
    c.bench_function("cold: 256 first uses written as one batch", |b| {
        b.iter_batched(
            || {
                // A day later each time, so that every use is due.
                day += 2;
                let at = time::OffsetDateTime::now_utc() + time::Duration::days(day);
                take(256)
                    .into_iter()
                    .map(|id| patd_store::LastUse {
                        events: vec![patd_store::UseEvent {
                            daily: true,
                            new_ip: None,
                            event: patd_core::audit::AuditEvent::new(
                                patd_core::audit::EventType::PatUsed,
                                patd_core::audit::Actor::system("bench"),
                                None,
                                at,
                                &mut rand::rng(),
                            ),
                        }],
                        id,
                        at,
                        not_after: at - time::Duration::days(1),
                        daily: true,
                        new_ips: vec![format!("10.0.{}.{}", day % 250, day % 199)],
                    })
                    .collect::<Vec<_>>()
            },
            |uses| {
                runtime.block_on(async { black_box(store.record_last_used(&uses).await.unwrap()) })
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, hot_paths, exchange_request, cold_paths);
criterion_main!(benches);
