"""The /metrics page read by Prometheus's own Python client (prometheus-client's parser), after
the SDK checks have driven the server: every series E3 lists is there, typed, and consistent."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from common import URL, check, finish

with urllib.request.urlopen(f"{URL}/metrics") as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode()

families = {family.name: family for family in text_string_to_metric_families(text)}


def samples(name, **labels):
    """The samples of `name` whose labels include `labels`."""
    return [
        sample
        for family in families.values()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


@check("the page is Prometheus text format 0.0.4")
def _():
    assert content_type.startswith("text/plain; version=0.0.4"), content_type


@check("requests by route template, method and status are counters")
def _():
    assert families["patd_http_requests"].type == "counter"
    ok = samples("patd_http_requests_total", route="/oauth/token", method="POST", status="200")
    assert ok and ok[0].value > 0, ok
    routes = {s.labels["route"] for s in samples("patd_http_requests_total")}
    assert all(route.startswith("/") or route == "unmatched" for route in routes), routes


@check("latency is a histogram by route with cumulative buckets")
def _():
    family = families["patd_http_request_duration_seconds"]
    assert family.type == "histogram"
    buckets = samples("patd_http_request_duration_seconds_bucket", route="/oauth/token")
    values = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
    assert values == sorted(values) and values, values
    count = samples("patd_http_request_duration_seconds_count", route="/oauth/token")[0].value
    assert values[-1] == count


@check("exchanges by outcome, cache hits and misses, refusals")
def _():
    for outcome in ("ok", "invalid_client", "rate_limited"):
        assert samples("patd_token_exchanges_total", outcome=outcome), outcome
    assert samples("patd_token_exchanges_total", outcome="ok")[0].value > 0
    assert families["patd_pat_cache_hits"].type == "counter"
    assert families["patd_pat_cache_misses"].type == "counter"


@check("gauges: lastUsed queue, outbox, database pool, build info")
def _():
    for name in ("patd_last_used_writes_pending", "patd_outbox_queue_depth", "patd_build_info"):
        assert families[name].type == "gauge", name
    assert samples("patd_db_pool_connections", state="idle")
    assert samples("patd_db_pool_connections", state="in_use")
    assert samples("patd_outbox_deliveries_total", outcome="delivered")
    assert samples("patd_build_info")[0].value == 1


finish()
