//! Shared Signals (EXTENSIONS E11): what a stream is and which of its inputs are allowed, and
//! which audit events become which Security Event Token (RFC 8417) with which claims. Pure: the
//! store enqueues the claims this module builds, the server signs and sends them.

use crate::audit::{AuditEvent, EventType};
use crate::notify::WebhookUrl;
use crate::Rule;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

/// CAEP's session revoked: every access token minted from the PAT is dead.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP's credential change: the PAT's secret or what it grants changed.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// SSF's verification event, the answer to `/ssf/v1/streams/verify`.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The event types a stream may ask for (verification is always delivered, as SSF 1.0 §8.1.4
/// says, and so is not listed).
pub const EVENTS_SUPPORTED: [&str; 2] = [SESSION_REVOKED, CREDENTIAL_CHANGE];

/// CAEP's `credential_type` for a PAT. CAEP's list names no API key; a PAT secret is a shared
/// secret the client presents and patd compares with a stored digest, which is what a password
/// is, while `x509`, `fido2-*` and `verifiable-credential` are key pairs the holder proves
/// possession of, and `app`, `phone-*` and `pin` are second factors.
pub const CREDENTIAL_TYPE: &str = "password";

/// The most event types a stream may request.
pub const MAX_EVENTS_REQUESTED: usize = 32;
/// The longest event type URI accepted in `events_requested`.
pub const MAX_EVENT_URI_CHARS: usize = 256;
/// The longest `authorization_header`.
pub const MAX_AUTHORIZATION_CHARS: usize = 4096;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// The longest `reason` of a status change.
pub const MAX_REASON_CHARS: usize = 256;
/// The longest `state` of a verification request.
pub const MAX_STATE_CHARS: usize = 256;
/// Streams per tenant (SailPoint's limit).
pub const MAX_STREAMS: usize = 10;

/// How a stream's events reach its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// RFC 8935: patd POSTs each SET to the receiver.
    Push,
    /// RFC 8936: the receiver POSTs to patd's poll endpoint and acknowledges what it got.
    Poll,
}

impl Method {
    pub const PUSH_URN: &'static str = "urn:ietf:rfc:8935";
    pub const POLL_URN: &'static str = "urn:ietf:rfc:8936";

    pub fn parse(raw: &str) -> Result<Method, Rule> {
        match raw {
            Method::PUSH_URN => Ok(Method::Push),
            Method::POLL_URN => Ok(Method::Poll),
            _ => Err(Rule::SsfDeliveryMethod),
        }
    }

    pub fn urn(self) -> &'static str {
        match self {
            Method::Push => Method::PUSH_URN,
            Method::Poll => Method::POLL_URN,
        }
    }

    /// The outbox channel of its SETs: pushed ones are attempted by the delivery loop, polled
    /// ones wait for the receiver.
    pub fn channel(self) -> &'static str {
        match self {
            Method::Push => CHANNEL_PUSH,
            Method::Poll => CHANNEL_POLL,
        }
    }
}

/// The outbox channel of pushed SETs.
pub const CHANNEL_PUSH: &str = "ssf_push";
/// The outbox channel of SETs waiting to be polled.
pub const CHANNEL_POLL: &str = "ssf_poll";

/// A stream's status (SSF 1.0 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enabled,
    /// Events are held and delivered once the stream is enabled again.
    Paused,
    /// Events are neither delivered nor held.
    Disabled,
}

impl Status {
    pub fn parse(raw: &str) -> Result<Status, Rule> {
        match raw {
            "enabled" => Ok(Status::Enabled),
            "paused" => Ok(Status::Paused),
            "disabled" => Ok(Status::Disabled),
            _ => Err(Rule::SsfStatus),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Paused => "paused",
            Status::Disabled => "disabled",
        }
    }
}

