//! The command line of CLI.md. Every flag also reads its environment variable.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use patd_core::expiry::AdminExpiry;
use patd_server::admin::TokenOptions;
use patd_server::kek::KeyEncryptionKey;
use patd_server::proxies::TrustedProxies;
use patd_server::ratelimit::Limit;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    Serve(Box<ServeArgs>),
    /// Bootstrap an empty database: the identity `admin` (ORG_ADMIN) and its PAT `bootstrap`,
    /// printed once as `bootstrap client_id=… client_secret=…`. Fails on a database that has
    /// identities already.
    Init {
        #[command(flatten)]
        database: DatabaseArg,
        /// How many non-managed PATs one owner may have (for the bootstrap PAT's check).
        #[arg(long, env = "PATD_MAX_TOKENS_PER_OWNER", default_value_t = 10)]
        max_tokens_per_owner: u32,
    },
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
    /// Read the audit trail (works on the database directly).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with PATs over the API, as a client (SAIL_BASE_URL, SAIL_CLIENT_ID, SAIL_CLIENT_SECRET).
    Pat(crate::pat::PatArgs),
    /// Manage personal access tokens (works on the database directly).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print a shell completion script, e.g. `patd completions bash > /etc/bash_completion.d/patd`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `patd man | man -l -`; with --dir, write one
    /// page per command into that directory instead.
    Man {
        /// Write patd.1, patd-serve.1, patd-key-retire.1, … into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// The database: `sqlite://PATH` (the file is created if missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (shared by every node; `postgresql://`
    /// too). Migrations are applied when it is opened. Its value is never shown in help or errors
    /// with the password.
    #[arg(
        long = "database",
        env = "PATD_DATABASE_URL",
        default_value = "sqlite://patd.db",
        hide_env_values = true
    )]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on; port 0 picks a free one (the log line says which).
    #[arg(long, env = "PATD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// The server's public URL, the JWT `iss` (default `http://<listen>`).
    #[arg(long, env = "PATD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The `aud` of the access tokens minted here: the services they are for (repeatable; with
    /// the environment variable, comma-separated). Default: the public URL. Give every node of
    /// a deployment the same list.
    #[arg(
        long = "audience",
        env = "PATD_AUDIENCE",
        value_name = "AUDIENCE",
        value_delimiter = ','
    )]
    pub audiences: Vec<String>,
    /// `N/SECONDS` per client_id and API version, or `off` (which also turns off the failed-exchange
    /// limits that are not given explicitly).
    #[arg(long, env = "PATD_RATE_LIMIT", default_value = "100/10", value_parser = Limit::parse)]
    pub rate_limit: Limit,
    /// Keep the per-client rate limit in this Redis, shared by every node (e.g. redis://127.0.0.1:6379).
    #[arg(long, env = "PATD_RATE_LIMIT_REDIS", hide_env_values = true)]
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
    /// How many non-managed PATs one owner may have; one more is refused with 400.
    #[arg(long, env = "PATD_MAX_TOKENS_PER_OWNER", default_value_t = 10)]
    pub max_tokens_per_owner: u32,
    /// The longest lifetime of a PAT, in days: creates, patches, bulk updates and rotations
    /// that would set an expiry further out (from creation; from now for a rotation), or none,
    /// get 400. Existing PATs are not touched. Default: no bound.
    #[arg(long, env = "PATD_MAX_PAT_LIFETIME", value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub max_pat_lifetime: Option<u32>,
    /// Let webhooks call loopback, private and link-local addresses (for tests and for
    /// receivers inside the network).
    #[arg(long, env = "PATD_WEBHOOK_ALLOW_PRIVATE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub webhook_allow_private: bool,
    /// What signs Shared Signals SETs: RS256 (the transmitter's own RSA key, made once per
    /// database; SailPoint's SDK reads only RSA keys) or EdDSA (patd's access-token keys).
    #[arg(long, env = "PATD_SSF_SIGNING_ALG", value_name = "ALG", default_value = "RS256", value_parser = patd_server::ssf::SigningAlg::parse)]
    pub ssf_signing_alg: patd_server::ssf::SigningAlg,
    /// Mail PATs' owners through this SMTP server: `smtp://host:port` (STARTTLS when offered)
    /// or `smtps://host:port`, with user and password in the URL or in PATD_SMTP_PASSWORD.
    #[arg(
        long,
        env = "PATD_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// The From address of that mail (required with --smtp-url).
    #[arg(long, env = "PATD_MAIL_FROM", value_name = "ADDR")]
    pub mail_from: Option<String>,
    /// Refuse to start on an empty database instead of bootstrapping a new tenant in it
    /// (production units use this; bootstrap once with `patd init`).
    #[arg(long, env = "PATD_NO_BOOTSTRAP", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub no_bootstrap: bool,
    /// A PKCS#8 PEM Ed25519 key to sign with instead of the one kept in the database.
    #[arg(long, env = "PATD_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// The largest request body accepted, in bytes, on every route; a longer one gets 413.
    #[arg(long, env = "PATD_MAX_BODY_SIZE", value_name = "BYTES", default_value = "65536", value_parser = parse_body_size)]
    pub max_body_size: usize,
    /// How long a client may take to send a request's headers, on a new connection or an idle
    /// kept-alive one, before the connection is closed (`10s`, `500ms`, `1m`, or seconds).
    #[arg(long, env = "PATD_HEADER_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive once its headers have, before it is
    /// answered 408 and its connection closed.
    #[arg(long, env = "PATD_BODY_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// The most connections served at once; past it, new ones wait in the listen backlog until
    /// one closes. Default: the open-file limit (raised at start to its hard limit) less 128
    /// kept for the database and files; a larger value is lowered to that.
    #[arg(long, env = "PATD_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// How long one request may take, reading its body included, before it is answered 503.
    #[arg(long, env = "PATD_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// On SIGINT or SIGTERM, how long in-flight requests may take to finish before their
    /// connections are dropped.
    #[arg(long, env = "PATD_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long any one database call may take before the request is answered 500; while the
    /// database is out of reach, calls fail at once.
    #[arg(long, env = "PATD_DATABASE_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub database_timeout: Duration,
    /// While the database is out of reach, how much longer than their minute in the cache PATs
    /// already cached keep exchanging and authenticating.
    #[arg(long, env = "PATD_OUTAGE_GRACE", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub outage_grace: Duration,
    /// The most memory cached list answers may take, in bytes: every distinct query is cached
    /// for 5 seconds, weighed by its size, the least used dropped past this; 0 turns it off.
    #[arg(long, env = "PATD_LIST_CACHE_SIZE", value_name = "BYTES", default_value = "67108864", value_parser = parse_cache_size)]
    pub list_cache_size: u64,
    /// The web page: a signed-in session unused this long is over.
    #[arg(long, env = "PATD_SESSION_IDLE_TIMEOUT", value_name = "DURATION", default_value = "8h", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,
    /// The web page's OpenID Connect provider (its issuer URL); with --oidc-client-id and
    /// --oidc-client-secret, the sign-in page offers it.
    #[arg(long, env = "PATD_OIDC_ISSUER", requires_all = ["oidc_client_id", "oidc_client_secret"])]
    pub oidc_issuer: Option<String>,
    /// patd's client id at the provider.
    #[arg(long, env = "PATD_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// patd's client secret at the provider (better given through the environment).
    #[arg(long, env = "PATD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The ID token claim that names the identity: `email` (matched to the identity's mail
    /// address, then its name; only when `email_verified`) or any other (matched to its name).
    #[arg(long, env = "PATD_OIDC_IDENTITY_CLAIM", default_value = "email")]
    pub oidc_identity_claim: String,
    /// Create an unknown person as a new USER identity on first sign-in.
    #[arg(long, env = "PATD_OIDC_AUTO_CREATE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub oidc_auto_create: bool,
    #[command(flatten)]
    pub kek: KekArgs,
    /// Log lines as `text` (coloured only when stderr is a terminal) or `json` (one object per
    /// line). The level comes from RUST_LOG (default `info`; e.g. `RUST_LOG=patd_server=debug`).
    #[arg(long, env = "PATD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Serve `/metrics` on this address (e.g. 127.0.0.1:9090) instead of the main listener.
    #[arg(long, env = "PATD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// A PEM certificate chain: serve HTTPS with it (needs --tls-key). Both files are read again
    /// on SIGHUP.
    #[arg(
        long,
        env = "PATD_TLS_CERT",
        value_name = "PEM_FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "PATD_TLS_KEY",
        value_name = "PEM_FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Peers trusted to name the client in `Forwarded` or `X-Forwarded-For`: a comma-separated
    /// list of CIDR networks or addresses (e.g. 10.0.0.0/8,127.0.0.1). Requests from any other
    /// peer are taken to come from the peer itself. Rate limits and audit events use that address.
    #[arg(long, env = "PATD_TRUSTED_PROXIES", value_name = "CIDR,...", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    /// Days audit events are kept; older ones are pruned every hour.
    #[arg(long, env = "PATD_AUDIT_RETENTION", value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub audit_retention: u32,
    /// The public keys trusted to sign leaked-secret reports (POST
    /// /patd/v1/secret-scanning/reports), a JSON file of the shape GitHub publishes:
    /// {"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}. Read once at start; a
    /// file that cannot be used stops the start. Without it the route answers 404.
    #[arg(long, env = "PATD_SECRET_SCANNING_KEYS", value_name = "FILE")]
    pub secret_scanning_keys: Option<PathBuf>,
    /// Also write every audit event to stdout as one JSON line, for a SIEM (`stdout`), or not
    /// (`off`).
    #[arg(long, env = "PATD_AUDIT_LOG", value_name = "stdout|off", default_value = "off", value_parser = ["stdout", "off"])]
    pub audit_log: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first: a line each, or JSON with --json.
    List(crate::audit::AuditList),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A duration: `10s`, `500ms`, `1m` (any form `humantime` reads), or a bare number of seconds.
