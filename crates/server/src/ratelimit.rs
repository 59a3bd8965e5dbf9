//! Rate limits (CONTRACT §4): requests per client_id and API version, and failed token exchanges
//! per (client id, client IP) and, for client ids that name no PAT, per client IP; all with
//! governor's GCRA limiter in this process, or, for the per-client limit shared by many nodes,
//! the same GCRA algorithm run atomically inside Redis.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use patd_core::ids::PatId;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// A limit of `requests` per `seconds`, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Off,
    PerWindow { requests: u32, seconds: u32 },
}

impl Limit {
    /// Reads `N/SECONDS` or `off`.
    pub fn parse(raw: &str) -> Result<Limit, String> {
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Limit::Off);
        }
        let (requests, seconds) = raw
            .split_once('/')
            .ok_or_else(|| format!("'{raw}' is not N/SECONDS or off"))?;
        let requests: u32 = requests
            .trim()
            .parse()
            .map_err(|_| format!("'{requests}' is not a number of requests"))?;
        let seconds: u32 = seconds
            .trim()
            .parse()
            .map_err(|_| format!("'{seconds}' is not a number of seconds"))?;
        if requests == 0 || seconds == 0 {
            return Err(format!("'{raw}': both numbers must be positive"));
        }
        Ok(Limit::PerWindow { requests, seconds })
    }

    /// A burst of `requests`, refilled evenly over `seconds`.
    fn quota(self) -> Option<Quota> {
        let Limit::PerWindow { requests, seconds } = self else {
            return None;
        };
        let burst = NonZeroU32::new(requests)?;
        let period = Duration::from_secs(u64::from(seconds)) / requests;
        Quota::with_period(period).map(|quota| quota.allow_burst(burst))
    }
}

/// Refused: try again after this many whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

type Key = (String, &'static str);

/// GCRA in one Lua script (the algorithm of go-redis/redis_rate and redis-cell): the key holds
/// the theoretical arrival time of the next request; the script answers `{allowed, retry_after}`.
const GCRA_SCRIPT: &str = r#"
local burst = tonumber(ARGV[1])
local emission_interval = tonumber(ARGV[2])
local now_parts = redis.call("TIME")
local now = (now_parts[1] - 1700000000) + now_parts[2] / 1000000
local tat = tonumber(redis.call("GET", KEYS[1])) or now
tat = math.max(tat, now)
local new_tat = tat + emission_interval
local allow_at = new_tat - burst * emission_interval
if now < allow_at then
  return {0, tostring(allow_at - now)}
end
redis.call("SET", KEYS[1], tostring(new_tat), "PX", math.ceil((new_tat - now) * 1000) + 1000)
return {1, "0"}
"#;

/// The per-client limit kept in Redis, shared by every node that points at it.
pub struct SharedLimit {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    burst: u32,
    emission_interval: f64,
}

impl SharedLimit {
    /// Connects to Redis; keys are namespaced by `prefix` (the tenant).
    pub async fn connect(
        url: &str,
        prefix: &str,
        limit: Limit,
    ) -> anyhow::Result<Option<SharedLimit>> {
        let Limit::PerWindow { requests, seconds } = limit else {
            return Ok(None);
        };
        // The URL can hold a password: messages name it redacted.
        let shown = patd_store::redact_url(url);
        let client = redis::Client::open(url).map_err(|err| {
            anyhow::anyhow!("the Redis URL {shown} is not valid ({:?})", err.kind())
        })?;
        let connection = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|err| anyhow::anyhow!("connecting to Redis at {shown}: {err}"))?;
        Ok(Some(SharedLimit {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: format!("patd:ratelimit:{prefix}"),
            burst: requests,
            emission_interval: f64::from(seconds) / f64::from(requests),
        }))
    }

    /// Whether Redis answers a PING (readiness).
    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(|err| format!("{:?}", err.kind()))
    }

    async fn check(&self, client_id: &str, version: &str) -> Result<(), RetryAfter> {
        let mut connection = self.connection.clone();
        let key = format!("{}:{version}:{client_id}", self.prefix);
        let answer: redis::RedisResult<(i64, String)> = self
            .script
            .key(key)
            .arg(self.burst)
            .arg(self.emission_interval)
            .invoke_async(&mut connection)
            .await;
        match answer {
            Ok((1, _)) => Ok(()),
            Ok((_, wait)) => Err(retry_after(Duration::from_secs_f64(
                wait.parse().unwrap_or(1.0),
            ))),
            Err(err) => {
                // Losing the limiter must not take the API down with it: let the request through.
                tracing::warn!(error = %err, "the shared rate limit is unreachable; not limiting");
                Ok(())
            }
        }
    }
}

