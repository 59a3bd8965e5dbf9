//! `patd audit list`: the audit trail read from the database directly, newest first.

use anyhow::Context;
use clap::Args;
use patd_core::audit::AuditQuery;
use patd_core::listing::ListParams;
use std::io::Write;

#[derive(Debug, Args)]
pub struct AuditList {
    /// Only events of this type (pat.created, pat.updated, pat.deleted, pat.used, auth.failed,
    /// identity.created, key.created, …).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only events about this PAT (its id).
    #[arg(long, value_name = "ID")]
    pub pat: Option<String>,
    /// Only events at or after this RFC 3339 date-time (e.g. 2026-12-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// At most this many events (default: all of them).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print a JSON array of the events as the API shows them.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: crate::args::DatabaseArg,
}

/// A string in the filter grammar: quoted, with `"` and `\` escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The filter the options ask for, in the API's grammar, so that it is checked by the same
/// parser as the API's.
fn filter(list: &AuditList) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(kind) = &list.kind {
        parts.push(format!("type eq {}", quoted(kind)));
    }
    if let Some(pat) = &list.pat {
        parts.push(format!("target.id eq {}", quoted(pat)));
    }
    if let Some(since) = &list.since {
        parts.push(format!("time ge {}", quoted(since)));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

pub async fn run(list: AuditList) -> anyhow::Result<()> {
    let store = patd_store::connect(&list.database.database).await?;
    let filters = filter(&list);
    let mut events = Vec::new();
    let wanted = list.limit.unwrap_or(u64::MAX);
    // Pages of 250, newest first, until a short page or the limit.
    while (events.len() as u64) < wanted {
        let page_size = (wanted - events.len() as u64).min(250).to_string();
        let offset = events.len().to_string();
        let query = AuditQuery::parse(
            &ListParams {
                filters: filters.as_deref(),
                sorters: None,
                limit: Some(&page_size),
                offset: Some(&offset),
                count: None,
            },
            None,
        )
        .context("the options")?;
        let page = store.audit_events(&query).await?;
        let short = (page.items.len() as u64) < query.limit.into();
        events.extend(page.items);
        if short {
            break;
        }
    }
    let mut out = std::io::stdout().lock();
    let written = if list.json {
        let body: Vec<_> = events
            .iter()
            .map(patd_server::convert::audit_event)
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&body)?)
    } else {
        events.iter().try_for_each(|event| {
            let time = patd_proto::timestamp::format(event.time);
            let actor = event
                .actor
                .name
                .as_deref()
                .or(event.actor.id.as_deref())
                .unwrap_or("-");
            let target = event
                .target
                .as_ref()
                .map_or("-", |target| target.id.as_str());
            let ip = event.source_ip.as_deref().unwrap_or("-");
            let count = event
                .details
                .get("count")
                .map(|count| format!(" x{count}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{time}  {:<16} {:<8} {:<20} {target} {ip}{count}",
                event.kind.as_str(),
                event.outcome.as_str(),
                actor
            )
        })
    };
    match written {
        // A reader that went away (`| head`) is not an error.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Into::into),
    }
}