/// Zero is refused: it would time out every request.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("not a duration such as 10s, 500ms or 1m: {err}"))?,
    };
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// A body size in bytes, at least 1.
fn parse_body_size(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 byte".to_owned()),
        Ok(bytes) => Ok(bytes),
        Err(err) => Err(format!("not a number of bytes: {err}")),
    }
}

/// A byte count for a cache; 0 turns the cache off.
fn parse_cache_size(raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse::<u64>()
        .map_err(|err| format!("not a number of bytes: {err}"))
}

/// The key-encryption key that seals the signing keys stored in the database.
#[derive(Debug, Args)]
pub struct KekArgs {
    /// A file holding the key-encryption key: 32 random bytes in base64, made with
    /// `head -c 32 /dev/urandom | base64`. Every signing key stored in the database is sealed
    /// with it (AES-256-GCM); keys stored in the clear are sealed at start. Without it the keys
    /// are stored in the clear.
    #[arg(long, env = "PATD_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// The key-encryption key itself, in base64. Prefer --key-encryption-key-file: a value given
    /// here can be read from the process list.
    #[arg(
        long,
        env = "PATD_KEY_ENCRYPTION_KEY",
        value_name = "BASE64",
        hide_env_values = true,
        conflicts_with = "key_encryption_key_file"
    )]
    pub key_encryption_key: Option<String>,
}

