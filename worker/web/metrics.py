"""The HTTP service's metrics: requests by route, method and status, and enqueue latency.

gunicorn runs several processes, and a scrape reaches one of them, so counts are kept in
Redis the way the workers keep theirs (``worker/metrics.py``): one pipelined round trip per
request, made after the answer has gone out, best effort. Any process's ``/metrics`` shows
the totals of all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from cartsync.config.logging import get_logger
from cartsync.worker import keys
from cartsync.worker.metrics import bucket_label
from cartsync.worker.redistext import text

log = get_logger("cartsync.web")

#: Upper bounds (seconds) of the enqueue latency histogram: validation plus one Redis step.
ENQUEUE_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

_SEP = "|"


def _le(bound: float) -> str:
    return repr(float(bound))


class HttpMetrics:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.requests_key = keys.metrics_http_requests(prefix)
        self.enqueue_key = keys.metrics_http_enqueue(prefix)

    def observe(self, route: str, method: str, status: int, enqueue_s: list[float]) -> None:
        """Count one request and the enqueues it made; a Redis failure only loses the count."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.requests_key, _SEP.join((route, method, str(status))), 1)
        for seconds in enqueue_s:
            pipe.hincrby(self.enqueue_key, bucket_label(seconds, ENQUEUE_BUCKETS_S), 1)
            pipe.hincrbyfloat(self.enqueue_key, "sum", seconds)
        try:
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics.observe_failed", exception=type(exc).__name__)


class HttpCollector(Collector):
    def __init__(self, metrics: HttpMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        client = self.metrics.client
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self.metrics.requests_key)
        pipe.hgetall(self.metrics.enqueue_key)
        requests, enqueue = pipe.execute()
        family = CounterMetricFamily(
            "cartsync_http_requests",
            "HTTP requests answered, by route, method and status.",
            labels=["route", "method", "status"],
        )
        for field, count in sorted((text(k), int(v)) for k, v in requests.items()):
            route, method, status = field.rsplit(_SEP, 2)
            family.add_metric([route, method, status], count)
        yield family
        yield _histogram(enqueue)


def _histogram(raw: dict[Any, Any]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "cartsync_http_enqueue_seconds",
        "Time an accepted request's enqueue took: validation and the atomic Redis step.",
    )
    values = {text(k): text(v) for k, v in raw.items()}
    cumulative, buckets = 0, []
    for le in [*(_le(b) for b in ENQUEUE_BUCKETS_S), "+Inf"]:
        cumulative += int(values.get(le, 0))
        buckets.append((le, float(cumulative)))
    family.add_metric([], buckets, float(values.get("sum", 0.0)))
    return family


def registry_for(metrics: HttpMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HttpCollector(metrics))
    return registry
