//! What patd tells the world of an event (EXTENSIONS E7, E8): the webhook payload, which
//! webhooks want it, the retry schedule of a delivery, and the mail an owner gets.

use crate::audit::{AuditEvent, EventType};
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

/// How long a delivery keeps being retried before it is marked failed.
pub const RETRY_FOR: Duration = Duration::hours(24);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::hours(1);

/// `{"type", "timestamp", "data"}`: for PAT events `data.pat` is the PAT as the API shows it;
/// `data` also names the actor, the target and the event's details. Never a secret.
pub fn payload(event: &AuditEvent) -> Value {
    let mut data = Map::new();
    if let Some(subject) = &event.subject {
        data.insert("pat".to_owned(), subject.clone());
    }
    data.insert(
        "actor".to_owned(),
        json!({"type": event.actor.kind.as_str(), "id": event.actor.id, "name": event.actor.name}),
    );
    if let Some(target) = &event.target {
        data.insert(
            "target".to_owned(),
            json!({"type": target.kind, "id": target.id, "name": target.name,
                   "ownerId": target.owner_id}),
        );
    }
    data.insert("details".to_owned(), Value::Object(event.details.clone()));
    data.insert("eventId".to_owned(), Value::String(event.id.clone()));
    json!({
        "type": event.kind.as_str(),
        "timestamp": patd_proto::timestamp::format(event.time),
        "data": data,
    })
}

