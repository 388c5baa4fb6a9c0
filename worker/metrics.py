"""Prometheus metrics that add up across worker processes and machines.

Workers do not serve metrics themselves: a worker is many processes (prefork) on many
machines, and per-process counters would need a scrape target each plus a multiprocess
directory per machine. Instead each update's outcome is counted into Redis, the one place
every worker already shares (:class:`Metrics`), and one
``cartsync metrics`` process serves them, together with live gauges read at scrape time
(:class:`CartsyncCollector`). Counters in Redis survive worker restarts, so Prometheus'
``rate()`` sees no resets when a worker is replaced.

Keys (``{prefix}:metrics:...``, named in ``worker/keys.py``):

- ``updates``: field ``{outcome}|{reason}`` -> count (reason empty when there is none);
- ``attempts``: field ``total`` -> calls made to seQura;
- ``latency``: fields ``{status_class}|{le}`` (one per bucket, not cumulative; the count is
  their sum, so it always agrees with the buckets) and ``{status_class}|sum``;
- ``dropped``: field ``{queue}`` -> Celery messages dropped because they did not decode
  (``worker/celeryapp.py``);
- ``merchant_updates``: field ``{outcome}|{reason}|{merchant}`` -> updates sent to seQura, the
  merchant being a configured one or ``other`` (:data:`OTHER_MERCHANT`);
- ``delivery``: fields ``{le}`` and ``sum``: the enqueue-to-delivered histogram, like
  ``latency``;
- ``dlq_actions``: field ``{action}|{result}`` -> dead letters acted on (replayed, edited,
  dropped, purged, imported, revealed), counted by the store with their audit entries
  (``worker/deadletters/audit.py``);
- ``log``: a list of counts not yet added to ``updates``, ``attempts``, ``latency``,
  ``merchant_updates`` and ``delivery``. A worker counts an outcome it records in the ledger's
  step script as one entry there (:func:`log_entry`), one command instead of one per
  counter; the script folds the list into the hashes every ``METRICS_LOG_FOLD_AT``
  entries (``worker/ledger.py``, ``worker/lua/_metrics_log.lua``). Other outcomes are
  counted into the hashes directly (:meth:`Metrics.observe`). The collector reads hashes and
  list in one transaction (:func:`with_log`).

Live gauges besides :func:`cartsync.worker.health.take_snapshot`'s: the queue latency (how
long the oldest due update has been due), the age of the oldest update in flight, and the
workers alive (each worker's pump writes a heartbeat, ``worker/schedule.py``).

How long a message waits in the Celery queue itself is not measured: Celery's messages carry
no time of publishing, and reading the oldest message of the list at each scrape would decode
a payload-sized body. The oldest in-flight entry stands for it (it was handed to the queue
when published, and stays in flight until a worker has finished it).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from cartsync.config.logging import get_logger
from cartsync.config.settings import Settings
from cartsync.worker import keys
from cartsync.worker.health import WORKER_ALIVE_S as WORKER_ALIVE_S
from cartsync.worker.health import alive_window_s as alive_window_s
from cartsync.worker.health import take_snapshot
from cartsync.worker.redistext import text
from cartsync.worker.schedule import Schedule, watch_s
from cartsync.worker.versions import versions

log = get_logger("cartsync.metrics")

#: Upper bounds (seconds) of the seQura latency histogram's buckets. The read timeout
#: defaults to 20 s, so the last finite bucket catches calls that ran into it.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
)  # fmt: skip

#: Status classes of the latency histogram; ``error`` is a call that got no answer.
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")

#: Upper bounds (seconds) of the enqueue-to-delivered histogram: from an update sent at once to
#: one delivered after hours of retries (the retry window defaults to six hours).
DELIVERY_BUCKETS_S: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
    7200.0, 21600.0, 86400.0,
)  # fmt: skip

#: The merchant label of every merchant-ref that is not a configured account. Each label value
#: is a time series in Prometheus per outcome and reason: a label taken from whatever ref a
#: producer sends would let one bad producer (or a single-merchant set-up, where any ref goes)
#: create series without end. Configured accounts are few and chosen by the operator.
OTHER_MERCHANT = "other"


_SEP = "|"

#: The metrics hashes a log entry numbers (``keys.metrics_log_hashes``), from 1 as in Lua.
UPDATES, ATTEMPTS, LATENCY, MERCHANT_UPDATES, DELIVERY = 1, 2, 3, 4, 5
#: (hash number, field, amount) of one count.
Increment = tuple[int, str, int | float]


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx`` for an HTTP status, ``error`` when no answer came."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def bucket_label(latency_s: float, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> str:
    """The ``le`` label of the first bucket that holds ``latency_s`` (``+Inf`` past the last)."""
    for bound in buckets:
        if latency_s <= bound:
            return _le(bound)
    return "+Inf"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def merchant_label(merchant: str, configured: frozenset[str]) -> str:
    """The merchant label value of ``merchant``: itself when configured, else ``other``
    (:data:`OTHER_MERCHANT` says why)."""
    return merchant if merchant in configured else OTHER_MERCHANT


class Metrics:
    """Counts each update's outcome into Redis; safe to share between a worker's threads."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        merchants: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``merchants``: the configured merchant-refs, the only ones labelled by name."""
        self.client = client
        self.merchants = frozenset(merchants)
        self.clock = clock
        self.dropped_key = keys.metrics_dropped(prefix)
        #: The hashes a log entry numbers, in order (:data:`UPDATES` ...).
        self.log_hashes = keys.metrics_log_hashes(prefix)
        #: The list of entries not yet folded into them (``worker/lua/_metrics_log.lua``).
        self.log_key = keys.metrics_log(prefix)

    def count_dropped(self, queue: str) -> None:
        """Count one message dropped from ``queue`` because it did not decode; best effort,
        like :meth:`observe`."""
        try:
            self.client.hincrby(self.dropped_key, queue, 1)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics.observe_failed", exception=type(exc).__name__)

    def observe(
        self,
        outcome: str,
        reason: str | None,
        status: int | None,
        latency_ms: float | None,
    ) -> None:
        """Count one processed update; ``latency_ms`` is given when a call to seQura was made.

        Counting is best effort: when Redis refuses, the count is lost and a warning logged,
        but the update's own outcome (already decided and recorded) is not disturbed.
        """
        pipe = self.client.pipeline(transaction=False)
        self.count_into(pipe, self.increments(outcome, reason, status, latency_ms))
        try:
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics.observe_failed", exception=type(exc).__name__)

    def count_into(self, pipe: redis.client.Pipeline, increments: list[Increment]) -> None:
        """Add the counting of ``increments`` (:meth:`increments`) to ``pipe``, to ride in a
        round trip made anyway."""
        for number, field, amount in increments:
            key = self.log_hashes[number - 1]
            if isinstance(amount, int):
                pipe.hincrby(key, field, amount)
            else:
                pipe.hincrbyfloat(key, field, amount)

    def totals(self) -> Totals:
        """The logged hashes with the log's entries not yet folded added (:func:`with_log`),
        read in one transaction: a fold between reading the log and the hashes would count
        its entries twice or not at all."""
        pipe = self.client.pipeline(transaction=True)
        for key in self.log_hashes:
            pipe.hgetall(key)
        pipe.lrange(self.log_key, 0, -1)
        *hashes, entries = pipe.execute()
        return Totals(*with_log(hashes, entries))

    def increments(
        self,
        outcome: str,
        reason: str | None,
        status: int | None,
        latency_ms: float | None,
        *,
        merchant: str | None = None,
        enqueued_at: float | None = None,
    ) -> list[Increment]:
        """What one update adds to the metrics: (hash number in :data:`log_hashes`, from 1;
        field; amount). Counts are ints, sums of seconds floats.

        With ``merchant`` the update also counts by merchant (:func:`merchant_label`); with
        ``enqueued_at`` (when it was first enqueued, seconds since the epoch) a delivery also
        counts in the enqueue-to-delivered histogram. Counted into Redis by
        :meth:`count_into`, or as one entry of the metrics log (:func:`log_entry`).
        """
        found: list[Increment] = [(UPDATES, f"{outcome}{_SEP}{reason or ''}", 1)]
        if merchant is not None:
            label = merchant_label(merchant, self.merchants)
            found.append((MERCHANT_UPDATES, _SEP.join((outcome, reason or "", label)), 1))
        if enqueued_at is not None and outcome == "delivered":
            waited_s = max(0.0, self.clock() - enqueued_at)
            found.append((DELIVERY, bucket_label(waited_s, DELIVERY_BUCKETS_S), 1))
            found.append((DELIVERY, "sum", waited_s))
        if latency_ms is not None:
            group = status_class(status)
            latency_s = max(0.0, latency_ms / 1000.0)
            found.append((ATTEMPTS, "total", 1))
            found.append((LATENCY, f"{group}{_SEP}{bucket_label(latency_s)}", 1))
            found.append((LATENCY, f"{group}{_SEP}sum", latency_s))
        return found