/// Where and how a stream's SETs go.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    pub method: Method,
    /// The receiver's URL (push); `None` for poll, whose endpoint is patd's.
    pub endpoint_url: Option<WebhookUrl>,
    /// Sent as `Authorization` with each push; never shown back.
    pub authorization_header: Option<String>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("method", &self.method)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery from a request's members: push needs an http or https `endpoint_url` (private
    /// targets as webhooks allow them); poll ignores one, since its endpoint is patd's own.
    pub fn parse(
        method: Option<&str>,
        endpoint_url: Option<&str>,
        authorization_header: Option<String>,
        allow_private: bool,
    ) -> Result<Delivery, Rule> {
        let method = Method::parse(method.ok_or(Rule::SsfDeliveryMethod)?)?;
        let endpoint_url = match method {
            Method::Push => Some(
                WebhookUrl::parse(endpoint_url.ok_or(Rule::SsfEndpointUrl)?, allow_private)
                    .map_err(|rule| match rule {
                        Rule::WebhookPrivateTarget => Rule::WebhookPrivateTarget,
                        _ => Rule::SsfEndpointUrl,
                    })?,
            ),
            Method::Poll => None,
        };
        Ok(Delivery {
            method,
            endpoint_url,
            authorization_header: authorization_header
                .map(|value| parse_authorization(&value))
                .transpose()?,
        })
    }
}

/// An `Authorization` value: at most 4096 visible ASCII characters and spaces, so that it can
/// go into a header as it is.
pub fn parse_authorization(raw: &str) -> Result<String, Rule> {
    let fits = !raw.is_empty()
        && raw.len() <= MAX_AUTHORIZATION_CHARS
        && raw
            .bytes()
            .all(|byte| byte == b' ' || byte.is_ascii_graphic());
    if fits {
        Ok(raw.to_owned())
    } else {
        Err(Rule::SsfAuthorization)
    }
}

/// `events_requested`: at most 32 URIs of at most 256 characters, no control characters,
/// duplicates dropped. Absent: every supported event. Unknown ones are kept, as SSF wants
/// (they are not delivered: `events_delivered` shows which are).
pub fn parse_events(raw: Option<Vec<String>>) -> Result<Vec<String>, Rule> {
    let Some(raw) = raw else {
        return Ok(EVENTS_SUPPORTED
            .iter()
            .map(|uri| (*uri).to_owned())
            .collect());
    };
    if raw.len() > MAX_EVENTS_REQUESTED {
        return Err(Rule::SsfEvents);
    }
    let mut events: Vec<String> = Vec::with_capacity(raw.len());
    for uri in raw {
        if uri.is_empty()
            || uri.chars().count() > MAX_EVENT_URI_CHARS
            || uri.chars().any(char::is_control)
        {
            return Err(Rule::SsfEvents);
        }
        if !events.contains(&uri) {
            events.push(uri);
        }
    }
    Ok(events)
}

/// A description, a status reason or a verification state: at most `max` characters, no
/// control characters.
pub fn parse_text(raw: Option<String>, max: usize, rule: Rule) -> Result<Option<String>, Rule> {
    match raw {
        Some(text) if text.chars().count() > max || text.chars().any(char::is_control) => Err(rule),
        other => Ok(other),
    }
}

/// Whether `raw` can name a stream or a SET (`stream_id`, `jti`): 32 lowercase hex characters,
/// as patd makes them. Anything else names nothing, and is never sent to the database (where
/// PostgreSQL's `text` cannot even hold U+0000).
pub fn is_id(raw: &str) -> bool {
    crate::ids::is_hex_id(raw)
}

/// One stream (SSF 1.0 §8.1.1), owned by the client id (PAT) that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub id: String,
    /// The calling token's `client_id` at creation: one stream each.
    pub client_id: String,
    /// The SETs' `aud`: the receiver's client id.
    pub audience: String,
    pub delivery: Delivery,
    pub events_requested: Vec<String>,
    pub description: String,
    pub status: Status,
    pub reason: Option<String>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

