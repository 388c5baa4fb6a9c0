"""Metrics counted into Redis by workers and served by ``cartsync metrics``."""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
import time
from importlib import metadata

import pytest
import redis
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cartsync.worker.deadletters import DeadLetter, DeadLetterStore
from cartsync.worker.metrics import Metrics, bucket_label, registry_for, status_class
from cartsync.worker.schedule import Schedule, member_of
from tests.support import metrics_command


def scrape(client, settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    text = generate_latest(registry_for(client, settings)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_outcomes_and_attempts_are_counted(redis_client, settings):
    """Each update counts under its outcome and reason; each call to seQura counts as an attempt."""
    metrics = Metrics(redis_client, settings.key_prefix)
    metrics.observe("delivered", None, 200, 120.0)
    metrics.observe("delivered", None, 204, 80.0)
    metrics.observe("dead_lettered", "conflict", 409, 50.0)
    metrics.observe("retrying", "ReadTimeout", None, 2000.0)
    metrics.observe("superseded", None, None, None)
    samples = scrape(redis_client, settings)
    assert samples[("cartsync_updates_total", (("outcome", "delivered"), ("reason", "")))] == 2
    key = ("cartsync_updates_total", (("outcome", "dead_lettered"), ("reason", "conflict")))
    assert samples[key] == 1
    assert samples[("cartsync_updates_total", (("outcome", "superseded"), ("reason", "")))] == 1
    assert samples[("cartsync_attempts_total", ())] == 4
    assert samples[("cartsync_redis_up", ())] == 1


def test_dropped_broker_messages_are_counted_by_queue(redis_client, settings):
    """Celery messages a worker dropped because they did not decode are served per queue."""
    metrics = Metrics(redis_client, settings.key_prefix)
    metrics.count_dropped("cartsync")
    metrics.count_dropped("cartsync")
    metrics.count_dropped("other")
    samples = scrape(redis_client, settings)
    name = "cartsync_broker_messages_dropped_total"
    assert samples[(name, (("queue", "cartsync"),))] == 2
    assert samples[(name, (("queue", "other"),))] == 1


def test_latency_histogram_by_status_class(redis_client, settings):
    """Latencies land in cumulative buckets per status class, with their count and sum."""
    metrics = Metrics(redis_client, settings.key_prefix)
    metrics.observe("delivered", None, 200, 20.0)
    metrics.observe("delivered", None, 200, 300.0)
    metrics.observe("retrying", None, 503, 40_000.0)
    metrics.observe("retrying", "ConnectTimeout", None, 1000.0)
    samples = scrape(redis_client, settings)

    def bucket(group: str, le: str) -> float:
        labels = (("le", le), ("status_class", group))
        return samples[("cartsync_sequra_latency_seconds_bucket", labels)]

    assert bucket("2xx", "0.025") == 1
    assert bucket("2xx", "0.25") == 1
    assert bucket("2xx", "0.5") == 2
    assert bucket("2xx", "+Inf") == 2
    assert samples[("cartsync_sequra_latency_seconds_count", (("status_class", "2xx"),))] == 2
    assert samples[("cartsync_sequra_latency_seconds_sum", (("status_class", "2xx"),))] == (
        pytest.approx(0.32)
    )
    assert bucket("5xx", "30.0") == 0
    assert bucket("5xx", "+Inf") == 1
    assert bucket("error", "1.0") == 1


def test_counts_add_up_across_processes(redis_client, settings):
    """Two worker processes counting at once give one total, as if one process had counted."""
    program = (
        "import redis, sys\n"
        "from cartsync.worker.metrics import Metrics\n"
        "m = Metrics(redis.Redis.from_url(sys.argv[1]), sys.argv[2])\n"
        "for _ in range(200): m.observe('delivered', None, 200, 10.0)\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", program, settings.redis_url, settings.key_prefix])
        for _ in range(2)
    ]
    assert [child.wait(timeout=30) for child in children] == [0, 0]
    samples = scrape(redis_client, settings)
    assert samples[("cartsync_updates_total", (("outcome", "delivered"), ("reason", "")))] == 400
    assert samples[("cartsync_attempts_total", ())] == 400


