//! `patd pat …`: the client-side commands, built on `patd-client`, configured like the SailPoint
//! SDKs and CLI (`SAIL_BASE_URL`, `SAIL_CLIENT_ID`, `SAIL_CLIENT_SECRET`).

use crate::args::expires_at;
use crate::commands::pat_table;
use crate::output;
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use patd_client::{
    ApiVersion, Client, CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse,
    GetPersonalAccessTokenResponse, JsonPatchOperation, ListOptions,
    RotatePersonalAccessTokenRequest,
};
use patd_core::expiry::{add_months, CLASSIC_MONTHS};
use patd_proto::timestamp;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct PatArgs {
    /// The tenant or patd base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "SAIL_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// A PAT id to authenticate with.
    #[arg(long, env = "SAIL_CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    /// The PAT's secret.
    #[arg(
        long,
        env = "SAIL_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// API version: v3, beta, v2024, v2025 or v1.
    #[arg(long, default_value = "v2025", global = true, value_parser = parse_api)]
    pub api: ApiVersion,
    /// How many times a 429 is waited out before giving up.
    #[arg(long, env = "PATD_MAX_RETRIES", default_value_t = 3, global = true)]
    pub max_retries: u32,
    /// Print JSON for scripts instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: PatCommand,
}

/// A `--grace`: a duration (`90s`, `10m`, `24h`, or seconds), whole seconds, at most a day.
fn parse_grace(raw: &str) -> Result<std::time::Duration, String> {
    let trimmed = raw.trim();
    let duration = match trimmed.parse::<u64>() {
        Ok(seconds) => std::time::Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(trimmed).map_err(|err| err.to_string())?,
    };
    if duration.subsec_nanos() != 0 || duration.as_secs() > 86_400 {
        return Err("must be whole seconds, at most 24h".to_owned());
    }
    Ok(duration)
}

/// A `--limit`: a whole number, at least 1.
fn parse_limit(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(limit) => Ok(limit),
        Err(_) => Err("not a whole number".to_owned()),
    }
}

fn parse_api(raw: &str) -> Result<ApiVersion, String> {
    ApiVersion::parse(raw)
        .ok_or_else(|| format!("'{raw}' is not one of v3, beta, v2024, v2025, v1"))
}

