"""``cartsync status`` against a real Redis: the numbers it shows and its exit statuses."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from cartsync.worker.cli.status import status
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore
from cartsync.worker.health import Snapshot, queue_keys, take_snapshot, verdict
from cartsync.worker.schedule import Schedule, member_of


def letter(reason: str, *, age_s: float, order_ref: str) -> DeadLetter:
    return DeadLetter(
        update_id=f"u-{order_ref}",
        merchant="shop",
        order_ref=order_ref,
        version=1,
        reason=reason,
        status=409 if reason == "conflict" else None,
        errors=["Invalid data"],
        attempts=[],
        enqueued_at=time.time() - age_s,
        payload={"order": {}},
        dead_at=time.time() - age_s,
    )


@pytest.fixture
def busy(redis_client, settings):
    """A deployment with 2 queued tasks, 3 scheduled updates (1 due), 1 in flight, 3 dead
    letters."""
    redis_client.lpush(settings.queue, "m1", "m2")
    schedule = Schedule(redis_client, settings.key_prefix)
    schedule.add({"n": 1}, time.time() - 1)
    schedule.add({"n": 2}, time.time() + 600)
    schedule.add({"n": 3}, time.time() + 600)
    schedule.hand_off([member_of({"n": 4})], watch_until=time.time() + 600)
    store = DeadLetterStore(redis_client, settings.key_prefix)
    store.park(letter("conflict", age_s=7200, order_ref="A2"))
    store.park(letter("conflict", age_s=60, order_ref="A3"))
    store.park(letter("rejected", age_s=30, order_ref="A4"))
    return settings


def run(*args: str):
    return CliRunner().invoke(status, list(args), catch_exceptions=False)


def test_snapshot_reads_every_number(busy, redis_client):
    """A snapshot counts queued, scheduled, due, in-flight and dead updates from Redis."""
    snap = take_snapshot(redis_client, busy)
    assert (snap.queue_depth, snap.scheduled, snap.due, snap.in_flight) == (2, 3, 1, 1)
    assert snap.dead_letters == 3
    assert snap.dead_by_reason["conflict"] == 2
    assert snap.dead_by_reason["rejected"] == 1
    assert snap.dead_by_reason["exhausted"] == 0
    assert snap.oldest_dead_age_s is not None
    assert 7190 < snap.oldest_dead_age_s < 7300


def test_queue_depth_counts_priority_lists(redis_client, settings):
    """Messages kombu stores in a queue's priority lists count towards the queue depth."""
    for key in queue_keys(settings.queue):
        redis_client.lpush(key, "m")
    assert take_snapshot(redis_client, settings).queue_depth == 4


def test_status_prints_a_table_and_fails_on_an_old_dead_letter(busy):
    """With a two-hour-old dead letter and the default one-hour threshold, status exits 1."""
    result = run()
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.split() == ["queue", "depth", "2"] for line in lines)
    assert any(line.startswith("scheduled") and "3 (1 due now)" in line for line in lines)
    assert any(line.split() == ["in", "flight", "1"] for line in lines)
    assert any(line.split() == ["conflict", "2"] for line in lines)
    assert any(line.startswith("oldest dead letter") and "2h 00m ago" in line for line in lines)
    assert lines[-1].startswith("unhealthy: dead letter ")


def test_status_is_healthy_under_a_larger_threshold(busy):
    """The same state is healthy when --max-dead-age exceeds the oldest letter's age."""
    result = run("--max-dead-age", "10000")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "healthy"


def test_threshold_comes_from_the_setting(busy, monkeypatch):
    """Without --max-dead-age the threshold is CARTSYNC_STATUS_MAX_DEAD_AGE_S."""
    monkeypatch.setenv("CARTSYNC_STATUS_MAX_DEAD_AGE_S", "86400")
    assert run().exit_code == 0


def test_status_json(busy):
    """--json prints one object with every number, the verdict and the threshold used."""
    result = run("--json", "--max-dead-age", "120")
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["queue_depth"] == 2
    assert document["scheduled"] == 3
    assert document["due"] == 1
    assert document["in_flight"] == 1
    assert document["dead_letters"] == 3
    assert document["dead_by_reason"]["conflict"] == 2
    assert document["healthy"] is False
    assert document["max_dead_age_s"] == 120


def test_status_names_the_versions_including_the_redis_server(busy, redis_client):
    """Status adds the Redis server's version to cartsync's and its libraries'."""
    document = json.loads(run("--json").output)
    server = redis_client.info("server")["redis_version"]
    assert document["versions"]["Redis server"] == server
    assert set(document["versions"]) == {
        "cartsync", "celery", "kombu", "redis-py", "Python", "Redis server"
    }
    assert f"Redis server {server}" in run().output


def test_empty_deployment_is_healthy(redis_client, settings):
    """No queue, no retries and no dead letters is healthy, and --json says so."""
    result = run("--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["healthy"] is True
    assert document["oldest_dead_age_s"] is None
    assert document["dead_letters"] == 0


def test_unreachable_redis_exits_2_with_one_line(redis_client):
    """When Redis does not answer, status prints one line and exits 2."""
    result = CliRunner().invoke(status, ["--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "Redis does not answer" in result.output
    assert "Traceback" not in result.output


def test_bad_threshold_is_one_line():
    """A threshold that is not a positive number is refused naming the option."""
    result = CliRunner().invoke(status, ["--max-dead-age", "-5"])
    assert result.exit_code == 2
    assert "--max-dead-age" in result.output


def test_verdict_only_fails_on_old_dead_letters():
    """A deep queue and many retries are healthy; an old dead letter is not."""
    base = Snapshot(queue_depth=10_000, scheduled=5_000, due=5_000, in_flight=32, dead_letters=0)
    assert verdict(base, 60) is None
    old = Snapshot(0, 0, 0, 0, 1, {}, "1700000000000-00000000", 61.0)
    assert verdict(old, 60) == (
        "dead letter 1700000000000-00000000 has waited 1m 01s, longer than 1m 00s"
    )
    assert verdict(old, 61) is None


def test_status_counts_the_workers_whose_pump_beat_recently(busy, redis_client):
    """Workers alive are those whose pump's heartbeat is within the window; a long-silent
    one does not count, and the table shows the number."""
    schedule = Schedule(redis_client, busy.key_prefix)
    schedule.heartbeat("host-a:1", time.time())
    schedule.heartbeat("host-b:2", time.time() - 3600)
    assert take_snapshot(redis_client, busy).workers_alive == 1
    assert "workers alive" in run("--max-dead-age", "86400").output
