//! The Prometheus series of EXTENSIONS E3: their names, the process-wide recorder, and the
//! scrape, which reads the gauges (queues, pools) from the state when it is asked for them.
//!
//! Counters are bumped where things happen (the request log, the exchange, the PAT cache, the
//! rate limits); gauges that describe the state are read only at scrape time, so that keeping
//! them costs the request path nothing.

use crate::state::AppState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Requests by route template, method and status.
pub const REQUESTS: &str = "patd_http_requests_total";
/// Request latency by route template, in seconds.
pub const LATENCY: &str = "patd_http_request_duration_seconds";
/// Token exchanges by outcome: `ok`, `invalid_client`, `rate_limited`, `invalid_request`.
pub const EXCHANGES: &str = "patd_token_exchanges_total";
/// PAT cache lookups that found the record in memory, and those that read the database.
pub const CACHE_HITS: &str = "patd_pat_cache_hits_total";
pub const CACHE_MISSES: &str = "patd_pat_cache_misses_total";
/// Database reads that served the misses: one read serves every miss queued when it starts.
pub const CACHE_READS: &str = "patd_pat_cache_reads_total";
/// Requests refused by a rate limit, by limit: `request`, `exchange_failures`,
/// `unknown_client_failures`.
pub const RATE_LIMITED: &str = "patd_rate_limit_refusals_total";
const LAST_USED_PENDING: &str = "patd_last_used_writes_pending";
const OUTBOX_DELIVERIES: &str = "patd_outbox_deliveries_total";
const OUTBOX_DEPTH: &str = "patd_outbox_queue_depth";
const POOL: &str = "patd_db_pool_connections";
const BUILD: &str = "patd_build_info";

/// Latency buckets in seconds: an exchange answers in well under a millisecond, a list over a
/// million PATs in tens of milliseconds, a stalled database in seconds.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The process's recorder, installed by the first server state built in it. One process holds
/// one set of series, as Prometheus scrapes a process; tests that run several nodes in one
/// process see their sums.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_owned()), &BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Histogram samples wait in the recorder until upkeep folds them into their buckets:
        // without a scrape they would grow with every request.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("patd-metrics-upkeep".to_owned())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "no metrics upkeep thread: latency samples wait for scrapes");
        }
        // Another recorder already installed (an embedding program's) keeps its place; this
        // handle then renders an empty page rather than failing the server.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "HTTP requests by route template, method and status"
    );
    metrics::describe_histogram!(
        LATENCY,
        metrics::Unit::Seconds,
        "HTTP request latency by route template"
    );
    metrics::describe_counter!(EXCHANGES, "Token exchanges by outcome");
    metrics::describe_counter!(CACHE_HITS, "PAT lookups answered from memory");
    metrics::describe_counter!(CACHE_MISSES, "PAT lookups that read the database");
    metrics::describe_counter!(
        CACHE_READS,
        "Database reads of PATs for the misses (one read serves many)"
    );
    metrics::describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit");
    metrics::describe_gauge!(
        LAST_USED_PENDING,
        "lastUsed writes queued and not yet stored"
    );
    metrics::describe_counter!(OUTBOX_DELIVERIES, "Outbox deliveries by outcome");
    metrics::describe_gauge!(OUTBOX_DEPTH, "Outbox entries waiting for delivery");
    metrics::describe_gauge!(POOL, "Database connections by state (in_use, idle)");
    metrics::describe_gauge!(BUILD, "Always 1; the version is a label");
    metrics::gauge!(BUILD, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Series that exist from the start, so that alerts on them have something to read before
    // the first event: exchanges and refusals at zero, and the outbox, which has no deliveries
    // to make until webhooks exist.
    for outcome in Exchange::ALL {
        metrics::counter!(EXCHANGES, "outcome" => outcome.label()).absolute(0);
    }
    for outcome in ["delivered", "retry", "failed"] {
        metrics::counter!(OUTBOX_DELIVERIES, "outcome" => outcome).absolute(0);
    }
    metrics::gauge!(OUTBOX_DEPTH).set(0.0);
    metrics::counter!(CACHE_HITS).absolute(0);
    metrics::counter!(CACHE_MISSES).absolute(0);
    metrics::counter!(CACHE_READS).absolute(0);
}

/// The exposition text: the gauges read from `state` now, then every series.
pub fn render(state: &AppState) -> String {
    let handle = install();
    metrics::gauge!(LAST_USED_PENDING).set(state.last_used.pending() as f64);
    let pools = state.store.pool_stats();
    metrics::gauge!(POOL, "state" => "in_use").set(f64::from(pools.in_use));
    metrics::gauge!(POOL, "state" => "idle").set(f64::from(pools.idle));
    handle.render()
}