/// A webhook's target: an http or https URL that is not, by its own text, a loopback, private
/// or link-local address (unless those are allowed). A host name is checked again where it is
/// resolved, at each delivery, so that DNS cannot point it inside later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub const MAX_CHARS: usize = 2048;

    pub fn parse(raw: &str, allow_private: bool) -> Result<WebhookUrl, crate::Rule> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(crate::Rule::WebhookUrl);
        }
        let url = url::Url::parse(raw).map_err(|_| crate::Rule::WebhookUrl)?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return Err(crate::Rule::WebhookUrl);
        }
        let private = match url.host() {
            None => return Err(crate::Rule::WebhookUrl),
            Some(url::Host::Ipv4(ip)) => is_private_address(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_private_address(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
        };
        if private && !allow_private {
            return Err(crate::Rule::WebhookPrivateTarget);
        }
        Ok(WebhookUrl(url.to_string()))
    }

    /// As stored: trusted.
    pub fn from_stored(raw: String) -> WebhookUrl {
        WebhookUrl(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Loopback, private (RFC 1918, unique local), link-local, carrier-grade NAT, unspecified,
/// broadcast and multicast addresses, and IPv4 ones inside IPv6: nowhere a webhook may go.
pub fn is_private_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// An identity's mail address: `local@domain`, at most 254 characters, no spaces or control
/// characters. The SMTP library checks it again when it sends.
pub fn parse_email(raw: &str) -> Result<String, crate::Rule> {
    let trimmed = raw.trim();
    let shaped = trimmed.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    });
    let clean = !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
    if trimmed.len() > 254 || !shaped || !clean {
        return Err(crate::Rule::EmailInvalid);
    }
    Ok(trimmed.to_owned())
}

/// A webhook's description: at most 256 characters, no control characters.
pub fn parse_description(raw: Option<String>) -> Result<String, crate::Rule> {
    let text = raw.unwrap_or_default();
    if text.chars().count() > 256 || text.chars().any(char::is_control) {
        return Err(crate::Rule::WebhookDescription);
    }
    Ok(text)
}

/// A webhook (EXTENSIONS E7).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: WebhookUrl,
    pub events: Subscription,
    pub description: String,
    /// `whsec_` and the base64 of 32 random bytes: the HMAC key of its signatures.
    pub secret: String,
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The events a webhook asked for: names of event types, or `*` for every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription(Vec<String>);

impl Subscription {
    /// At most this many entries.
    pub const MAX_ENTRIES: usize = 32;

    pub fn parse(raw: Vec<String>) -> Result<Subscription, crate::Rule> {
        if raw.is_empty() || raw.len() > Self::MAX_ENTRIES {
            return Err(crate::Rule::WebhookEvents);
        }
        for entry in &raw {
            let known = EventType::parse(entry).is_some_and(EventType::is_notified);
            if entry != "*" && !known {
                return Err(crate::Rule::WebhookEvents);
            }
        }
        Ok(Subscription(raw))
    }

    /// As stored: trusted.
    pub fn from_stored(entries: Vec<String>) -> Subscription {
        Subscription(entries)
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }

    pub fn wants(&self, kind: EventType) -> bool {
        kind.is_notified()
            && self
                .0
                .iter()
                .any(|entry| entry == "*" || entry == kind.as_str())
    }
}

/// When attempt `attempts + 1` is due after attempt `attempts` failed at `now`: `base` doubled
/// for each failure, capped at [`MAX_BACKOFF`], times a jitter in [0.75, 1] so that receivers
/// coming back are not hit by every sender at once. `None`: the delivery created at `created`
/// is past [`RETRY_FOR`] and is failed.
pub fn next_attempt(
    created: OffsetDateTime,
    attempts: u32,
    now: OffsetDateTime,
    base: Duration,
    jitter: f64,
) -> Option<OffsetDateTime> {
    let doubling = 2_f64.powi(i32::try_from(attempts.saturating_sub(1).min(30)).unwrap_or(30));
    let wait = (base.as_seconds_f64() * doubling).min(MAX_BACKOFF.as_seconds_f64());
    let wait = Duration::seconds_f64(wait * (0.75 + 0.25 * jitter.clamp(0.0, 1.0)));
    let next = now + wait;
    (next - created <= RETRY_FOR).then_some(next)
}

/// A mail to a PAT's owner: subject, plain text and HTML. It names the PAT, its expiry and
/// what to do; never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail for `event` (a mailed kind), from its payload.
pub fn mail(kind: EventType, payload: &Value) -> Mail {
    let pat = &payload["data"]["pat"];
    let name = pat["name"].as_str().unwrap_or("a personal access token");
    let id = pat["id"].as_str().unwrap_or("");
    let expiry = pat["expirationDate"].as_str().unwrap_or("never");
    let (subject, what, todo) = match kind {
        EventType::PatExpiring => (
            format!("Your personal access token \"{name}\" expires soon"),
            format!("expires on {expiry}"),
            "Rotate it, or create a new one and update the jobs that use it, before then.",
        ),
        EventType::PatExpired => (
            format!("Your personal access token \"{name}\" has expired"),
            format!("expired on {expiry}"),
            "Create a new one if it is still needed, and update the jobs that used it.",
        ),
        EventType::PatLeaked => (
            format!("Your personal access token \"{name}\" was found in public and revoked"),
            "was found in public content and has been revoked".to_owned(),
            "Create a new one, update the jobs that used it, and remove the secret from where it was published.",
        ),
        _ => (
            format!("Your personal access token \"{name}\" was rotated"),
            format!("was given a new secret; it expires on {expiry}"),
            "Update the jobs that use it with the new secret. If you did not do this, revoke it.",
        ),
    };
    let text =
        format!("The personal access token \"{name}\" ({id}) {what}.\n\n{todo}\n\n-- patd\n");
    let html = format!(
        "<!doctype html><html><body><p>The personal access token <strong>{}</strong> \
         (<code>{}</code>) {}.</p><p>{}</p><p>&mdash; patd</p></body></html>",
        escape(name),
        escape(id),
        escape(&what),
        escape(todo)
    );
    Mail {
        subject,
        text,
        html,
    }
}

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let created = datetime!(2026-01-01 00:00 UTC);
        let base = Duration::seconds(5);
        let first = next_attempt(created, 1, created, base, 1.0).unwrap();
        assert_eq!(first - created, Duration::seconds(5));
        let second = next_attempt(created, 2, first, base, 0.0).unwrap();
        assert_eq!(second - first, Duration::seconds_f64(7.5));
        assert!(second - first > first - created, "the gaps grow");
        let late = created + Duration::hours(23) + Duration::minutes(30);
        assert_eq!(next_attempt(created, 20, late, base, 1.0), None);
        let capped = next_attempt(created, 30, created, base, 1.0).unwrap();
        assert_eq!(capped - created, MAX_BACKOFF);
    }

    #[test]
    fn subscriptions_name_known_notified_events() {
        let wants = Subscription::parse(vec!["pat.expiring".into()]).unwrap();
        assert!(wants.wants(EventType::PatExpiring));
        assert!(!wants.wants(EventType::PatDeleted));
        let all = Subscription::parse(vec!["*".into()]).unwrap();
        assert!(all.wants(EventType::PatDeleted));
        assert!(!all.wants(EventType::AuthFailed) && !all.wants(EventType::PatUsed));
        assert!(Subscription::parse(vec![]).is_err());
        assert!(Subscription::parse(vec!["auth.failed".into()]).is_err());
        assert!(Subscription::parse(vec!["pat.nope".into()]).is_err());
    }

    #[test]
    fn webhook_urls_are_http_and_private_targets_are_refused() {
        for ok in [
            "https://hooks.example.com/patd",
            "http://203.0.113.7:8080/x",
        ] {
            assert!(WebhookUrl::parse(ok, false).is_ok(), "{ok}");
        }
        for private in [
            "http://127.0.0.1/",
            "http://localhost:9000/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            assert_eq!(
                WebhookUrl::parse(private, false),
                Err(crate::Rule::WebhookPrivateTarget),
                "{private}"
            );
            assert!(WebhookUrl::parse(private, true).is_ok(), "{private}");
        }
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@example.com/",
        ] {
            assert_eq!(
                WebhookUrl::parse(bad, true),
                Err(crate::Rule::WebhookUrl),
                "{bad}"
            );
        }
    }

    #[test]
    fn mails_name_the_pat_and_escape_it() {
        let payload = json!({"data": {"pat": {"name": "<ci>", "id": "abc", "expirationDate": "2027-01-01T00:00:00.000Z"}}});
        let mail = mail(EventType::PatExpiring, &payload);
        assert!(mail.subject.contains("<ci>"));
        assert!(mail.text.contains("2027-01-01"));
        assert!(mail.html.contains("&lt;ci&gt;") && !mail.html.contains("<ci>"));
    }
}