#[derive(Debug, Subcommand)]
pub enum PatCommand {
    /// Create a PAT; its secret is printed once.
    Create {
        /// The PAT's name, unique among the caller's PATs.
        #[arg(long)]
        name: String,
        /// A scope entry; repeatable (default sp:scopes:all).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// accessTokenValiditySeconds, 15 to 43200.
        #[arg(long)]
        validity: Option<i64>,
        /// When it expires: an RFC 3339 date-time (UTC when it has no offset), a date
        /// (`2027-01-31`: the end of that day, 23:59:59.999 UTC), or `never` (v2025 and v1 only);
        /// default 6 months from now.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List PATs: every page, 250 at a time, unless --limit asks for fewer.
    List {
        /// `me`, an identity id, or `all` for the whole tenant.
        #[arg(long, default_value = "me")]
        owner: String,
        /// A SailPoint filter, e.g. `name sw "ci" and lastUsed isnull`.
        #[arg(long)]
        filters: Option<String>,
        /// Sort by `name`, `created`, `lastUsed` or `expirationDate`, comma-separated, `-` for
        /// descending (default `created`).
        #[arg(long)]
        sorters: Option<String>,
        /// List at most this many PATs (default: all of them).
        #[arg(long, value_parser = parse_limit)]
        limit: Option<u64>,
        /// Skip this many PATs first.
        #[arg(long)]
        offset: Option<u64>,
    },
    /// Change a PAT's name, scope or expiry, or apply raw JSON Patch operations.
    Patch {
        /// The PAT's id.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// Replaces the whole scope; repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A new expiry: an RFC 3339 date-time (UTC when it has no offset), a date (the end of
        /// that day, UTC), or `never` (v2025 and v1 only).
        #[arg(long)]
        expires: Option<String>,
        /// A raw RFC 6902 operation as JSON; repeatable.
        #[arg(long = "op")]
        operations: Vec<String>,
    },
    /// Delete a PAT; its access tokens stop working at once.
    Delete {
        /// The PAT's id.
        id: String,
    },
    /// Give a PAT a new secret, printed once; the old one keeps exchanging for --grace.
    Rotate {
        /// The PAT's id, or `self` for the PAT the command authenticates with (its scope must
        /// hold patd:self-rotate).
        id: String,
        /// How long the old secret keeps working (`0`, `10m`, `24h`; at most 24h).
        #[arg(long, default_value = "0s", value_parser = parse_grace)]
        grace: std::time::Duration,
        /// A new expiry: an RFC 3339 date-time (UTC when it has no offset) or a date (the end
        /// of that day, UTC); default: the PAT keeps its own.
        #[arg(long)]
        expires: Option<String>,
        /// End every access token minted from the PAT before now.
        #[arg(long)]
        revoke_issued_tokens: bool,
    },
    /// Change the expiry of up to 25 PATs at once, all or nothing.
    BulkUpdate {
        /// A PAT id; repeatable.
        #[arg(long = "id", required = true)]
        ids: Vec<String>,
        /// The new expiry: an RFC 3339 date-time (UTC when it has no offset), a date (the end of
        /// that day, UTC), or `never`.
        #[arg(long)]
        expires: String,
    },
}

pub async fn run(args: PatArgs) -> anyhow::Result<()> {
    let client = client(&args)?;
    match args.command {
        PatCommand::Create {
            name,
            scopes,
            validity,
            expires,
        } => {
            let (expiration_date, never) = match expiry(expires.as_deref())? {
                // Like `patd token create`: six calendar months unless told otherwise, which the
                // never-expires-aware versions need spelled out.
                None => (
                    Some(add_months(time::OffsetDateTime::now_utc(), CLASSIC_MONTHS)),
                    None,
                ),
                Some(Expiry::Never) => {
                    require_aware(args.api)?;
                    (None, Some(true))
                }
                Some(Expiry::At(at)) => (Some(at), None),
            };
            let request = CreatePersonalAccessTokenRequest {
                name: Some(name),
                scope: (!scopes.is_empty()).then_some(scopes),
                access_token_validity_seconds: validity,
                expiration_date,
                user_aware_token_never_expires: never,
            };
            let created = client.create(args.api, &request).await?;
            if args.json {
                output::json_pretty(&created)?;
            } else {
                print_created(&created)?;
            }
            eprintln!("Copy the secret now: it is shown this once and cannot be shown again.");
        }
        PatCommand::List {
            owner,
            filters,
            sorters,
            limit,
            offset,
        } => {
            let options = ListOptions {
                owner_id: (owner != "all").then_some(owner),
                filters,
                sorters,
                limit: None,
                offset,
                count: false,
            };
            let pats = list_all(&client, args.api, options, limit).await?;
            if args.json {
                output::json_pretty(&pats)?;
            } else {
                output::line(&pat_table(&pats))?;
            }
        }
        PatCommand::Patch {
            id,
            name,
            scopes,
            expires,
            operations,
        } => {
            let mut ops = Vec::new();
            if let Some(name) = name {
                ops.push(op("replace", "/name", Some(Value::String(name))));
            }
            if !scopes.is_empty() {
                ops.push(op("replace", "/scope", Some(Value::from(scopes))));
            }
            match expiry(expires.as_deref())? {
                None => {}
                Some(Expiry::Never) => {
                    require_aware(args.api)?;
                    ops.push(op("replace", "/expirationDate", Some(Value::Null)));
                    ops.push(op(
                        "replace",
                        "/userAwareTokenNeverExpires",
                        Some(Value::Bool(true)),
                    ));
                }
                Some(Expiry::At(at)) => ops.push(op(
                    "replace",
                    "/expirationDate",
                    Some(Value::String(timestamp::format(at))),
                )),
            }
            for raw in operations {
                ops.push(
                    serde_json::from_str(&raw)
                        .with_context(|| format!("--op '{raw}' is not a JSON Patch operation"))?,
                );
            }
            if ops.is_empty() {
                return Err(anyhow!(
                    "nothing to change: give --name, --scope, --expires or --op"
                ));
            }
            let patched = client.patch(args.api, &id, &ops).await?;
            if args.json {
                output::json_pretty(&patched)?;
            } else {
                output::line(&pat_table(std::slice::from_ref(&patched)))?;
            }
        }
        PatCommand::Rotate {
            id,
            grace,
            expires,
            revoke_issued_tokens,
        } => {
            let expiration_date = match expiry(expires.as_deref())? {
                None => None,
                Some(Expiry::At(at)) => Some(at),
                Some(Expiry::Never) => {
                    return Err(anyhow!(
                        "--expires never: a rotation keeps the PAT's expiry unless given a date"
                    ))
                }
            };
            let request = RotatePersonalAccessTokenRequest {
                grace_period_seconds: Some(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)),
                expiration_date,
                revoke_issued_tokens: revoke_issued_tokens.then_some(true),
            };
            let rotated = if id == "self" {
                client.rotate_self(&request).await?
            } else {
                client.rotate(&id, &request).await?
            };
            if args.json {
                output::json_pretty(&rotated)?;
            } else {
                print_created(&rotated)?;
            }
            eprintln!("Copy the new secret now: it is shown this once and cannot be shown again.");
        }
        PatCommand::Delete { id } => {
            client.delete(args.api, &id).await?;
            if args.json {
                output::json(&serde_json::json!({"deleted": id}))?;
            } else {
                output::line(&format!("deleted {id}"))?;
            }
        }
        PatCommand::BulkUpdate { ids, expires } => {
            let ops = match expiry(Some(&expires))? {
                Some(Expiry::At(at)) => vec![op(
                    "replace",
                    "/expirationDate",
                    Some(Value::String(timestamp::format(at))),
                )],
                _ => vec![
                    op("replace", "/expirationDate", Some(Value::Null)),
                    op(
                        "replace",
                        "/userAwareTokenNeverExpires",
                        Some(Value::Bool(true)),
                    ),
                ],
            };
            let updated = client.bulk_update(&ids, &ops).await?;
            if args.json {
                output::json_pretty(&updated)?;
            } else {
                output::line(&pat_table(&updated))?;
            }
        }
    }
    Ok(())
}