/// The failed-exchange limits in force, as `FailureLimits::resolve` decides them from the
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failed exchanges per (client id, source IP), for client ids that name a PAT.
    pub per_client_and_ip: Limit,
    /// Failed exchanges per source IP with client ids that name no PAT.
    pub unknown_clients_per_ip: Limit,
}

impl FailureLimits {
    /// The default of `--exchange-failure-limit`.
    pub const DEFAULT_PER_CLIENT_AND_IP: Limit = Limit::PerWindow {
        requests: 10,
        seconds: 60,
    };
    /// The default of `--unknown-client-failure-limit`.
    pub const DEFAULT_UNKNOWN_CLIENTS_PER_IP: Limit = Limit::PerWindow {
        requests: 100,
        seconds: 60,
    };

    /// The one place the failure limits are decided: a limit given explicitly is kept; one left
    /// unset takes its default, or is off when the request limit is off (`--rate-limit off`
    /// turns every limit off unless a failure limit is asked for by name).
    pub fn resolve(
        rate_limit: Limit,
        per_client_and_ip: Option<Limit>,
        unknown_clients_per_ip: Option<Limit>,
    ) -> FailureLimits {
        let or_default = |given: Option<Limit>, default: Limit| {
            given.unwrap_or(if rate_limit == Limit::Off {
                Limit::Off
            } else {
                default
            })
        };
        FailureLimits {
            per_client_and_ip: or_default(per_client_and_ip, Self::DEFAULT_PER_CLIENT_AND_IP),
            unknown_clients_per_ip: or_default(
                unknown_clients_per_ip,
                Self::DEFAULT_UNKNOWN_CLIENTS_PER_IP,
            ),
        }
    }
}

/// Whose exchange failed: a PAT that exists, or a well-formed id that names none.
#[derive(Debug, Clone, Copy)]
pub enum FailedClient<'a> {
    Known(&'a PatId),
    Unknown,
}

pub struct RateLimits {
    api: Option<DefaultKeyedRateLimiter<Key>>,
    shared: Option<SharedLimit>,
    /// Failed exchanges per (PAT id, IP). Keyed by the PAT as well as the IP so that one bad
    /// client behind a NAT or a load balancer cannot lock out the good ones beside it; only ids
    /// that name a PAT enter it, so made-up ids cannot grow it.
    failures: Option<DefaultKeyedRateLimiter<(PatId, IpAddr)>>,
    /// Failed exchanges with ids that name no PAT, per IP: a scan of the id space gets 429.
    unknown_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

/// Counts a refusal by the limit named `limit` in the metrics.
fn refused_by(checked: Result<(), RetryAfter>, limit: &'static str) -> Result<(), RetryAfter> {
    if checked.is_err() {
        metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => limit).increment(1);
    }
    checked
}

/// Past this many keys, forget the ones whose limit has fully refilled.
const RETAIN_AFTER: usize = 100_000;

