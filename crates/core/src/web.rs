//! The web page's sign-in links and sessions (EXTENSIONS E12): their secrets and digests, how
//! long each lives, and the CSRF token a session's forms carry.

use crate::ids::IdentityId;
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

/// How many random bytes a link or session secret holds: 256 bits.
const SECRET_BYTES: usize = 32;
/// Its text: 64 lowercase hex digits.
const SECRET_LEN: usize = SECRET_BYTES * 2;

/// A sign-in link's or a session's secret: what the link or the cookie carries. Only its
/// `WebDigest` is stored; its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSecret(String);

impl fmt::Debug for WebSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebSecret(…)")
    }
}

/// The SHA-256 of a `WebSecret`, in hex: the key of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDigest(String);

impl WebDigest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A digest as stored.
    pub fn from_stored(raw: String) -> WebDigest {
        WebDigest(raw)
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// SHA-256 over a purpose tag and the secret, so that one secret's digest for one purpose says
/// nothing of another's.
fn tagged_digest(tag: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update([0]);
    hasher.update(secret.as_bytes());
    hex(&hasher.finalize())
}

impl WebSecret {
    /// A fresh secret from a CSPRNG.
    pub fn generate(rng: &mut impl CryptoRng) -> WebSecret {
        let mut bytes = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        WebSecret(hex(&bytes))
    }

    /// A presented secret: exactly 64 lowercase hex digits, or nothing (it is never looked up).
    pub fn parse(raw: &str) -> Option<WebSecret> {
        let well_formed = raw.len() == SECRET_LEN
            && raw
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        well_formed.then(|| WebSecret(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored for it.
    pub fn digest(&self) -> WebDigest {
        WebDigest(tagged_digest("patd-web-secret", &self.0))
    }

    /// The CSRF token of the session this secret opens: derived from it, so nothing more is
    /// stored, and unknowable to a page of another origin, which cannot read the cookie.
    pub fn csrf_token(&self) -> String {
        tagged_digest("patd-web-csrf", &self.0)
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        same_token(&self.csrf_token(), presented)
    }
}

/// Whether a presented form token is the expected one, compared in constant time; an empty
/// expected token matches nothing.
pub fn same_token(expected: &str, presented: &str) -> bool {
    !expected.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// How long a sign-in link lives unless told: `patd identity sign-in-link --valid`.
pub const LINK_DEFAULT_VALIDITY: Duration = Duration::minutes(15);
/// The longest a sign-in link may live: it is a password sent in the clear.
pub const LINK_MAX_VALIDITY: Duration = Duration::hours(24);

/// A new sign-in link: the secret goes into the URL printed once, the rest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLink {
    pub digest: WebDigest,
    pub identity_id: IdentityId,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
}

/// Plans a sign-in link for `identity_id`, valid for `valid` (default 15 minutes).
pub fn plan_link(
    identity_id: IdentityId,
    valid: Option<Duration>,
    now: OffsetDateTime,
    rng: &mut impl CryptoRng,
) -> Result<(SignInLink, WebSecret), crate::Rule> {
    let valid = valid.unwrap_or(LINK_DEFAULT_VALIDITY);
    if valid < Duration::seconds(1) || valid > LINK_MAX_VALIDITY {
        return Err(crate::Rule::SignInLinkValidity);
    }
    let secret = WebSecret::generate(rng);
    let now = crate::to_millis(now);
    let link = SignInLink {
        digest: secret.digest(),
        identity_id,
        created: now,
        expires: now + valid,
    };
    Ok((link, secret))
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Link,
    OpenIdConnect,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Link => "link",
            SignInMethod::OpenIdConnect => "oidc",
        }
    }

    pub fn parse(raw: &str) -> Option<SignInMethod> {
        [SignInMethod::Link, SignInMethod::OpenIdConnect]
            .into_iter()
            .find(|method| method.as_str() == raw)
    }
}

/// A signed-in browser, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub digest: WebDigest,
    pub identity_id: IdentityId,
    pub method: SignInMethod,
    pub created: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

/// Plans a session for `identity_id`: the secret goes into the cookie, the rest is stored.
pub fn plan_session(
    identity_id: IdentityId,
    method: SignInMethod,
    now: OffsetDateTime,
    rng: &mut impl CryptoRng,
) -> (Session, WebSecret) {
    let secret = WebSecret::generate(rng);
    let now = crate::to_millis(now);
    let session = Session {
        digest: secret.digest(),
        identity_id,
        method,
        created: now,
        last_seen: now,
    };
    (session, secret)
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Unused this long, a session is over (E12: 8 hours by default).
    pub idle: Duration,
    /// However busy, a session is over this long after it began: a stolen cookie does not
    /// last for ever.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            idle: Duration::hours(8),
            absolute: Duration::days(7),
        }
    }
}

