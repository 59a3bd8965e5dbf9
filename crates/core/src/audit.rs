//! Audit events (EXTENSIONS E4): what happened, who did it, to what, from where; and the query
//! of the audit log, with its filter fields and who may see which events.

use crate::filter::{time_op, Comparable, Filter, TimeOp, Values};
use crate::ids::IdentityId;
use crate::listing::MAX_LIMIT;
use crate::rights::{Right, Rights};
use crate::Rule;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    PatCreated,
    PatUpdated,
    PatDeleted,
    PatRotated,
    PatExpired,
    /// A notice that a PAT expires soon (EXTENSIONS E6), kept in the trail like the rest.
    PatExpiring,
    PatLeaked,
    PatUsed,
    AuthFailed,
    IdentityCreated,
    KeyCreated,
    WebhookCreated,
    WebhookDeleted,
    TokenRevoked,
    /// A person signed in to the web page (EXTENSIONS E12).
    SessionCreated,
    /// A person signed out of the web page.
    SessionEnded,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::PatCreated,
        EventType::PatUpdated,
        EventType::PatDeleted,
        EventType::PatRotated,
        EventType::PatExpired,
        EventType::PatExpiring,
        EventType::PatLeaked,
        EventType::PatUsed,
        EventType::AuthFailed,
        EventType::IdentityCreated,
        EventType::KeyCreated,
        EventType::WebhookCreated,
        EventType::WebhookDeleted,
        EventType::TokenRevoked,
        EventType::SessionCreated,
        EventType::SessionEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PatCreated => "pat.created",
            EventType::PatUpdated => "pat.updated",
            EventType::PatDeleted => "pat.deleted",
            EventType::PatRotated => "pat.rotated",
            EventType::PatExpired => "pat.expired",
            EventType::PatExpiring => "pat.expiring",
            EventType::PatLeaked => "pat.leaked",
            EventType::PatUsed => "pat.used",
            EventType::AuthFailed => "auth.failed",
            EventType::IdentityCreated => "identity.created",
            EventType::KeyCreated => "key.created",
            EventType::WebhookCreated => "webhook.created",
            EventType::WebhookDeleted => "webhook.deleted",
            EventType::TokenRevoked => "token.revoked",
            EventType::SessionCreated => "session.created",
            EventType::SessionEnded => "session.ended",
        }
    }

    pub fn parse(raw: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// Whether webhooks hear of it (EXTENSIONS E7): every kind but the two that come in floods and
    /// the web page's sign-ins and sign-outs, which are about people, not tokens.
    pub fn is_notified(self) -> bool {
        !matches!(
            self,
            EventType::AuthFailed
                | EventType::PatUsed
                | EventType::SessionCreated
                | EventType::SessionEnded
        )
    }

    /// Whether the PAT's owner is mailed about it (EXTENSIONS E8).
    pub fn is_mailed(self) -> bool {
        matches!(
            self,
            EventType::PatExpiring
                | EventType::PatExpired
                | EventType::PatLeaked
                | EventType::PatRotated
        )
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorType {
    /// A person or script, through an access token (or the web page).
    Identity,
    /// patd itself: expiry, leak reports, the command line.
    System,
    /// Nobody known: failed exchanges.
    Anonymous,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Identity => "IDENTITY",
            ActorType::System => "SYSTEM",
            ActorType::Anonymous => "ANONYMOUS",
        }
    }

    pub fn parse(raw: &str) -> Option<ActorType> {
        [ActorType::Identity, ActorType::System, ActorType::Anonymous]
            .into_iter()
            .find(|kind| kind.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Actor {
    /// The command line, or patd's own background work.
    pub fn system(name: &str) -> Actor {
        Actor {
            kind: ActorType::System,
            id: None,
            name: Some(name.to_owned()),
        }
    }

    pub fn anonymous() -> Actor {
        Actor {
            kind: ActorType::Anonymous,
            id: None,
            name: None,
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `PERSONAL_ACCESS_TOKEN`, `IDENTITY`, `SIGNING_KEY`.
    pub kind: &'static str,
    pub id: String,
    pub name: Option<String>,
    /// The owner of a PAT: whose events a user may read.
    pub owner_id: Option<String>,
}

impl Target {
    pub const PAT: &'static str = "PERSONAL_ACCESS_TOKEN";
    pub const IDENTITY: &'static str = "IDENTITY";
    pub const SIGNING_KEY: &'static str = "SIGNING_KEY";
    pub const WEBHOOK: &'static str = "WEBHOOK";

    /// The target kind as stored, from its text.
    pub fn kind_named(raw: &str) -> &'static str {
        [
            Target::PAT,
            Target::IDENTITY,
            Target::SIGNING_KEY,
            Target::WEBHOOK,
        ]
        .into_iter()
        .find(|kind| *kind == raw)
        .unwrap_or("UNKNOWN")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Failure => "FAILURE",
        }
    }

    pub fn parse(raw: &str) -> Option<Outcome> {
        match raw {
            "SUCCESS" => Some(Outcome::Success),
            "FAILURE" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// The longest user agent kept: a client can send a header of any length.
pub const MAX_USER_AGENT: usize = 256;

/// The longest text kept in a detail that a client or a reporter sent (a leak report's `url`
/// and `source`), in bytes.
pub const MAX_DETAIL_TEXT: usize = 2048;

/// One event. `details` is a small object of the event type's own facts.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub time: OffsetDateTime,
    pub kind: EventType,
    pub actor: Actor,
    pub target: Option<Target>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub tracking_id: Option<String>,
    pub outcome: Outcome,
    pub details: Map<String, Value>,
    /// What a notification of it shows of its target (a PAT as the API shows it, never a
    /// secret); not kept in the audit trail.
    pub subject: Option<Value>,
}

impl AuditEvent {
    /// A successful event of `kind` now, with a fresh id and nothing about the request.
    pub fn new(
        kind: EventType,
        actor: Actor,
        target: Option<Target>,
        time: OffsetDateTime,
        rng: &mut impl rand::CryptoRng,
    ) -> AuditEvent {
        AuditEvent {
            id: crate::ids::time_ordered_hex_id(time, rng),
            time: crate::to_millis(time),
            kind,
            actor,
            target,
            source_ip: None,
            user_agent: None,
            tracking_id: None,
            outcome: Outcome::Success,
            details: Map::new(),
            subject: None,
        }
    }

    /// Sets what a notification shows of the target.
    pub fn with_subject(mut self, subject: Value) -> AuditEvent {
        self.subject = Some(subject);
        self
    }

    /// Adds one fact to `details`.
    /// Sets `details.reason` of a `pat.used` event: the use came from an address not among the
    /// PAT's last five (which says more, so it wins when the use was also the day's first), or
    /// it was the PAT's first use of the day.
    pub fn used_because(self, new_source_ip: bool) -> AuditEvent {
        let reason = if new_source_ip {
            "newSourceIp"
        } else {
            "daily"
        };
        self.detail("reason", reason)
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Keeps at most [`MAX_USER_AGENT`] bytes of a user agent, cut on a character boundary.
    pub fn bounded_user_agent(raw: &str) -> String {
        AuditEvent::bounded(raw, MAX_USER_AGENT)
    }

    /// Keeps at most `max` bytes of `raw`, cut on a character boundary.
    pub fn bounded(raw: &str, max: usize) -> String {
        let mut end = raw.len().min(max);
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        raw[..end].to_owned()
    }
}

/// One comparison of the audit log's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditComparison {
    /// `type eq` or `type in`.
    Type(Vec<EventType>),
    ActorId(String),
    TargetId(String),
    TargetOwnerId(String),
    Time {
        op: TimeOp,
        value: OffsetDateTime,
    },
    Outcome(Outcome),
}

impl Comparable for AuditComparison {
    const FIELDS: &'static [&'static str] = &[
        "type",
        "actor.id",
        "target.id",
        "target.ownerId",
        "time",
        "outcome",
    ];

    fn read(field: &str, op: &str, values: &mut Values<'_>) -> Result<Option<Self>, Rule> {
        let event_type = |raw: String| {
            EventType::parse(&raw).ok_or_else(|| {
                crate::filter::filter_error(format!("'{raw}' is not an audit event type"))
            })
        };
        let comparison = match (field, op) {
            ("type", "eq") => AuditComparison::Type(vec![event_type(values.string()?)?]),
            ("type", "in") => AuditComparison::Type(
                values
                    .string_list()?
                    .into_iter()
                    .map(event_type)
                    .collect::<Result<_, _>>()?,
            ),
            ("actor.id", "eq") => AuditComparison::ActorId(values.string()?),
            ("target.id", "eq") => AuditComparison::TargetId(values.string()?),
            ("target.ownerId", "eq") => AuditComparison::TargetOwnerId(values.string()?),
            ("time", op) if time_op(op).is_some() => AuditComparison::Time {
                op: time_op(op).unwrap_or(TimeOp::Ge),
                value: values.date("time")?,
            },
            ("outcome", "eq") => {
                let raw = values.string()?;
                AuditComparison::Outcome(Outcome::parse(&raw).ok_or_else(|| {
                    crate::filter::filter_error(format!(
                        "outcome is SUCCESS or FAILURE, not '{raw}'"
                    ))
                })?)
            }
            _ => return Ok(None),
        };
        Ok(Some(comparison))
    }
}

/// A query of the audit log: its filter, order and page, and whose events the caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub filter: Option<Filter<AuditComparison>>,
    /// Newest first unless `sorters=time`.
    pub descending: bool,
    pub limit: u32,
    pub offset: u64,
    pub count: bool,
    /// `None`: every event. `Some(id)`: the events `id` did, or done to `id`'s PATs.
    pub visible_to: Option<IdentityId>,
}

/// Who may read which events: everything with `idn:audit-events:read`, one's own with
/// `my-personal-access-tokens:read`, nothing otherwise.
pub fn visibility(caller: &IdentityId, rights: Rights) -> Option<Option<IdentityId>> {
    if rights.contains(Right::AuditRead) {
        Some(None)
    } else if rights.contains(Right::MyRead) {
        Some(Some(caller.clone()))
    } else {
        None
    }
}

impl AuditQuery {
    /// Reads the collection parameters of E1: `filters`, `sorters` (`time` or `-time`),
    /// `limit` (≤ 250), `offset`, `count`.
    pub fn parse(
        params: &crate::listing::ListParams<'_>,
        visible_to: Option<IdentityId>,
    ) -> Result<AuditQuery, Rule> {
        let filter = match params.filters {
            Some(text) if !text.trim().is_empty() => Some(Filter::parse(text)?),
            _ => None,
        };
        let descending = match params.sorters.map(str::trim) {
            None | Some("") | Some("-time") => true,
            Some("time") => false,
            Some(other) => {
                return Err(Rule::Paging(format!(
                    "'{other}' is not a sorter of audit events: use time or -time"
                )))
            }
        };
        let paging = crate::listing::ListRequest::parse(&crate::listing::ListParams {
            filters: None,
            sorters: None,
            ..params.clone()
        })?;
        Ok(AuditQuery {
            filter,
            descending,
            limit: paging.limit.min(MAX_LIMIT),
            offset: paging.offset,
            count: paging.count,
            visible_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::ListParams;

    fn parse(filters: &str) -> Result<AuditQuery, Rule> {
        AuditQuery::parse(
            &ListParams {
                filters: Some(filters),
                ..ListParams::default()
            },
            None,
        )
    }

    #[test]
    fn every_type_reads_back() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn the_filter_takes_the_listed_fields_and_operators_only() {
        let query = parse(
            r#"type in ("pat.created", "pat.deleted") and time ge 2026-01-01T00:00:00Z and outcome eq "SUCCESS""#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert!(query.filter.is_some());
        assert!(query.descending);
        for (bad, named) in [
            (r#"name eq "x""#, "field 'name'"),
            (r#"type co "pat""#, "operator 'co'"),
            (r#"type eq "pat.exploded""#, "pat.exploded"),
            (r#"outcome eq "MAYBE""#, "MAYBE"),
            (r#"actor.id ne "x""#, "operator 'ne'"),
        ] {
            let err = parse(bad).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn only_time_sorts() {
        let sorted = |sorters| {
            AuditQuery::parse(
                &ListParams {
                    sorters: Some(sorters),
                    ..ListParams::default()
                },
                None,
            )
        };
        assert!(!sorted("time").map(|query| query.descending).unwrap_or(true));
        assert!(sorted("name").is_err());
    }

    #[test]
    fn user_agents_are_cut_on_a_character() {
        let long = "é".repeat(200);
        let cut = AuditEvent::bounded_user_agent(&long);
        assert!(cut.len() <= MAX_USER_AGENT && long.starts_with(&cut));
        let long = "é".repeat(2000);
        let cut = AuditEvent::bounded(&long, MAX_DETAIL_TEXT);
        assert!(cut.len() == MAX_DETAIL_TEXT && long.starts_with(&cut));
        assert_eq!(AuditEvent::bounded("short", MAX_DETAIL_TEXT), "short");
    }
}