impl RateLimits {
    pub fn new(api: Limit, failures: FailureLimits) -> RateLimits {
        RateLimits {
            api: api.quota().map(RateLimiter::keyed),
            shared: None,
            failures: failures.per_client_and_ip.quota().map(RateLimiter::keyed),
            unknown_failures: failures
                .unknown_clients_per_ip
                .quota()
                .map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// Keeps the per-client limit in Redis instead of in this process.
    pub fn with_shared(mut self, shared: Option<SharedLimit>) -> RateLimits {
        if shared.is_some() {
            self.api = None;
        }
        self.shared = shared;
        self
    }

    /// The shared limit's Redis, when the limit is kept there.
    pub fn shared(&self) -> Option<&SharedLimit> {
        self.shared.as_ref()
    }

    /// Counts one request of `client_id` on `version`.
    pub async fn check_request(
        &self,
        client_id: &str,
        version: &'static str,
    ) -> Result<(), RetryAfter> {
        let checked = if let Some(shared) = &self.shared {
            shared.check(client_id, version).await
        } else {
            match &self.api {
                Some(limiter) => self.check(limiter, &(client_id.to_owned(), version)),
                None => Ok(()),
            }
        };
        refused_by(checked, "request")
    }

    /// Counts a failed exchange of `client` from `ip`: against the (PAT, IP) pair for a PAT that
    /// exists, against the IP for an id that names none. Past the limit the failure is refused
    /// with the wait until the next one would be counted. Only failures are ever checked here,
    /// so a correct secret is never refused by these limits.
    pub fn record_failure(&self, client: FailedClient<'_>, ip: IpAddr) -> Result<(), RetryAfter> {
        match (client, &self.failures, &self.unknown_failures) {
            (FailedClient::Known(pat_id), Some(limiter), _) => refused_by(
                self.check(limiter, &(pat_id.clone(), ip)),
                "exchange_failures",
            ),
            (FailedClient::Unknown, _, Some(limiter)) => {
                refused_by(self.check(limiter, &ip), "unknown_client_failures")
            }
            _ => Ok(()),
        }
    }

    /// One cell of `key`'s budget in `limiter`. A refused check consumes nothing (GCRA in
    /// governor), so refusals never push the wait further out; past `RETAIN_AFTER` keys, the
    /// fully refilled ones are forgotten, which bounds the memory.
    fn check<K>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), RetryAfter>
    where
        K: Clone + Eq + std::hash::Hash,
    {
        if limiter.len() > RETAIN_AFTER {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))
    }
}