def test_live_gauges(redis_client, settings):
    """Queue depth, scheduled updates, updates in flight and dead letters are read at scrape
    time."""
    redis_client.lpush(settings.queue, "a", "b", "c")
    schedule = Schedule(redis_client, settings.key_prefix)
    schedule.add({"n": 1}, time.time() + 60)
    schedule.hand_off([member_of({"n": 2})], watch_until=time.time() + 600)
    DeadLetterStore(redis_client, settings.key_prefix).park(
        DeadLetter(
            update_id="u1", merchant="shop", order_ref="A2", version=1, reason="conflict",
            status=409, errors=["Invalid data"], attempts=[], enqueued_at=time.time() - 100,
            payload={"order": {}}, dead_at=time.time() - 90,
        )
    )  # fmt: skip
    samples = scrape(redis_client, settings)
    assert samples[("cartsync_queue_depth", ())] == 3
    assert samples[("cartsync_scheduled", ())] == 1
    assert samples[("cartsync_scheduled_due", ())] == 0
    assert samples[("cartsync_in_flight", ())] == 1
    assert samples[("cartsync_dead_letters", (("reason", "conflict"),))] == 1
    assert samples[("cartsync_dead_letters", (("reason", "exhausted"),))] == 0
    assert 89 < samples[("cartsync_dead_letter_oldest_age_seconds", ())] < 120


def test_unreachable_redis_scrapes_as_down(settings):
    """When Redis does not answer, a scrape still succeeds and says cartsync_redis_up 0."""
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    samples = scrape(dead, settings)
    assert {k: v for k, v in samples.items() if k[0] != "cartsync_build_info"} == {
        ("cartsync_redis_up", ()): 0
    }


def test_build_info_names_the_versions(redis_client, settings):
    """cartsync_build_info carries the versions --version prints, even with Redis down."""
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    for client in (redis_client, dead):
        (labels,) = [dict(k[1]) for k in scrape(client, settings) if k[0] == "cartsync_build_info"]
        assert labels == {
            "cartsync": metadata.version("cartsync"),
            "celery": metadata.version("celery"),
            "kombu": metadata.version("kombu"),
            "redis_py": metadata.version("redis"),
            "python": platform.python_version(),
        }


def test_observe_never_raises_when_redis_is_down():
    """A worker whose Redis is gone loses the count, not the update's outcome."""
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    Metrics(dead, "cartsync").observe("delivered", None, 200, 10.0)


@pytest.mark.parametrize(
    ("status", "group"),
    [
        (200, "2xx"),
        (204, "2xx"),
        (302, "3xx"),
        (409, "4xx"),
        (503, "5xx"),
        (None, "error"),
        (0, "error"),
    ],
)
def test_status_class(status, group):
    """A status code maps to its class; no answer (or nonsense) is ``error``."""
    assert status_class(status) == group


def test_bucket_label_edges():
    """A latency equal to a bound falls in that bucket; past the last one it is +Inf."""
    assert bucket_label(0.0) == "0.025"
    assert bucket_label(0.025) == "0.025"
    assert bucket_label(0.0251) == "0.05"
    assert bucket_label(31.0) == "+Inf"


@pytest.mark.slow
def test_metrics_command_serves_http(redis_client, settings):
    """`cartsync metrics` serves the counters over HTTP and stops cleanly on SIGTERM."""
    Metrics(redis_client, settings.key_prefix).observe("delivered", None, 200, 10.0)
    with metrics_command(settings.redis_url) as (url, process):
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        assert 'cartsync_updates_total{outcome="delivered",reason=""} 1.0' in response.text
        assert "cartsync_queue_depth 0.0" in response.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
