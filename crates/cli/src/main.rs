//! The `patd` binary: parses the command line (CLI.md) and wires the server and the
//! administration commands together. Holds no rule of its own.

/// The command line, parsed and checked, before anything live is built.
mod args;
/// `patd audit list`.
mod audit;
/// The administration commands, completions and the manual page.
mod commands;
/// What the commands print, and how a failure reads.
mod output;
/// `patd pat …`: client commands on `patd-client`.
mod pat;

use anyhow::Context;
use args::{Command, ServeArgs};
use clap::Parser;
use patd_server::{admin, AppState, ServerConfig};
use std::process::ExitCode;
use tokio::net::TcpListener;

// mimalloc: the exchange path allocates a few dozen small buffers per request, and glibc's
// malloc spent about a tenth of the server's CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`patd pat list | head`): what it wanted it has.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("patd: {}", output::error_line(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pat(pat_args) => pat::run(pat_args).await,
        Command::Audit {
            command: args::AuditCommand::List(list),
        } => audit::run(list).await,
        Command::Key { command } => commands::key(command).await,
        Command::Serve(serve_args) => serve(*serve_args).await,
        Command::Init {
            database,
            max_tokens_per_owner,
        } => {
            let store = patd_store::connect(&database.database).await?;
            let Some(created) = admin::bootstrap(store.as_ref(), max_tokens_per_owner).await?
            else {
                anyhow::bail!(
                    "{} already has identities: it was bootstrapped before",
                    patd_store::redact_url(&database.database)
                );
            };
            println!(
                "bootstrap client_id={} client_secret={}",
                created.id, created.secret
            );
            Ok(())
        }
        Command::Identity { command } => commands::identity(command).await,
        Command::Token { command } => commands::token(command).await,
        Command::Completions { shell } => commands::completions(shell),
        Command::Man { dir } => commands::man(dir.as_deref()),
    }
}

/// Descriptors kept back from `--max-connections` for the database pool, SQLite's files, the
/// metrics listener, logs and the listen socket itself.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft open-file limit to the hard one (systemd's default soft limit is 1,024) and
/// gives the connection cap: the one asked for, or the limit less `RESERVED_DESCRIPTORS`, so that
/// open connections can never take the descriptors the rest needs.
fn connection_cap(asked: Option<u64>) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "the open-file limit could not be read or raised");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let most = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    let cap = match asked {
        Some(asked) if asked > most => {
            tracing::warn!(
                asked,
                open_file_limit = limit,
                "--max-connections is past the open-file limit less {RESERVED_DESCRIPTORS}: \
                 serving at most {most}"
            );
            most
        }
        Some(asked) => asked,
        None => most,
    };
    tracing::info!(
        open_file_limit = limit,
        max_connections = cap,
        "connection limit"
    );
    usize::try_from(cap).unwrap_or(usize::MAX)
}