impl SessionPolicy {
    /// The default policy with an idle timeout of `idle`: at least a second, at most the
    /// absolute cap of 7 days (a session cannot idle longer than it may live).
    pub fn with_idle(idle: Duration) -> Result<SessionPolicy, crate::Rule> {
        let policy = SessionPolicy::default();
        if idle < Duration::seconds(1) || idle > policy.absolute {
            return Err(crate::Rule::SessionIdleTimeout);
        }
        Ok(SessionPolicy { idle, ..policy })
    }

    /// Whether `session` still signs its browser in at `now`.
    pub fn is_live(&self, session: &Session, now: OffsetDateTime) -> bool {
        // Checked: a date past the calendar's end is no reason to panic.
        let before = |start: OffsetDateTime, span: Duration| {
            start.checked_add(span).is_none_or(|end| now < end)
        };
        before(session.last_seen, self.idle) && before(session.created, self.absolute)
    }

    /// Whether a use at `now` should be written down: at most once a minute (or once a
    /// hundredth of the idle timeout, when that is shorter), so a busy page costs few writes
    /// and the idle timeout is kept to within that much.
    pub fn touch_due(&self, session: &Session, now: OffsetDateTime) -> bool {
        let step: Duration = (self.idle / 100_i32).min(Duration::minutes(1));
        now - session.last_seen >= step
    }

    /// Sessions whose last use is before this are over at `now`, whatever their start.
    pub fn idle_before(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.checked_sub(self.idle).unwrap_or(now)
    }

    /// Sessions begun before this are over at `now`, however busy.
    pub fn begun_before(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.checked_sub(self.absolute).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn secrets_parse_only_their_own_shape() {
        let secret = WebSecret::generate(&mut rand::rng());
        assert_eq!(WebSecret::parse(secret.as_str()), Some(secret.clone()));
        assert_eq!(WebSecret::parse(&secret.as_str().to_uppercase()), None);
        assert_eq!(WebSecret::parse(&secret.as_str()[1..]), None);
        assert_eq!(WebSecret::parse(""), None);
        assert!(!format!("{secret:?}").contains(secret.as_str()));
        assert_ne!(secret.digest().as_str(), secret.csrf_token());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let one = WebSecret::generate(&mut rand::rng());
        let other = WebSecret::generate(&mut rand::rng());
        assert!(one.csrf_matches(&one.csrf_token()));
        assert!(!one.csrf_matches(&other.csrf_token()));
        assert!(!one.csrf_matches(""));
        assert!(!one.csrf_matches(&one.csrf_token()[1..]));
    }

    #[test]
    fn links_live_within_bounds() {
        let now = datetime!(2026-12-04 10:00 UTC);
        let id = IdentityId::generate(&mut rand::rng());
        let (link, _) = plan_link(id.clone(), None, now, &mut rand::rng()).unwrap();
        assert_eq!(link.expires - link.created, Duration::minutes(15));
        for bad in [Duration::ZERO, Duration::hours(25)] {
            assert_eq!(
                plan_link(id.clone(), Some(bad), now, &mut rand::rng()).unwrap_err(),
                crate::Rule::SignInLinkValidity
            );
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let now = datetime!(2026-12-04 10:00 UTC);
        let policy = SessionPolicy::default();
        let (mut session, _) = plan_session(
            IdentityId::generate(&mut rand::rng()),
            SignInMethod::Link,
            now,
            &mut rand::rng(),
        );
        assert!(policy.is_live(&session, now + Duration::hours(7)));
        assert!(!policy.is_live(&session, now + Duration::hours(8)));
        assert!(!policy.touch_due(&session, now + Duration::seconds(59)));
        assert!(policy.touch_due(&session, now + Duration::seconds(60)));
        session.last_seen = now + Duration::days(7) - Duration::hours(1);
        assert!(policy.is_live(&session, now + Duration::days(7) - Duration::minutes(1)));
        assert!(!policy.is_live(&session, now + Duration::days(7)));
        assert!(SessionPolicy::with_idle(Duration::days(8)).is_err());
        assert!(SessionPolicy::with_idle(Duration::ZERO).is_err());
        assert_eq!(
            SessionPolicy::with_idle(Duration::hours(1)).unwrap().idle,
            Duration::hours(1)
        );
    }
}