def log_entry(increments: list[Increment]) -> str:
    """``increments`` as one entry of the metrics log, which a Lua script appends in the step
    that records the outcome (``worker/lua/_metrics_log.lua``, run by ``Ledger.step``)."""
    return json.dumps(increments, separators=(",", ":"))


class Totals(NamedTuple):
    """The counters of the logged hashes (``keys.metrics_log_hashes``), field -> text."""

    updates: dict[str, str]
    attempts: dict[str, str]
    latency: dict[str, str]
    merchant_updates: dict[str, str]
    delivery: dict[str, str]


def with_log(hashes: Sequence[dict[Any, Any]], entries: Iterable[Any]) -> list[dict[str, str]]:
    """The metrics hashes (in :attr:`Metrics.log_hashes` order) with the log's entries not yet
    folded into them added, as the log script folds them (``worker/lua/_metrics_log.lua``):
    each field's entries summed from 0 in order, then added to the hash's value, so that a sum
    of seconds reads the same to the last bit just before and just after a fold (a counter
    that read lower after a fold would look like a reset to Prometheus). What the script
    leaves out (an entry or item that does not read), this leaves out too."""
    totals = [{text(k): text(v) for k, v in h.items()} for h in hashes]
    pending: dict[tuple[int, str], int | float] = {}
    for entry in entries:
        try:
            items = json.loads(entry)
        except ValueError:
            continue
        for item in items if isinstance(items, list) else []:
            if _readable(item, len(totals)):
                number, field, amount = item
                pending[number, field] = pending.get((number, field), 0) + amount
    for (number, field), amount in pending.items():
        target = totals[number - 1]
        target[field] = str(_number(target.get(field, "0")) + amount)
    return totals


