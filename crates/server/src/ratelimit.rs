//! Rate limits (CONTRACT §4): requests per client_id and API version, and failed token exchanges
//! per client IP, both with governor's GCRA limiter in this process; or, for the per-client limit
//! shared by many nodes, the same GCRA algorithm run atomically inside Redis.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

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
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client).await?;
        Ok(Some(SharedLimit {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: format!("patd:ratelimit:{prefix}"),
            burst: requests,
            emission_interval: f64::from(seconds) / f64::from(requests),
        }))
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

pub struct RateLimits {
    api: Option<DefaultKeyedRateLimiter<Key>>,
    shared: Option<SharedLimit>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// IPs that used up their failures, and until when they are refused.
    blocked: Cache<IpAddr, Instant>,
    clock: DefaultClock,
}

/// Past this many keys, forget the ones whose limit has fully refilled.
const RETAIN_AFTER: usize = 100_000;

impl RateLimits {
    pub fn new(api: Limit, exchange_failures: Limit) -> RateLimits {
        RateLimits {
            api: api.quota().map(RateLimiter::keyed),
            shared: None,
            failures: exchange_failures.quota().map(RateLimiter::keyed),
            blocked: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
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

    /// Counts one request of `client_id` on `version`.
    pub async fn check_request(
        &self,
        client_id: &str,
        version: &'static str,
    ) -> Result<(), RetryAfter> {
        if let Some(shared) = &self.shared {
            return shared.check(client_id, version).await;
        }
        let Some(limiter) = &self.api else {
            return Ok(());
        };
        if limiter.len() > RETAIN_AFTER {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(client_id.to_owned(), version))
            .map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))
    }

    /// Refuses an IP that has failed too many exchanges lately.
    pub fn check_blocked(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        match self.blocked.get(&ip) {
            Some(until) if until > Instant::now() => Err(retry_after(until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a failed exchange from `ip`; past the limit the IP is refused until it refills.
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.failures else {
            return Ok(());
        };
        if limiter.len() > RETAIN_AFTER {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            self.blocked.insert(ip, Instant::now() + wait);
            retry_after(wait)
        })
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
            Limit::Off,
        );
        for _ in 0..3 {
            assert_eq!(limits.check_request("a", "v3").await, Ok(()));
        }
        assert_eq!(limits.check_request("a", "v3").await, Err(RetryAfter(2)));
        // Other keys have their own budget.
        assert_eq!(limits.check_request("a", "beta").await, Ok(()));
        assert_eq!(limits.check_request("b", "v3").await, Ok(()));
    }

    #[test]
    fn failures_block_an_ip() {
        let limits = RateLimits::new(
            Limit::Off,
            Limit::PerWindow {
                requests: 2,
                seconds: 60,
            },
        );
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(limits.check_blocked(ip), Ok(()));
        assert_eq!(limits.record_failure(ip), Ok(()));
        assert_eq!(limits.record_failure(ip), Ok(()));
        assert!(limits.record_failure(ip).is_err());
        assert!(limits.check_blocked(ip).is_err());
        assert!(
            limits.api.is_none() && limits.shared.is_none(),
            "off means off"
        );
    }
}
