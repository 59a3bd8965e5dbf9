//! `patd-bench`: what `bench/run` needs besides patd itself. `baseline` is the yardstick of the
//! throughput targets (a bare axum handler that reads the same form body as `/oauth/token` and
//! answers a fixed JSON of the same size); `seed` fills a database with PATs through the store.

use anyhow::Context;
use axum::routing::post;
use axum::{Form, Json, Router};
use clap::{Parser, Subcommand};
use patd_core::expiry::{AdminExpiry, ExpiryRequest};
use patd_core::identity::Identity;
use patd_core::ids::IdentityId;
use patd_core::name::IdentityName;
use patd_core::pat::{plan_create, CreateInput, NewPat};
use patd_core::rights::{Level, Rights};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use time::OffsetDateTime;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the baseline handler at POST /oauth/token.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:18900")]
        listen: String,
    },
    /// Seed PATs spread over owners; prints the credentials the benchmark uses, as JSON.
    Seed {
        #[arg(long)]
        database: String,
        #[arg(long)]
        pats: usize,
        #[arg(long)]
        owners: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Baseline { listen } => baseline(&listen).await,
        Command::Seed {
            database,
            pats,
            owners,
        } => seed(&database, pats, owners).await,
    }
}

/// A token response of the same shape and size as patd's, built once.
fn fixed_body() -> &'static Value {
    static BODY: OnceLock<Value> = OnceLock::new();
    BODY.get_or_init(|| {
        json!({
            "access_token": "x".repeat(860), "token_type": "bearer", "expires_in": 43200,
            "scope": "sp:scopes:all", "tenant_id": "3b5e7a4e-6a3f-4d55-9a43-5c8b1f0c2d11",
            "pod": "local", "org": "patd", "identity_id": "86f1dc6fe8f54414950454cbb11278fa",
            "user_name": "admin", "internal": false, "strong_auth": false,
            "strong_auth_supported": false, "enabled": true,
            "jti": "0b6f6d4e-2f57-4c8e-8d0f-8e3b1f4a9c21"
        })
    })
}

async fn baseline(listen: &str) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/oauth/token",
        post(|Form(form): Form<HashMap<String, String>>| async move {
            // Touch the form as the real handler does, so the work is comparable.
            let _ = (
                form.get("grant_type"),
                form.get("client_id"),
                form.get("client_secret"),
            );
            Json(fixed_body().clone())
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn seed(database: &str, n_pats: usize, n_owners: usize) -> anyhow::Result<()> {
    let store = patd_store::connect(database)
        .await
        .context("opening the database")?;
    let mut rng = rand::rng();
    let now = OffsetDateTime::now_utc();
    let mut owners = Vec::with_capacity(n_owners);
    for index in 0..n_owners.max(1) {
        let identity = Identity {
            id: IdentityId::generate(&mut rng),
            name: IdentityName::parse(&format!("bench owner {index}"))?,
            levels: vec![Level::User],
            extra_rights: Rights::NONE,
        };
        let seeded = patd_core::audit::AuditEvent::new(
            patd_core::audit::EventType::IdentityCreated,
            patd_core::audit::Actor::system("bench"),
            None,
            now,
            &mut rng,
        );
        store.insert_identity(&identity, &seeded).await?;
        owners.push(identity.id);
    }
    let mut exchange = None;
    let mut lister = None;
    // One PAT of each of the next owners: creates in the benchmark spread over them, as a real
    // tenant's do.
    let mut creators = Vec::new();
    let mut batch: Vec<NewPat> = Vec::with_capacity(10_000);
    for index in 0..n_pats {
        let owner = &owners[index % owners.len()];
        let input = CreateInput {
            name: Some(format!("bench pat {index}")),
            scope: None,
            validity_seconds: None,
            expiry: ExpiryRequest::Admin(AdminExpiry::Default),
            managed: false,
        };
        let (new_pat, secret) = plan_create(owner.clone(), input, now, &mut rng)?;
        // The first PAT of the first owner lists its owner's PATs; the last one exchanges.
        if index == 0 {
            lister = Some(json!({"id": new_pat.record.id.as_str(), "secret": secret.expose()}));
        }
        if index > 0 && index < owners.len() && creators.len() < 99 {
            creators.push(json!({"id": new_pat.record.id.as_str(), "secret": secret.expose()}));
        }
        if index + 1 == n_pats {
            exchange = Some(json!({"id": new_pat.record.id.as_str(), "secret": secret.expose()}));
        }
        batch.push(new_pat);
        if batch.len() == batch.capacity() {
            store.insert_pats(&batch).await?;
            batch.clear();
        }
    }
    store.insert_pats(&batch).await?;
    println!(
        "{}",
        json!({"exchange": exchange, "lister": lister, "creators": creators})
    );
    Ok(())
}
