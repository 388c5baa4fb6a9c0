"""The HTTP service's metrics: requests by route, method and status, and enqueue latency.

gunicorn runs several processes, and a scrape reaches one of them, so counts are kept in
Redis the way the workers keep theirs (``worker/metrics.py``). A request only adds to counts
in its process's memory; a thread of the process writes what has gathered to Redis every
:data:`FLUSH_INTERVAL_S` in one pipelined round trip, best effort (a process killed outright
loses at most that much counting, never an update). Any process's ``/metrics`` shows the
totals of all of them, and ``cartsync metrics`` too (``worker/metrics.py``).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
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

#: Seconds between two writes of a process's gathered counts to Redis.
FLUSH_INTERVAL_S = 0.5

_SEP = "|"


def _le(bound: float) -> str:
    return repr(float(bound))


class HttpMetrics:
    """Counts of one process, gathered in memory and written to Redis by a thread of its own
    (started with the first count, so in the process that counts: after gunicorn's fork)."""

    def __init__(
        self, client: redis.Redis, prefix: str, interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        self.client = client
        self.requests_key = keys.metrics_http_requests(prefix)
        self.enqueue_key = keys.metrics_http_enqueue(prefix)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._buckets: Counter[str] = Counter()
        self._sum = 0.0
        self._flusher_pid: int | None = None

    def observe(self, route: str, method: str, status: int, enqueue_s: list[float]) -> None:
        """Count one request and the enqueues it made (in memory: no round trip)."""
        with self._lock:
            self._requests[_SEP.join((route, method, str(status)))] += 1
            for seconds in enqueue_s:
                self._buckets[bucket_label(seconds, ENQUEUE_BUCKETS_S)] += 1
                self._sum += seconds
            if self._flusher_pid != os.getpid():
                self._flusher_pid = os.getpid()
                flusher = threading.Thread(
                    target=self._flush_forever, name="http-metrics", daemon=True
                )
                flusher.start()

    def _flush_forever(self) -> None:
        while True:
            threading.Event().wait(self.interval_s)
            self.flush()

    def flush(self) -> None:
        """Write the counts gathered so far to Redis; a Redis failure loses them (counting
        must never hold up answers nor grow without bound)."""
        with self._lock:
            requests, buckets, total = self._requests, self._buckets, self._sum
            self._requests, self._buckets, self._sum = Counter(), Counter(), 0.0
        if not requests and not buckets:
            return
        pipe = self.client.pipeline(transaction=False)
        for field, count in requests.items():
            pipe.hincrby(self.requests_key, field, count)
        for label, count in buckets.items():
            pipe.hincrby(self.enqueue_key, label, count)
        if buckets:
            pipe.hincrbyfloat(self.enqueue_key, "sum", total)
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