def _readable(item: Any, hashes: int) -> bool:
    if not (isinstance(item, list) and len(item) == 3):
        return False
    number, field, amount = item
    return (
        type(number) is int
        and 1 <= number <= hashes
        and isinstance(field, str)
        and type(amount) in (int, float)
    )


def _number(value: str) -> int | float:
    try:
        return int(value)
    except ValueError:
        return float(value)


class CartsyncCollector(Collector):
    """Reads the counters every worker keeps in Redis, plus live gauges, at each scrape."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.counted = Metrics(client, settings.key_prefix)
        self.dropped_key = self.counted.dropped_key
        self.actions_key = keys.metrics_dlq_actions(settings.key_prefix)

    def collect(self) -> Iterator[Metric]:
        yield build_info()
        try:
            updates, attempts_hash, latency, by_merchant, delivery = self.counted.totals()
            attempts = attempts_hash.get("total")
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.dropped_key)
            pipe.hgetall(self.actions_key)
            dropped, actions = pipe.execute()
            now = self.clock()
            snapshot = take_snapshot(self.client, self.settings, clock=lambda: now)
            live = _live(self.client, self.settings, now)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics.scrape_failed", exception=type(exc).__name__)
            yield _gauge("cartsync_redis_up", "1 when Redis answered this scrape, else 0.", 0)
            return
        yield _gauge("cartsync_redis_up", "1 when Redis answered this scrape, else 0.", 1)
        yield from _updates(updates)
        yield CounterMetricFamily(
            "cartsync_attempts",
            "Calls made to seQura's Order Update API, retries included.",
            value=int(attempts or 0),
        )
        yield _latency(latency)
        lost = CounterMetricFamily(
            "cartsync_broker_messages_dropped",
            "Celery messages a worker dropped because they did not decode, by queue.",
            labels=["queue"],
        )
        for queue, count in sorted((text(k), int(v)) for k, v in dropped.items()):
            lost.add_metric([queue], count)
        yield lost
        dead = GaugeMetricFamily(
            "cartsync_dead_letters", "Dead letters waiting, by reason.", labels=["reason"]
        )
        for reason, count in sorted(snapshot.dead_by_reason.items()):
            dead.add_metric([reason], count)
        yield dead
        yield _gauge(
            "cartsync_dead_letter_oldest_age_seconds",
            "Age of the oldest dead letter in seconds; 0 when there is none.",
            snapshot.oldest_dead_age_s or 0.0,
        )
        yield _gauge(
            "cartsync_queue_depth",
            "Tasks waiting in the Celery queue, each carrying one or more updates.",
            snapshot.queue_depth,
        )
        yield _gauge(
            "cartsync_scheduled",
            "Updates waiting in the schedule (new ones, retries, deferrals), due or not.",
            snapshot.scheduled,
        )
        yield _gauge(
            "cartsync_scheduled_due",
            "Updates in the schedule that are due now: the backlog the workers have to catch up.",
            snapshot.due,
        )
        yield _gauge(
            "cartsync_in_flight",
            "Updates handed to the queue whose attempt has not finished yet.",
            snapshot.in_flight,
        )
        yield from _merchant_updates(by_merchant)
        yield _delivery(delivery)
        yield from _actions(actions)
        yield _gauge(
            "cartsync_queue_latency_seconds",
            "How long the oldest due update in the schedule has been due; 0 when none is.",
            live.queue_latency_s,
        )
        yield _gauge(
            "cartsync_in_flight_oldest_age_seconds",
            "Time since the oldest update in flight was handed to the Celery queue; 0 when none.",
            live.oldest_in_flight_s,
        )
        yield _gauge(
            "cartsync_workers_alive",
            "Workers whose schedule pump sent a heartbeat recently.",
            live.workers,
        )


@dataclass(frozen=True)
class Live:
    """The live gauges of the schedule that :class:`~cartsync.worker.health.Snapshot` lacks."""

    queue_latency_s: float
    oldest_in_flight_s: float
    workers: int


def _live(client: redis.Redis, settings: Settings, now: float) -> Live:
    schedule = Schedule(client, settings.key_prefix)
    earliest = schedule.earliest()
    watched_until = schedule.earliest_watch()
    handed_off = (
        None if watched_until is None else watched_until - watch_s(settings.visibility_timeout_s)
    )
    since = now - alive_window_s(settings.scheduler_interval_s)
    return Live(
        queue_latency_s=0.0 if earliest is None else max(0.0, now - earliest),
        oldest_in_flight_s=0.0 if handed_off is None else max(0.0, now - handed_off),
        workers=schedule.workers_alive(since),
    )


#: Upper bounds (seconds) of the HTTP service's enqueue latency histogram: validation plus
#: one Redis step (``worker/web/metrics.py`` counts it, ``cartsync serve``'s requests).
HTTP_ENQUEUE_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class HttpCollector(Collector):
    """The HTTP service's counters (``keys.metrics_http_*``): requests by route, method and
    status, and the enqueue latency histogram; served by ``cartsync metrics`` and by the
    service's own ``/metrics``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.requests_key = keys.metrics_http_requests(prefix)
        self.enqueue_key = keys.metrics_http_enqueue(prefix)

    def collect(self) -> Iterator[Metric]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.requests_key)
        pipe.hgetall(self.enqueue_key)
        try:
            requests, enqueue = pipe.execute()
        except (redis.RedisError, OSError) as exc:  # cartsync_redis_up says so
            log.warning("metrics.scrape_failed", exception=type(exc).__name__)
            return
        family = CounterMetricFamily(
            "cartsync_http_requests",
            "HTTP requests answered, by route, method and status.",
            labels=["route", "method", "status"],
        )
        for field, count in sorted((text(k), int(v)) for k, v in requests.items()):
            route, method, status = field.rsplit(_SEP, 2)
            family.add_metric([route, method, status], count)
        yield family
        latency = HistogramMetricFamily(
            "cartsync_http_enqueue_seconds",
            "Time an accepted request's enqueue took: validation and the atomic Redis step.",
        )
        values = {text(k): text(v) for k, v in enqueue.items()}
        cumulative, buckets = 0, []
        for le in [*(_le(b) for b in HTTP_ENQUEUE_BUCKETS_S), "+Inf"]:
            cumulative += int(values.get(le, 0))
            buckets.append((le, float(cumulative)))
        latency.add_metric([], buckets, float(values.get("sum", 0.0)))
        yield latency


