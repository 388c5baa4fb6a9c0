"""The HTTP service's metrics: requests by route, method and status, and enqueue latency.

gunicorn runs several processes, and a scrape reaches one of them, so counts are kept in
Redis the way the workers keep theirs (``worker/metrics.py``). A request only adds to counts
in its process's memory; a thread of the process writes what has gathered to Redis every
:data:`FLUSH_INTERVAL_S` in one pipelined round trip, best effort (a process killed outright
loses at most that much counting, never an update). Any process's ``/metrics`` shows the
totals of all of them, and ``cartsync metrics`` too (``worker/metrics.py``).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import Counter

import redis
from prometheus_client.registry import CollectorRegistry

from cartsync.config.logging import get_logger
from cartsync.worker import keys
from cartsync.worker.metrics import HTTP_ENQUEUE_BUCKETS_S, HttpCollector, bucket_label

log = get_logger("cartsync.web")

#: Seconds between two writes of a process's gathered counts to Redis.
FLUSH_INTERVAL_S = 0.5

_SEP = "|"


class HttpMetrics:
    """Counts of one process, gathered in memory and written to Redis by a thread of its own
    (started with the first count, so in the process that counts: after gunicorn's fork)."""

    def __init__(
        self, client: redis.Redis, prefix: str, interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        self.client = client
        self.prefix = prefix
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
                self._buckets[bucket_label(seconds, HTTP_ENQUEUE_BUCKETS_S)] += 1
                self._sum += seconds
            if self._flusher_pid != os.getpid():
                self._flusher_pid = os.getpid()
                flusher = threading.Thread(
                    target=self._flush_forever, name="http-metrics", daemon=True
                )
                flusher.start()
                atexit.register(self.flush)  # a process stopping writes what it gathered

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.interval_s)
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


def registry_for(metrics: HttpMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HttpCollector(metrics.client, metrics.prefix))
    return registry