fn retry_after(wait: Duration) -> RetryAfter {
    RetryAfter(wait.as_secs_f64().ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("off"), Ok(Limit::Off));
        assert_eq!(
            Limit::parse("100/10"),
            Ok(Limit::PerWindow {
                requests: 100,
                seconds: 10
            })
        );
        assert!(Limit::parse("0/10").is_err());
        assert!(Limit::parse("fast").is_err());
        assert!(Limit::parse("10/x").is_err());
    }

    #[tokio::test]
    async fn the_request_after_the_burst_is_refused_for_whole_seconds() {
        let limits = RateLimits::new(
            Limit::PerWindow {
                requests: 3,
                seconds: 6,
            },
            OFF,
        );
        for _ in 0..3 {
            assert_eq!(limits.check_request("a", "v3").await, Ok(()));
        }
        assert_eq!(limits.check_request("a", "v3").await, Err(RetryAfter(2)));
        // Other keys have their own budget.
        assert_eq!(limits.check_request("a", "beta").await, Ok(()));
        assert_eq!(limits.check_request("b", "v3").await, Ok(()));
    }

    const OFF: FailureLimits = FailureLimits {
        per_client_and_ip: Limit::Off,
        unknown_clients_per_ip: Limit::Off,
    };

    fn per_window(requests: u32, seconds: u32) -> Limit {
        Limit::PerWindow { requests, seconds }
    }

    fn pat(n: u8) -> PatId {
        PatId::parse(&format!("{n:032x}")).unwrap()
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn failures_count_per_pat_and_ip() {
        let limits = RateLimits::new(
            Limit::Off,
            FailureLimits {
                per_client_and_ip: per_window(2, 60),
                unknown_clients_per_ip: Limit::Off,
            },
        );
        let (a, b) = (pat(1), pat(2));
        for _ in 0..2 {
            assert_eq!(limits.record_failure(FailedClient::Known(&a), HOME), Ok(()));
        }
        assert_eq!(
            limits.record_failure(FailedClient::Known(&a), HOME),
            Err(RetryAfter(30))
        );
        // The same PAT from another IP, and another PAT from the same IP, have their own budget.
        assert_eq!(limits.record_failure(FailedClient::Known(&a), AWAY), Ok(()));
        for _ in 0..2 {
            assert_eq!(limits.record_failure(FailedClient::Known(&b), HOME), Ok(()));
        }
        assert!(limits
            .record_failure(FailedClient::Known(&b), HOME)
            .is_err());
        // Unknown ids are not counted here, and their limit is off.
        for _ in 0..10 {
            assert_eq!(limits.record_failure(FailedClient::Unknown, HOME), Ok(()));
        }
        assert!(
            limits.api.is_none() && limits.shared.is_none() && limits.unknown_failures.is_none(),
            "off means off"
        );
    }

    #[test]
    fn unknown_ids_count_per_ip_apart_from_known_pats() {
        let limits = RateLimits::new(
            Limit::Off,
            FailureLimits {
                per_client_and_ip: per_window(1, 60),
                unknown_clients_per_ip: per_window(3, 60),
            },
        );
        for _ in 0..3 {
            assert_eq!(limits.record_failure(FailedClient::Unknown, HOME), Ok(()));
        }
        assert_eq!(
            limits.record_failure(FailedClient::Unknown, HOME),
            Err(RetryAfter(20))
        );
        assert_eq!(limits.record_failure(FailedClient::Unknown, AWAY), Ok(()));
        // A known PAT's failures from the limited IP still have their own budget.
        assert_eq!(
            limits.record_failure(FailedClient::Known(&pat(1)), HOME),
            Ok(())
        );
    }

    #[test]
    fn refused_failures_do_not_push_the_wait_further_out() {
        let limits = RateLimits::new(
            Limit::Off,
            FailureLimits {
                per_client_and_ip: per_window(2, 60),
                unknown_clients_per_ip: per_window(2, 60),
            },
        );
        let a = pat(1);
        for client in [FailedClient::Known(&a), FailedClient::Unknown] {
            for _ in 0..2 {
                assert_eq!(limits.record_failure(client, HOME), Ok(()));
            }
            // Were a refusal counted, a thousand of them would put the next allowed failure hours
            // away; the wait stays one emission interval (60 s / 2).
            for _ in 0..1000 {
                let RetryAfter(wait) = limits.record_failure(client, HOME).unwrap_err();
                assert!((1..=30).contains(&wait), "{wait}");
            }
        }
    }

    #[test]
    fn with_everything_off_no_failure_is_refused() {
        let limits = RateLimits::new(Limit::Off, OFF);
        for _ in 0..100 {
            assert_eq!(
                limits.record_failure(FailedClient::Known(&pat(1)), HOME),
                Ok(())
            );
            assert_eq!(limits.record_failure(FailedClient::Unknown, HOME), Ok(()));
        }
    }

    #[test]
    fn unset_failure_limits_follow_the_request_limit() {
        let check = |rate_limit, given: (Option<Limit>, Option<Limit>), want: (Limit, Limit)| {
            assert_eq!(
                FailureLimits::resolve(rate_limit, given.0, given.1),
                FailureLimits {
                    per_client_and_ip: want.0,
                    unknown_clients_per_ip: want.1
                },
                "{rate_limit:?} {given:?}"
            );
        };
        let on = per_window(100, 10);
        let defaults = (
            FailureLimits::DEFAULT_PER_CLIENT_AND_IP,
            FailureLimits::DEFAULT_UNKNOWN_CLIENTS_PER_IP,
        );
        assert_eq!(defaults, (per_window(10, 60), per_window(100, 60)));
        check(on, (None, None), defaults);
        check(Limit::Off, (None, None), (Limit::Off, Limit::Off));
        check(
            Limit::Off,
            (Some(per_window(3, 60)), None),
            (per_window(3, 60), Limit::Off),
        );
        check(
            Limit::Off,
            (None, Some(per_window(5, 60))),
            (Limit::Off, per_window(5, 60)),
        );
        check(on, (Some(Limit::Off), None), (Limit::Off, defaults.1));
    }
}