def build_info() -> InfoMetricFamily:
    """``cartsync_build_info``: the versions ``cartsync --version`` prints, as labels."""
    labels = {name.lower().replace("-", "_"): value for name, value in versions().items()}
    return InfoMetricFamily(
        "cartsync_build", "Versions of cartsync, celery, kombu, redis-py and Python.", value=labels
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _updates(raw: dict[Any, Any]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "cartsync_updates",
        "Update messages processed, by outcome and reason (empty when there is none).",
        labels=["outcome", "reason"],
    )
    for field, count in sorted((text(k), int(v)) for k, v in raw.items()):
        outcome, _, reason = field.partition(_SEP)
        family.add_metric([outcome, reason], count)
    yield family


def _latency(raw: dict[Any, Any]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "cartsync_sequra_latency_seconds",
        "Time seQura took to answer, by status class (error: no answer).",
        labels=["status_class"],
    )
    values = {text(k): text(v) for k, v in raw.items()}
    bounds = [*(_le(b) for b in LATENCY_BUCKETS_S), "+Inf"]
    for group in STATUS_CLASSES:
        cumulative, buckets = 0, []
        for le in bounds:
            cumulative += int(values.get(f"{group}{_SEP}{le}", 0))
            buckets.append((le, float(cumulative)))
        if not cumulative:
            continue
        family.add_metric([group], buckets, float(values.get(f"{group}{_SEP}sum", 0.0)))
    return family


def _merchant_updates(raw: dict[Any, Any]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "cartsync_merchant_updates",
        "Updates sent to seQura, by outcome, reason and merchant (configured merchants by "
        "name, any other as other).",
        labels=["outcome", "reason", "merchant"],
    )
    for field, count in sorted((text(k), int(v)) for k, v in raw.items()):
        parts = field.split(_SEP, 2)
        if len(parts) == 3:  # else not written by cartsync: a scrape must still answer
            family.add_metric(parts, count)
    yield family


def _actions(raw: dict[Any, Any]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "cartsync_dead_letter_actions",
        "Dead letters acted on by people, by action (replay, edit, drop, purge, import, "
        "reveal) and result.",
        labels=["action", "result"],
    )
    for field, count in sorted((text(k), int(v)) for k, v in raw.items()):
        action, _, result = field.partition(_SEP)
        family.add_metric([action, result], count)
    yield family


def _delivery(raw: dict[Any, Any]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "cartsync_delivery_latency_seconds",
        "Time from an update's first enqueue to its delivery to seQura, retries included.",
    )
    values = {text(k): text(v) for k, v in raw.items()}
    cumulative, buckets = 0, []
    for le in [*(_le(b) for b in DELIVERY_BUCKETS_S), "+Inf"]:
        cumulative += int(values.get(le, 0))
        buckets.append((le, float(cumulative)))
    family.add_metric([], buckets, float(values.get("sum", 0.0)))
    return family


def registry_for(client: redis.Redis, settings: Settings) -> CollectorRegistry:
    """A registry holding only cartsync's collector (no per-process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CartsyncCollector(client, settings))
    registry.register(HttpCollector(client, settings.key_prefix))
    return registry