/// Every PAT the list matches, a page of at most 250 (the API's largest) at a time, from
/// `options.offset` on, until a page comes back short or `limit` PATs are in hand. Paging is by
/// offset in a total order (the sorters, then `id`), so a PAT created meanwhile can only push
/// others to a later page: one seen twice is kept once.
async fn list_all(
    client: &Client,
    api: ApiVersion,
    mut options: ListOptions,
    limit: Option<u64>,
) -> anyhow::Result<Vec<GetPersonalAccessTokenResponse>> {
    let mut pats: Vec<GetPersonalAccessTokenResponse> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut offset = options.offset.unwrap_or(0);
    loop {
        let wanted = limit.map_or(u64::MAX, |limit| {
            limit.saturating_sub(u64::try_from(pats.len()).unwrap_or(u64::MAX))
        });
        if wanted == 0 {
            return Ok(pats);
        }
        let page_size = u32::try_from(wanted.min(u64::from(PAGE_SIZE))).unwrap_or(PAGE_SIZE);
        options.limit = Some(page_size);
        options.offset = Some(offset);
        let page = client.list(api, &options).await?;
        let received = page.items.len();
        offset += u64::try_from(received).unwrap_or(u64::MAX);
        pats.extend(
            page.items
                .into_iter()
                .filter(|pat| seen.insert(pat.id.clone())),
        );
        if received < page_size as usize {
            return Ok(pats);
        }
    }
}

/// The most a list request may ask for (CONTRACT §6).
const PAGE_SIZE: u32 = 250;

fn client(args: &PatArgs) -> anyhow::Result<Client> {
    let base_url = args
        .base_url
        .clone()
        .ok_or_else(|| anyhow!("no base URL: set SAIL_BASE_URL or --base-url"))?;
    let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) else {
        return Err(anyhow!("no credentials: set SAIL_CLIENT_ID and SAIL_CLIENT_SECRET, or --client-id and --client-secret"));
    };
    Ok(Client::builder(base_url)
        .credentials(id, secret)
        .max_retries(args.max_retries)
        .build()?)
}

enum Expiry {
    At(time::OffsetDateTime),
    Never,
}

fn expiry(raw: Option<&str>) -> anyhow::Result<Option<Expiry>> {
    match raw {
        None => Ok(None),
        Some("never") => Ok(Some(Expiry::Never)),
        Some(raw) => expires_at(raw).map(|at| Some(Expiry::At(at))),
    }
}

fn require_aware(api: ApiVersion) -> anyhow::Result<()> {
    match api {
        ApiVersion::V2025 | ApiVersion::V1 => Ok(()),
        _ => Err(anyhow!("--expires never needs --api v2025 or v1")),
    }
}

fn op(op: &str, path: &str, value: Option<Value>) -> JsonPatchOperation {
    JsonPatchOperation {
        op: op.to_owned(),
        path: path.to_owned(),
        from: None,
        value,
    }
}

fn expires_text(at: Option<time::OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), timestamp::format)
}

fn print_created(created: &CreatePersonalAccessTokenResponse) -> std::io::Result<()> {
    let rows = [
        ("id", created.id.clone()),
        ("name", created.name.clone()),
        (
            "owner",
            format!("{} ({})", created.owner.name, created.owner.id),
        ),
        ("scope", created.scope.join(" ")),
        (
            "validity",
            format!("{} s", created.access_token_validity_seconds),
        ),
        ("created", timestamp::format(created.created)),
        ("expires", expires_text(created.expiration_date)),
        ("secret", created.secret.clone()),
    ];
    for (label, value) in rows {
        output::line(&format!("{label:<9} {value}"))?;
    }
    Ok(())
}
