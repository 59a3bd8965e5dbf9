//! The command line of CLI.md. Every flag also reads its environment variable.

use clap::{Args, Parser, Subcommand};
use patd_core::expiry::AdminExpiry;
use patd_server::admin::TokenOptions;
use patd_server::ratelimit::Limit;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "patd",
    version,
    about = "A personal-access-token service speaking SailPoint's PAT API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage identities (works on the database directly).
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Manage signing keys (works on the database directly).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Work with PATs over the API, as a client (SAIL_BASE_URL, SAIL_CLIENT_ID, SAIL_CLIENT_SECRET).
    Pat(crate::pat::PatArgs),
    /// Manage personal access tokens (works on the database directly).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// `sqlite://PATH` (created if missing).
    #[arg(
        long = "database",
        env = "PATD_DATABASE_URL",
        default_value = "sqlite://patd.db"
    )]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "PATD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// The server's public URL, the JWT `iss` (default `http://<listen>`).
    #[arg(long, env = "PATD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `N/SECONDS` per client_id and API version, or `off` (which also turns off the failed-exchange
    /// limits that are not given explicitly).
    #[arg(long, env = "PATD_RATE_LIMIT", default_value = "100/10", value_parser = Limit::parse)]
    pub rate_limit: Limit,
    /// Keep the per-client rate limit in this Redis, shared by every node (e.g. redis://127.0.0.1:6379).
    #[arg(long, env = "PATD_RATE_LIMIT_REDIS")]
    pub rate_limit_redis: Option<String>,
    /// Failed token exchanges per client id and client IP, `N/SECONDS` or `off`; past it that
    /// id's failures from that IP get 429 (a correct secret is never refused). Default 10/60, or
    /// off when --rate-limit is off.
    #[arg(long, env = "PATD_EXCHANGE_FAILURE_LIMIT", value_parser = Limit::parse)]
    pub exchange_failure_limit: Option<Limit>,
    /// Failed token exchanges per client IP with client ids that name no PAT, `N/SECONDS` or
    /// `off`; past it they get 429. Default 100/60, or off when --rate-limit is off.
    #[arg(long, env = "PATD_UNKNOWN_CLIENT_FAILURE_LIMIT", value_parser = Limit::parse)]
    pub unknown_client_failure_limit: Option<Limit>,
    #[arg(long, env = "PATD_MAX_TOKENS_PER_OWNER", default_value_t = 10)]
    pub max_tokens_per_owner: u32,
    /// A PKCS#8 PEM Ed25519 key to sign with instead of the one kept in the database.
    #[arg(long, env = "PATD_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a new Ed25519 signing key; every node signs with it once it sees it, and the old keys
    /// still verify the tokens they signed.
    Rotate {
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create an identity and print it as JSON.
    Create(IdentityCreate),
}

#[derive(Debug, Args)]
pub struct IdentityCreate {
    #[arg(long)]
    pub name: String,
    /// USER or ORG_ADMIN.
    #[arg(long, default_value = "USER")]
    pub level: String,
    /// An extra right, `idn:` or `sp:` form; repeatable.
    #[arg(long = "right")]
    pub rights: Vec<String>,
    #[command(flatten)]
    pub database: DatabaseArg,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a PAT and print it, with its secret, as JSON.
    Create(TokenCreate),
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    /// The owner's identity id or name.
    #[arg(long)]
    pub owner: String,
    #[arg(long)]
    pub name: String,
    /// A scope entry; repeatable (default `sp:scopes:all`).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// accessTokenValiditySeconds, 15 to 43200 (default 43200).
    #[arg(long)]
    pub validity: Option<i64>,
    /// An RFC 3339 date-time (UTC when it has no offset), or `never` (default: 6 calendar months
    /// from now).
    #[arg(long)]
    pub expires: Option<String>,
    /// A managed PAT: hidden from lists without the managed right, not counted in the limit.
    #[arg(long)]
    pub managed: bool,
    #[arg(long, env = "PATD_MAX_TOKENS_PER_OWNER", default_value_t = 10)]
    pub max_tokens_per_owner: u32,
    #[command(flatten)]
    pub database: DatabaseArg,
}

impl TokenCreate {
    pub fn options(&self) -> anyhow::Result<TokenOptions> {
        let expires = match self.expires.as_deref() {
            None => AdminExpiry::Default,
            Some("never") => AdminExpiry::Never,
            Some(raw) => AdminExpiry::At(expires_at(raw)?),
        };
        Ok(TokenOptions {
            name: self.name.clone(),
            scope: self.scopes.clone(),
            validity_seconds: self.validity,
            expires,
            managed: self.managed,
            limit: self.max_tokens_per_owner,
        })
    }
}

/// Reads an `--expires` date-time by the rule the server applies to every client date-time.
pub fn expires_at(raw: &str) -> anyhow::Result<time::OffsetDateTime> {
    patd_proto::timestamp::parse(raw).map_err(|err| {
        anyhow::anyhow!("--expires '{raw}' is not an RFC 3339 date-time or 'never': {err}")
    })
}