async fn serve(serve_args: ServeArgs) -> anyhow::Result<()> {
    // Kept to the end: dropping it writes out the log lines still queued.
    let _log_guard = init_logging(serve_args.log_format);
    let signing_key_pem = match &serve_args.signing_key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the signing key {}", path.display()))?,
        ),
        None => None,
    };
    let key_encryption_key = serve_args.kek.load()?;
    let secret_scanning_keys = match &serve_args.secret_scanning_keys {
        Some(path) => Some(std::sync::Arc::new(
            patd_server::scanning_keys::ScanningKeys::load(path)?,
        )),
        None => None,
    };
    let tls = match (&serve_args.tls_cert, &serve_args.tls_key) {
        (Some(cert), Some(key)) => Some(patd_server::tls::TlsFiles::load(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(&serve_args.listen)
        .await
        .with_context(|| format!("listening on {}", serve_args.listen))?;
    let local_addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = serve_args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local_addr}"));
    let metrics_listener = match &serve_args.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("listening for metrics on {address}"))?,
        ),
        None => None,
    };
    // A production unit never starts a new tenant by accident (an empty or wrong database): with
    // --no-bootstrap a missing SQLite file is not created either.
    let opened = if serve_args.no_bootstrap {
        patd_store::connect_existing(&serve_args.database.database).await
    } else {
        patd_store::connect(&serve_args.database.database).await
    };
    let store = match opened {
        Err(patd_store::StoreError::NoSuchFile(path)) => anyhow::bail!(
            "the database file {path} does not exist and --no-bootstrap is set: restore it, \
             bootstrap a new tenant once with `patd init`, or point --database at the tenant's \
             database"
        ),
        opened => opened.with_context(|| {
            format!(
                "opening {}",
                patd_store::redact_url(&serve_args.database.database)
            )
        })?,
    };
    if serve_args.no_bootstrap && store.has_no_identities().await? {
        anyhow::bail!(
            "{} is empty and --no-bootstrap is set: bootstrap it once with `patd init`, or point \
             --database at the tenant's database",
            patd_store::redact_url(&serve_args.database.database)
        );
    }
    let mut config = ServerConfig::new(public_url.trim_end_matches('/'));
    config.max_tokens_per_owner = serve_args.max_tokens_per_owner;
    config.lifetime_policy = patd_core::expiry::LifetimePolicy(serve_args.max_pat_lifetime);
    config.webhook_allow_private = serve_args.webhook_allow_private;
    config.ssf_signing_alg = serve_args.ssf_signing_alg;
    config.session_policy = time::Duration::try_from(serve_args.session_idle_timeout)
        .map_err(|_| patd_core::Rule::SessionIdleTimeout)
        .and_then(patd_core::web::SessionPolicy::with_idle)
        .map_err(|err| anyhow::anyhow!("--session-idle-timeout: {err}"))?;
    config.oidc = match (
        &serve_args.oidc_issuer,
        &serve_args.oidc_client_id,
        &serve_args.oidc_client_secret,
    ) {
        (Some(issuer), Some(client_id), Some(client_secret)) => Some(patd_server::OidcConfig {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            identity_claim: serve_args.oidc_identity_claim.clone(),
            auto_create: serve_args.oidc_auto_create,
        }),
        _ => None,
    };
    config.audiences = serve_args
        .audiences
        .iter()
        .map(|aud| aud.trim().to_owned())
        .filter(|aud| !aud.is_empty())
        .collect();
    config.mail = match (&serve_args.smtp_url, &serve_args.mail_from) {
        (Some(url), Some(from)) => Some(patd_server::state::MailConfig {
            smtp_url: url.clone(),
            password: std::env::var("PATD_SMTP_PASSWORD").ok(),
            from: from.clone(),
        }),
        (Some(_), None) => {
            anyhow::bail!("--smtp-url needs --mail-from, the address mail is sent from")
        }
        (None, Some(_)) => {
            anyhow::bail!("--mail-from needs --smtp-url, the server mail is sent through")
        }
        (None, None) => None,
    };
    config.rate_limit = serve_args.rate_limit;
    // Left unset, they are resolved against the request limit by `FailureLimits::resolve`.
    config.exchange_failure_limit = serve_args.exchange_failure_limit;
    config.unknown_client_failure_limit = serve_args.unknown_client_failure_limit;
    config.rate_limit_redis = serve_args.rate_limit_redis.clone();
    config.max_body_size = serve_args.max_body_size;
    config.header_read_timeout = serve_args.header_read_timeout;
    config.request_timeout = serve_args.request_timeout;
    config.body_read_timeout = serve_args.body_read_timeout;
    config.max_connections = connection_cap(serve_args.max_connections);
    config.shutdown_timeout = serve_args.shutdown_timeout;
    config.database_timeout = serve_args.database_timeout;
    config.outage_grace = serve_args.outage_grace;
    config.list_cache_bytes = serve_args.list_cache_size;
    config.trusted_proxies = serve_args.trusted_proxies.clone();
    config.metrics_listen = serve_args.metrics_listen.clone();
    config.tls = tls.clone();
    if let Some(keys) = &secret_scanning_keys {
        tracing::info!(
            keys = keys.len(),
            "leaked-secret reports accepted from the keys of --secret-scanning-keys"
        );
    }
    config.secret_scanning_keys = secret_scanning_keys;
    config.audit_retention =
        std::time::Duration::from_secs(u64::from(serve_args.audit_retention) * 24 * 3600);
    patd_server::audit::log_to_stdout(serve_args.audit_log == "stdout");
    let serve_options = config.serve_options();
    config.key_encryption_key = key_encryption_key;
    let unsealed = config.key_encryption_key.is_none();
    let state = AppState::prepare(store.clone(), config, signing_key_pem.as_deref()).await?;
    if unsealed {
        tracing::warn!(
            "no key-encryption key (--key-encryption-key-file): the signing keys are stored in \
             the database in the clear, so a copy of the database can mint tokens"
        );
    }
    let bootstrapped = if serve_args.no_bootstrap {
        None
    } else {
        admin::bootstrap(store.as_ref(), serve_args.max_tokens_per_owner).await?
    };
    if let Some(created) = bootstrapped {
        // Printed once, on stdout, so a script can capture it; it is never logged.
        println!(
            "bootstrap client_id={} client_secret={}",
            created.id, created.secret
        );
    }
    let router = patd_server::router(state.clone());
    let stopping = stop_on_signal();
    if let Some(tls) = tls {
        reload_tls_on_hangup(tls);
    }
    if let Some(metrics_listener) = metrics_listener {
        let address = metrics_listener.local_addr()?;
        let metrics = patd_server::metrics_router(state.clone());
        let (options, stop) = (serve_options.clone(), stopping.clone());
        tracing::info!(address = %address, "metrics on http://{address}/metrics");
        tokio::spawn(async move {
            let options = patd_server::ServeOptions {
                tls: None,
                ..options
            };
            if let Err(err) =
                patd_server::serve(metrics_listener, metrics, options, stopped(stop)).await
            {
                tracing::error!(error = %err, "the metrics listener failed");
            }
        });
    }
    tracing::info!(address = %local_addr, public_url, "patd listening on {scheme}://{local_addr}");
    patd_server::serve(listener, router, serve_options, stopped(stopping)).await?;
    // No request is left to queue a write: store the ones still queued before exiting.
    let flush_deadline = tokio::time::Instant::now() + serve_args.shutdown_timeout;
    if !state.last_used.settled(flush_deadline).await {
        tracing::warn!("some lastUsed writes were not stored before shutdown");
    }
    if tokio::time::timeout_at(flush_deadline, state.auth_failures.flush(&state.store))
        .await
        .is_err()
    {
        tracing::warn!("some failed exchanges were not audited before shutdown");
    }
    tracing::info!("patd stopped");
    Ok(())
}

/// Logs to stderr through a background writer, so a slow terminal or pipe never holds up a
/// request; colour only when stderr is a terminal.
fn init_logging(format: args::LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        args::LogFormat::Text => builder.init(),
        args::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    guard
}

/// Reads the TLS files again on each SIGHUP.
fn reload_tls_on_hangup(tls: std::sync::Arc<patd_server::tls::TlsFiles>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the TLS files are read only at start");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(err) => tracing::error!(
                    error = format!("{err:#}"),
                    "SIGHUP: TLS files not reloaded; keeping the ones in use"
                ),
            }
        }
    });
    #[cfg(not(unix))]
    drop(tls);
}

/// Flips to `true` once SIGINT or SIGTERM arrives; every listener stops on it.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = sender.send(true);
    });
    receiver
}

async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
