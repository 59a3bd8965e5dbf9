//! `patd-bench`: what `bench/run` needs besides patd itself. `baseline` is the yardstick of the
//! throughput targets (a bare axum handler that reads the same form body as `/oauth/token` and
//! answers a fixed JSON of the same size); `seed` fills a database with PATs shaped like a real
//! tenant's through the store; `mint` exchanges credentials for a pool of access tokens.

use anyhow::{bail, Context};
use axum::routing::post;
use axum::{Form, Json, Router};
use clap::{Parser, Subcommand};
use patd_core::expiry::{AdminExpiry, Expiry, ExpiryRequest};
use patd_core::identity::Identity;
use patd_core::ids::IdentityId;
use patd_core::listing::{ListParams, ListRequest};
use patd_core::name::IdentityName;
use patd_core::pat::{plan_create, CreateInput, NewPat};
use patd_core::rights::{Level, Rights};
use patd_store::PatQuery;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use time::{Duration, OffsetDateTime};

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
    /// Seed PATs spread over owners, shaped like a tenant's (see `shape`); prints the
    /// credentials the benchmark uses, as JSON.
    Seed(SeedPlan),
    /// Exchanges each credential of a file (`id secret` lines) `--per-credential` times at
    /// `POST /oauth/token` and writes the access tokens, one a line.
    Mint {
        #[arg(long)]
        base: String,
        #[arg(long)]
        credentials: PathBuf,
        #[arg(long, default_value_t = 1)]
        per_credential: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Prints the database's plan for each admin list of a file (one query string a line, as
    /// `GET /v3/personal-access-tokens?…` takes it, unencoded): the whole tenant, managed PATs
    /// included.
    Plans {
        #[arg(long)]
        database: String,
        #[arg(long)]
        queries: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Baseline { listen } => baseline(&listen).await,
        Command::Seed(plan) => seed(plan).await,
        Command::Mint {
            base,
            credentials,
            per_credential,
            out,
            concurrency,
        } => mint(&base, &credentials, per_credential, &out, concurrency).await,
        Command::Plans { database, queries } => plans(&database, &queries).await,
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

#[derive(clap::Args)]
struct SeedPlan {
    #[arg(long)]
    database: String,
    #[arg(long)]
    pats: usize,
    #[arg(long)]
    owners: usize,
    /// Writes the credentials of this many PATs, drawn at random from those that can
    /// exchange, one `id secret` a line in a random order, to `--sample-file`.
    #[arg(long, default_value_t = 0, requires = "sample_file")]
    sample: usize,
    #[arg(long)]
    sample_file: Option<PathBuf>,
    /// Adds this many owners with one PAT each (room for the per-owner limit less one) and
    /// writes their credentials, one `id secret` a line, to `--creators-file`.
    #[arg(long, default_value_t = 0, requires = "creators_file")]
    creator_owners: usize,
    #[arg(long)]
    creators_file: Option<PathBuf>,
}

/// The words seeded names are made of, as CI jobs and scripts name their tokens.
const NAME_WORDS: [&str; 16] = [
    "deploy",
    "backup",
    "ci",
    "terraform",
    "grafana",
    "jenkins",
    "nightly",
    "release",
    "sync",
    "audit",
    "reports",
    "migrate",
    "monitor",
    "build",
    "export",
    "import",
];

/// Gives a planned PAT the shape of one in a tenant that has run for a year: created any time
/// in the past 365 days; 30% never used, the rest last used before today (so that its next
/// exchange is its first use of the day); 20% never expiring, the rest expiring 8 to 180 days
/// from now (none has expired, so every one can exchange, and none is due an expiry notice,
/// whose burst would run beside the measured loads); 5% managed.
fn shape(new_pat: &mut NewPat, now: OffsetDateTime, rng: &mut impl Rng) {
    let record = &mut new_pat.record;
    let age_ms = rng.random_range(2 * DAY_MS..365 * DAY_MS);
    record.created = now - Duration::milliseconds(age_ms);
    record.last_used = rng
        .random_bool(0.7)
        .then(|| now - Duration::milliseconds(rng.random_range(DAY_MS + 60_000..=age_ms)));
    if rng.random_bool(0.2) {
        record.expiry = Expiry::Never;
        record.never_expires_acknowledged = true;
    } else {
        record.expiry =
            Expiry::At(now + Duration::milliseconds(rng.random_range(8 * DAY_MS..180 * DAY_MS)));
    }
    record.managed = rng.random_bool(0.05);
}

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn new_identity(
    store: &patd_store::DynStore,
    name: String,
    level: Level,
    now: OffsetDateTime,
) -> anyhow::Result<IdentityId> {
    // The thread's generator is not Send: it is done with before the insert is awaited.
    let (identity, seeded) = {
        let mut rng = rand::rng();
        let identity = Identity {
            id: IdentityId::generate(&mut rng),
            name: IdentityName::parse(&name)?,
            levels: vec![level],
            extra_rights: Rights::NONE,
        };
        let seeded = patd_core::audit::AuditEvent::new(
            patd_core::audit::EventType::IdentityCreated,
            patd_core::audit::Actor::system("bench"),
            None,
            now,
            &mut rng,
        );
        (identity, seeded)
    };
    store.insert_identity(&identity, &seeded).await?;
    Ok(identity.id)
}

/// `count` users named `prefix N`, stored 32 at a time (each is its own transaction): a
/// million-PAT tenant has a hundred thousand owners.
async fn new_identities(
    store: &patd_store::DynStore,
    prefix: &str,
    count: usize,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<IdentityId>> {
    let mut ids = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    for index in 0..count {
        let (store, name) = (store.clone(), format!("{prefix} {index}"));
        pending.spawn(async move { (index, new_identity(&store, name, Level::User, now).await) });
        if pending.len() == 32 || index + 1 == count {
            while let Some(done) = pending.join_next().await {
                let (index, id) = done?;
                ids.push((index, id?));
            }
        }
    }
    // In index order, so that PAT i belongs to owner i mod owners, as before.
    ids.sort_by_key(|(index, _)| *index);
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

fn plain_pat(
    owner: &IdentityId,
    name: String,
    now: OffsetDateTime,
) -> anyhow::Result<(NewPat, String)> {
    let input = CreateInput {
        name: Some(name),
        scope: None,
        validity_seconds: None,
        expiry: ExpiryRequest::Admin(AdminExpiry::Default),
        managed: false,
    };
    let (new_pat, secret) = plan_create(owner.clone(), input, now, &mut rand::rng())?;
    Ok((new_pat, secret.expose().to_owned()))
}

fn credential(new_pat: &NewPat, secret: &str) -> Value {
    json!({"id": new_pat.record.id.as_str(), "secret": secret})
}

async fn seed(plan: SeedPlan) -> anyhow::Result<()> {
    let store: patd_store::DynStore = patd_store::connect(&plan.database)
        .await
        .context("opening the database")?;
    let mut rng = rand::rng();
    let now = OffsetDateTime::now_utc();
    let owners = new_identities(&store, "bench owner", plan.owners.max(1), now).await?;
    // The first PAT of the first owner lists its owner's PATs (a plain, unshaped PAT); the last
    // one exchanges; an administrator lists the whole tenant.
    let admin = new_identity(&store, "bench admin".to_owned(), Level::OrgAdmin, now).await?;
    let (admin_pat, admin_secret) = plain_pat(&admin, "bench admin lists".to_owned(), now)?;
    let admin_credential = credential(&admin_pat, &admin_secret);
    store.insert_pats(&[admin_pat]).await?;
    let mut exchange = None;
    let mut lister = None;
    // One PAT of each of the next owners: creates in the benchmark spread over them, as a real
    // tenant's do.
    let mut creators = Vec::new();
    // Which PATs' credentials to write, chosen up front: `sample` distinct indexes.
    let mut chosen = vec![false; plan.pats];
    for index in rand::seq::index::sample(&mut rng, plan.pats, plan.sample.min(plan.pats)) {
        chosen[index] = true;
    }
    let mut sample = Vec::with_capacity(plan.sample);
    let mut inserts = Inserts {
        store: &store,
        batch: Vec::with_capacity(10_000),
    };
    for index in 0..plan.pats {
        let owner = &owners[index % owners.len()];
        let word = NAME_WORDS[rng.random_range(0..NAME_WORDS.len())];
        let (mut new_pat, secret) = plain_pat(owner, format!("{word}-{index}"), now)?;
        let special = index == 0 || index + 1 == plan.pats;
        if !special {
            shape(&mut new_pat, now, &mut rng);
        }
        if index == 0 {
            lister = Some(credential(&new_pat, &secret));
        }
        if index > 0 && index < owners.len() && creators.len() < 99 {
            new_pat.record.managed = false;
            creators.push(credential(&new_pat, &secret));
        }
        if index + 1 == plan.pats {
            exchange = Some(credential(&new_pat, &secret));
        }
        if chosen[index] {
            sample.push(format!("{} {secret}", new_pat.record.id.as_str()));
        }
        inserts.push(new_pat).await?;
    }
    inserts.flush().await?;
    if let Some(path) = &plan.sample_file {
        sample.shuffle(&mut rng);
        write_lines(path, &sample)?;
    }
    if let Some(path) = &plan.creators_file {
        let mut lines = Vec::with_capacity(plan.creator_owners);
        let creators = new_identities(&store, "bench creator", plan.creator_owners, now).await?;
        for owner in &creators {
            let (new_pat, secret) = plain_pat(owner, "creator credential".to_owned(), now)?;
            lines.push(format!("{} {secret}", new_pat.record.id.as_str()));
            inserts.push(new_pat).await?;
        }
        inserts.flush().await?;
        write_lines(path, &lines)?;
    }
    // A bulk load is when the planner's statistics go stale.
    store.optimize().await?;
    println!(
        "{}",
        json!({"exchange": exchange, "lister": lister, "admin": admin_credential, "creators": creators})
    );
    Ok(())
}

/// New PATs stored in one transaction per 10,000.
struct Inserts<'s> {
    store: &'s patd_store::DynStore,
    batch: Vec<NewPat>,
}

impl Inserts<'_> {
    async fn push(&mut self, new_pat: NewPat) -> anyhow::Result<()> {
        self.batch.push(new_pat);
        if self.batch.len() == self.batch.capacity() {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        self.store.insert_pats(&self.batch).await?;
        self.batch.clear();
        Ok(())
    }
}

fn write_lines(path: &PathBuf, lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

async fn mint(
    base: &str,
    credentials: &PathBuf,
    per_credential: usize,
    out: &PathBuf,
    concurrency: usize,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(credentials)
        .with_context(|| format!("reading {}", credentials.display()))?;
    let mut jobs = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Some((id, secret)) = line.split_once(' ') else {
            bail!("a credentials line is not `id secret`");
        };
        for _ in 0..per_credential {
            jobs.push((id.to_owned(), secret.to_owned()));
        }
    }
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let url = format!("{}/oauth/token", base.trim_end_matches('/'));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (jobs, next, client, url) = (jobs.clone(), next.clone(), client.clone(), url.clone());
        workers.spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, secret)) = jobs.get(index) else {
                    return Ok::<_, anyhow::Error>(tokens);
                };
                let answer: Value = client
                    .post(&url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", id),
                        ("client_secret", secret),
                    ])
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let Some(token) = answer["access_token"].as_str() else {
                    bail!("no access_token in the answer");
                };
                tokens.push(token.to_owned());
            }
        });
    }
    let mut tokens = Vec::with_capacity(jobs.len());
    while let Some(done) = workers.join_next().await {
        tokens.extend(done??);
    }
    write_lines(out, &tokens)?;
    Ok(())
}

async fn plans(database: &str, queries: &PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(queries)
        .with_context(|| format!("reading {}", queries.display()))?;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let pairs: Vec<(&str, &str)> = line
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let request = ListRequest::parse(&ListParams {
            filters: get("filters"),
            sorters: get("sorters"),
            limit: get("limit"),
            offset: get("offset"),
            count: get("count"),
        })
        .map_err(|rule| anyhow::anyhow!("{line}: {rule}"))?;
        let query = PatQuery {
            owner: None,
            include_managed: true,
            request,
        };
        println!("{line}");
        for plan in patd_store::explain_list(database, &query).await? {
            println!("    {plan}");
        }
    }
    Ok(())
}