impl KekArgs {
    /// The key-encryption key given, if any.
    pub fn load(&self) -> anyhow::Result<Option<Arc<KeyEncryptionKey>>> {
        let kek = match (&self.key_encryption_key_file, &self.key_encryption_key) {
            (Some(path), _) => read_kek_file(path)?,
            // The value itself is never printed.
            (None, Some(text)) => KeyEncryptionKey::from_base64(text)
                .context("--key-encryption-key (PATD_KEY_ENCRYPTION_KEY)")?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Arc::new(kek)))
    }
}

/// Reads a key-encryption key file: base64, whitespace around it ignored.
pub fn read_kek_file(path: &Path) -> anyhow::Result<KeyEncryptionKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
    KeyEncryptionKey::from_base64(&text).with_context(|| format!("reading {}", path.display()))
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a new Ed25519 signing key; every node signs with it once it sees it, and the old keys
    /// still verify the tokens they signed. With a key-encryption key the new key is sealed;
    /// without one, a database whose keys are sealed refuses it.
    Rotate {
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// List the signing keys: the current one (which signs), the others that still verify, and
    /// the retired ones.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Retire a signing key: it stops verifying on every running node at once (the tokens it
    /// signed get 401) and leaves the JWK set. The current key cannot be retired: rotate first.
    Retire {
        /// The key's id (`kid`), as `patd key list` shows it.
        kid: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Seal every stored signing key with a new key-encryption key, in one transaction; keys
    /// stored in the clear are sealed too. Nothing is written unless every key opens with --old.
    /// Then restart every node with the new key-encryption key.
    RotateKek {
        /// The file of the key-encryption key the keys are sealed with now.
        #[arg(long, env = "PATD_OLD_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
        old: PathBuf,
        /// The file of the key-encryption key to seal them with.
        #[arg(long, env = "PATD_NEW_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
        new: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create an identity and print it as JSON.
    Create(IdentityCreate),
    /// List every identity, by name.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Print a one-time link that signs the identity in to the web page.
    SignInLink {
        /// The identity: its name or id.
        identity: String,
        /// How long the link works (at most 24h).
        #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
        valid: Duration,
        /// The server's public URL, which the link starts with.
        #[arg(long, env = "PATD_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Debug, Args)]
pub struct IdentityCreate {
    /// The identity's name, unique in the tenant (the owner name PATs show).
    #[arg(long)]
    pub name: String,
    /// The user level: USER (the two my-personal-access-tokens rights) or ORG_ADMIN (every right).
    #[arg(long, default_value = "USER")]
    pub level: String,
    /// An extra right, `idn:` or `sp:` form; repeatable.
    #[arg(long = "right")]
    pub rights: Vec<String>,
    /// Where the identity's mail goes (expiry, leak and rotation notices, with --smtp-url).
    #[arg(long)]
    pub email: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArg,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a PAT and print it, with its secret, as JSON.
    Create(TokenCreate),
    /// List PATs, managed ones included: one owner's, or everyone's.
    List {
        /// Only this owner's PATs: an identity id or name.
        #[arg(long)]
        owner: Option<String>,
        /// Print JSON (GetPersonalAccessTokenResponse objects) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    /// The owner's identity id or name.
    #[arg(long)]
    pub owner: String,
    /// The PAT's name, unique among the owner's PATs.
    #[arg(long)]
    pub name: String,
    /// A scope entry; repeatable (default `sp:scopes:all`).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// accessTokenValiditySeconds, 15 to 43200 (default 43200).
    #[arg(long)]
    pub validity: Option<i64>,
    /// When it expires: an RFC 3339 date-time (UTC when it has no offset), a date (`2027-01-31`:
    /// the end of that day, 23:59:59.999 UTC), or `never` (default: 6 calendar months from now).
    #[arg(long)]
    pub expires: Option<String>,
    /// A managed PAT: hidden from lists without the managed right, not counted in the limit.
    #[arg(long)]
    pub managed: bool,
    /// How many non-managed PATs the owner may have; one more is refused.
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

/// Reads an `--expires` value: a date-time by the rule the server applies to every client
/// date-time, or a plain date (`2027-01-31`), which means the end of that day in UTC
/// (`2027-01-31T23:59:59.999Z`, the last millisecond patd stores), so a PAT given a date works
/// all that day, as GitHub's token expiry dates do.
pub fn expires_at(raw: &str) -> anyhow::Result<time::OffsetDateTime> {
    let text = raw.trim();
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() == 10 {
        if let Ok(date) = time::Date::parse(text, &date_format) {
            let end_of_day = time::Time::from_hms_milli(23, 59, 59, 999)
                .map_err(|err| anyhow::anyhow!("--expires '{raw}': {err}"))?;
            return Ok(date.with_time(end_of_day).assume_utc());
        }
    }
    patd_proto::timestamp::parse(text).map_err(|err| {
        anyhow::anyhow!(
            "--expires '{raw}' is not an RFC 3339 date-time, a date (YYYY-MM-DD) or 'never': {err}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_units_and_bare_seconds() {
        let cases = [
            ("10s", Some(Duration::from_secs(10))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1m", Some(Duration::from_secs(60))),
            ("1m 30s", Some(Duration::from_secs(90))),
            ("7", Some(Duration::from_secs(7))),
            (" 2s ", Some(Duration::from_secs(2))),
            ("0", None),
            ("0s", None),
            ("ten", None),
            ("-1", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_duration(raw).ok(), want, "{raw:?}");
        }
    }

    #[test]
    fn a_plain_expiry_date_is_the_end_of_that_day_in_utc() {
        let at = expires_at("2027-01-31").unwrap();
        assert_eq!(
            patd_proto::timestamp::format(at),
            "2027-01-31T23:59:59.999Z"
        );
        assert_eq!(
            patd_proto::timestamp::format(expires_at("2027-01-31T08:00:00+02:00").unwrap()),
            "2027-01-31T06:00:00.000Z"
        );
        for bad in ["2027-02-30", "2027-1-31", "31/01/2027", "tomorrow"] {
            assert!(expires_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_flag_and_command_says_what_it_is_for() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let helped = arg
                    .get_help()
                    .is_some_and(|help| !help.to_string().trim().is_empty());
                if !helped {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "patd",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help text: {missing:?}");
        let database = <Cli as clap::CommandFactory>::command()
            .find_subcommand("serve")
            .and_then(|serve| {
                serve
                    .get_arguments()
                    .find(|arg| arg.get_id() == "database")
                    .and_then(|arg| arg.get_help().map(ToString::to_string))
            })
            .unwrap();
        assert!(database.contains("sqlite://PATH") && database.contains("postgres://"));
    }

    #[test]
    fn body_sizes_are_positive_byte_counts() {
        assert_eq!(parse_body_size("1000"), Ok(1000));
        assert!(parse_body_size("0").is_err());
        assert!(parse_body_size("64KiB").is_err());
    }

    #[test]
    fn serve_defaults_are_the_server_configs() {
        let cli = Cli::try_parse_from(["patd", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let config = patd_server::ServerConfig::new("http://x");
        assert_eq!(serve.max_body_size, config.max_body_size);
        assert_eq!(serve.header_read_timeout, config.header_read_timeout);
        assert_eq!(serve.request_timeout, config.request_timeout);
        assert_eq!(serve.body_read_timeout, config.body_read_timeout);
        assert_eq!(serve.shutdown_timeout, config.shutdown_timeout);
        assert_eq!(serve.database_timeout, config.database_timeout);
        assert_eq!(serve.outage_grace, config.outage_grace);
        assert_eq!(serve.list_cache_size, config.list_cache_bytes);
    }
}