impl Stream {
    /// The requested events patd sends: supported ∩ requested, in the supported order.
    pub fn events_delivered(&self) -> Vec<String> {
        EVENTS_SUPPORTED
            .iter()
            .filter(|uri| self.events_requested.iter().any(|wanted| wanted == *uri))
            .map(|uri| (*uri).to_owned())
            .collect()
    }

    /// Whether a SET of `event_type` goes to this stream.
    pub fn wants(&self, event_type: &str) -> bool {
        event_type == VERIFICATION || self.events_requested.iter().any(|uri| uri == event_type)
    }
}

/// What a stream needs to know of itself when an event is enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub id: String,
    pub method: Method,
    pub status: Status,
    pub events_requested: Vec<String>,
}

impl Listener {
    /// Whether this stream takes a SET of `event_type` now: a disabled stream holds nothing.
    pub fn takes(&self, event_type: &str) -> bool {
        self.status != Status::Disabled
            && (event_type == VERIFICATION
                || self.events_requested.iter().any(|uri| uri == event_type))
    }
}

/// A SET before it is addressed and signed: the claims every stream gets the same (`iat`,
/// `sub_id`, `events`); the sender adds `iss`, `aud` and `jti`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub event_type: &'static str,
    pub claims: Value,
}

/// The SET an audit event calls for, if any:
/// - `pat.deleted`, `pat.leaked`, `pat.expired` → `session-revoked`;
/// - `token.revoked` (target the PAT, `details.jti` the token) → `session-revoked`, the subject
///   carrying the `jti`;
/// - `pat.rotated`, and `pat.updated` whose `details.paths` touch `/scope` →
///   `credential-change` (`update`).
pub fn signal(event: &AuditEvent) -> Option<Signal> {
    let target = event.target.as_ref()?;
    let mut subject = json!({"format": "opaque", "id": target.id});
    let timestamp = event.time.unix_timestamp();
    let reason = |text: &str| json!({"en": text});
    let (event_type, body) = match event.kind {
        EventType::PatDeleted => (
            SESSION_REVOKED,
            json!({"event_timestamp": timestamp,
                   "reason_admin": reason("the personal access token was deleted")}),
        ),
        EventType::PatLeaked => (
            SESSION_REVOKED,
            json!({"event_timestamp": timestamp,
                   "reason_admin": reason("the personal access token's secret was leaked")}),
        ),
        EventType::PatExpired => (
            SESSION_REVOKED,
            json!({"event_timestamp": timestamp,
                   "reason_admin": reason("the personal access token expired")}),
        ),
        // Past the PAT's cap of listed revocations every earlier token died with this one
        // (`earlierTokens`): the subject is then the PAT, as for a deletion.
        EventType::TokenRevoked if flag(&event.details, "earlierTokens") => (
            SESSION_REVOKED,
            json!({"event_timestamp": timestamp,
                   "reason_admin": reason("the access token and every earlier one of its personal access token were revoked")}),
        ),
        EventType::TokenRevoked => {
            let jti = event.details.get("jti")?.as_str()?;
            if let Some(members) = subject.as_object_mut() {
                members.insert("jti".to_owned(), Value::String(jti.to_owned()));
            }
            (
                SESSION_REVOKED,
                json!({"event_timestamp": timestamp,
                       "reason_admin": reason("the access token was revoked")}),
            )
        }
        // A rotation with `revokeIssuedTokens` ends every token minted before it: for a cache of
        // tokens that is a revocation, the stronger of the two signals.
        EventType::PatRotated if flag(&event.details, "revokeIssuedTokens") => (
            SESSION_REVOKED,
            json!({"event_timestamp": timestamp,
                   "reason_admin": reason("the personal access token was rotated and its access tokens revoked")}),
        ),
        EventType::PatRotated => (
            CREDENTIAL_CHANGE,
            json!({"event_timestamp": timestamp, "credential_type": CREDENTIAL_TYPE,
                   "change_type": "update",
                   "reason_admin": reason("the personal access token's secret was rotated")}),
        ),
        EventType::PatUpdated if touches_scope(&event.details) => (
            CREDENTIAL_CHANGE,
            json!({"event_timestamp": timestamp, "credential_type": CREDENTIAL_TYPE,
                   "change_type": "update",
                   "reason_admin": reason("the personal access token's scope changed")}),
        ),
        _ => return None,
    };
    Some(Signal {
        event_type,
        claims: claims(timestamp, subject, event_type, body),
    })
}