/// Hot counters without labels that vary per request, looked up in the registry once.
struct Hot {
    cache_hits: metrics::Counter,
    cache_misses: metrics::Counter,
    cache_reads: metrics::Counter,
    /// By `Exchange as usize`.
    exchanges: [metrics::Counter; 4],
}

fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| {
        install();
        Hot {
            cache_hits: metrics::counter!(CACHE_HITS),
            cache_misses: metrics::counter!(CACHE_MISSES),
            cache_reads: metrics::counter!(CACHE_READS),
            exchanges: Exchange::ALL
                .map(|outcome| metrics::counter!(EXCHANGES, "outcome" => outcome.label())),
        }
    })
}

/// How a token exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exchange {
    Ok,
    InvalidClient,
    RateLimited,
    InvalidRequest,
}

impl Exchange {
    const ALL: [Exchange; 4] = [
        Exchange::Ok,
        Exchange::InvalidClient,
        Exchange::RateLimited,
        Exchange::InvalidRequest,
    ];

    fn label(self) -> &'static str {
        match self {
            Exchange::Ok => "ok",
            Exchange::InvalidClient => "invalid_client",
            Exchange::RateLimited => "rate_limited",
            Exchange::InvalidRequest => "invalid_request",
        }
    }
}

/// Counts one token exchange.
pub(crate) fn exchange(outcome: Exchange) {
    hot().exchanges[outcome as usize].increment(1);
}

/// Counts one database read of the PATs that missed the cache.
pub(crate) fn pat_read() {
    hot().cache_reads.increment(1);
}

/// One delivery attempt's outcome: `delivered`, `retry` or `failed`.
pub(crate) fn delivery(outcome: &'static str) {
    metrics::counter!(OUTBOX_DELIVERIES, "outcome" => outcome).increment(1);
}

/// How many deliveries the last round of this node found due.
pub(crate) fn outbox_depth(due: usize) {
    metrics::gauge!(OUTBOX_DEPTH).set(due as f64);
}

/// Counts one PAT lookup, answered from memory or not.
pub(crate) fn pat_cache(hit: bool) {
    let hot = hot();
    if hit {
        hot.cache_hits.increment(1);
    } else {
        hot.cache_misses.increment(1);
    }
}

/// A route template as a label: each distinct template (a finite set: the routes) is kept once
/// for the life of the process, so that labels and log fields borrow it with no allocation per
/// request. Paths no route has are one label, `unmatched`, so made-up paths cannot grow it.
pub(crate) fn route_label(route: Option<&str>) -> &'static str {
    type Interned = std::sync::RwLock<HashMap<String, &'static str>>;
    static ROUTES: OnceLock<Interned> = OnceLock::new();
    let Some(route) = route else {
        return "unmatched";
    };
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(label) = routes
        .read()
        .ok()
        .and_then(|known| known.get(route).copied())
    {
        return label;
    }
    let Ok(mut known) = routes.write() else {
        return "unmatched";
    };
    if let Some(label) = known.get(route) {
        return label;
    }
    let label: &'static str = Box::leak(route.to_owned().into_boxed_str());
    known.insert(route.to_owned(), label);
    label
}

/// The request counter and latency histogram of one (route, method, status), looked up once.
#[derive(Clone)]
struct RequestSeries {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

type SeriesKey = (&'static str, &'static str, &'static str);

/// Counts one answered request. The handles are kept per (route, method, status), a small
/// finite set, so the hot path is one read-locked lookup and two atomic updates instead of a
/// registry search with label allocations.
pub(crate) fn request(route: &'static str, method: &axum::http::Method, status: u16, seconds: f64) {
    static SERIES: OnceLock<std::sync::RwLock<HashMap<SeriesKey, RequestSeries>>> = OnceLock::new();
    let key = (route, known_method(method), status_label(status));
    let series = SERIES.get_or_init(Default::default);
    let found = series
        .read()
        .ok()
        .and_then(|known| known.get(&key).cloned());
    let found = match found {
        Some(found) => found,
        None => {
            let made = RequestSeries {
                requests: metrics::counter!(REQUESTS, "route" => key.0, "method" => key.1, "status" => key.2),
                latency: metrics::histogram!(LATENCY, "route" => key.0),
            };
            if let Ok(mut known) = series.write() {
                known.insert(key, made.clone());
            }
            made
        }
    };
    found.requests.increment(1);
    found.latency.record(seconds);
}

/// The method as a label from a fixed set: a client can send any token as a method.
fn known_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The status as a static label, without formatting a number per request.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        100..=299 => "2xx",
        300..=399 => "3xx",
        402..=499 => "4xx",
        _ => "5xx",
    }
}