/// Whether the event's `details` hold `name: true`.
fn flag(details: &Map<String, Value>, name: &str) -> bool {
    details.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The verification SET of a stream (SSF 1.0 §8.1.4.1): its subject is the stream, and `state`
/// is echoed when the receiver gave one.
pub fn verification(stream_id: &str, state: Option<&str>, now: OffsetDateTime) -> Signal {
    let mut body = Map::new();
    if let Some(state) = state {
        body.insert("state".to_owned(), Value::String(state.to_owned()));
    }
    Signal {
        event_type: VERIFICATION,
        claims: claims(
            now.unix_timestamp(),
            json!({"format": "opaque", "id": stream_id}),
            VERIFICATION,
            Value::Object(body),
        ),
    }
}

fn claims(iat: i64, subject: Value, event_type: &str, body: Value) -> Value {
    let mut events = Map::new();
    events.insert(event_type.to_owned(), body);
    json!({"iat": iat, "sub_id": subject, "events": events})
}

/// Whether a patch's paths (`details.paths`) touched the scope.
fn touches_scope(details: &Map<String, Value>) -> bool {
    details
        .get("paths")
        .and_then(Value::as_array)
        .is_some_and(|paths| {
            paths
                .iter()
                .filter_map(Value::as_str)
                .any(|path| path == "/scope" || path.starts_with("/scope/"))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Target};

    fn event(kind: EventType, details: Value) -> AuditEvent {
        let mut event = AuditEvent::new(
            kind,
            Actor::system("test"),
            Some(Target {
                kind: Target::PAT,
                id: "0123456789abcdef0123456789abcdef".to_owned(),
                name: Some("ci".to_owned()),
                owner_id: None,
            }),
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            &mut rand::rng(),
        );
        if let Value::Object(details) = details {
            event.details = details;
        }
        event
    }

    fn check(kind: EventType, details: Value, expected: Option<&str>) {
        let found = signal(&event(kind, details));
        assert_eq!(found.as_ref().map(|s| s.event_type), expected, "{kind:?}");
        if let Some(found) = found {
            let claims = &found.claims;
            assert_eq!(claims["iat"], 1_800_000_000);
            assert_eq!(claims["sub_id"]["format"], "opaque");
            assert_eq!(claims["sub_id"]["id"], "0123456789abcdef0123456789abcdef");
            let body = &claims["events"][found.event_type];
            assert_eq!(body["event_timestamp"], 1_800_000_000);
            if found.event_type == CREDENTIAL_CHANGE {
                assert_eq!(body["credential_type"], CREDENTIAL_TYPE);
                assert_eq!(body["change_type"], "update");
            }
        }
    }

    #[test]
    fn each_kind_of_change_maps_to_its_caep_event() {
        check(EventType::PatDeleted, json!({}), Some(SESSION_REVOKED));
        check(EventType::PatLeaked, json!({}), Some(SESSION_REVOKED));
        check(EventType::PatExpired, json!({}), Some(SESSION_REVOKED));
        check(EventType::PatRotated, json!({}), Some(CREDENTIAL_CHANGE));
        check(
            EventType::PatUpdated,
            json!({"paths": ["/name", "/scope"]}),
            Some(CREDENTIAL_CHANGE),
        );
        check(
            EventType::PatUpdated,
            json!({"paths": ["/scope/-"]}),
            Some(CREDENTIAL_CHANGE),
        );
        check(EventType::PatUpdated, json!({"paths": ["/name"]}), None);
        check(EventType::PatUpdated, json!({"paths": ["/scopes"]}), None);
        check(EventType::PatCreated, json!({}), None);
        check(EventType::PatExpiring, json!({}), None);
        check(EventType::PatUsed, json!({}), None);
        check(EventType::TokenRevoked, json!({}), None);
        check(
            EventType::TokenRevoked,
            json!({"jti": "abc"}),
            Some(SESSION_REVOKED),
        );
    }

    #[test]
    fn a_revoked_access_token_names_its_jti_in_the_subject() {
        let found = signal(&event(EventType::TokenRevoked, json!({"jti": "the-jti"}))).unwrap();
        assert_eq!(
            found.claims["sub_id"],
            json!({"format": "opaque", "id": "0123456789abcdef0123456789abcdef", "jti": "the-jti"})
        );
    }

    #[test]
    fn tokens_that_die_in_bulk_are_signalled_as_revoked_for_the_whole_pat() {
        let bulk = signal(&event(
            EventType::TokenRevoked,
            json!({"jti": "the-jti", "earlierTokens": true}),
        ))
        .unwrap();
        assert_eq!(bulk.event_type, SESSION_REVOKED);
        assert!(bulk.claims["sub_id"].get("jti").is_none());
        let rotated = signal(&event(
            EventType::PatRotated,
            json!({"revokeIssuedTokens": true}),
        ))
        .unwrap();
        assert_eq!(rotated.event_type, SESSION_REVOKED);
        let kept = signal(&event(
            EventType::PatRotated,
            json!({"revokeIssuedTokens": false}),
        ))
        .unwrap();
        assert_eq!(kept.event_type, CREDENTIAL_CHANGE);
    }

    #[test]
    fn verification_echoes_the_state() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let with = verification("s1", Some("xyz"), now);
        assert_eq!(with.claims["events"][VERIFICATION]["state"], "xyz");
        assert_eq!(with.claims["sub_id"]["id"], "s1");
        let without = verification("s1", None, now);
        assert_eq!(without.claims["events"][VERIFICATION], json!({}));
    }

    #[test]
    fn inputs_are_bounded() {
        assert!(parse_events(Some(vec!["x".repeat(257)])).is_err());
        assert!(parse_events(Some(vec!["a\nb".to_owned()])).is_err());
        assert!(parse_events(Some((0..33).map(|n| n.to_string()).collect())).is_err());
        assert_eq!(
            parse_events(Some(vec![
                SESSION_REVOKED.to_owned(),
                SESSION_REVOKED.to_owned()
            ]))
            .unwrap(),
            vec![SESSION_REVOKED.to_owned()]
        );
        assert_eq!(parse_events(None).unwrap().len(), 2);
        assert!(parse_authorization("Bearer x\r\nX-Evil: 1").is_err());
        assert!(parse_authorization(&"a".repeat(4097)).is_err());
        assert!(parse_authorization("Bearer abc").is_ok());
        assert!(Method::parse("push").is_err());
        assert_eq!(Method::parse(Method::POLL_URN), Ok(Method::Poll));
        assert!(Status::parse("on").is_err());
        assert!(Delivery::parse(Some(Method::PUSH_URN), None, None, true).is_err());
        assert!(Delivery::parse(Some(Method::PUSH_URN), Some("ftp://x"), None, true).is_err());
        assert_eq!(
            Delivery::parse(
                Some(Method::PUSH_URN),
                Some("http://127.0.0.1/x"),
                None,
                false
            ),
            Err(Rule::WebhookPrivateTarget)
        );
        assert!(Delivery::parse(Some(Method::POLL_URN), None, None, false).is_ok());
    }
}
