"""The metrics an operator of Celery or Sidekiq expects: queue latency, delivery latency,
outcomes by merchant, live workers, dead-letter actions; over a real Redis and a real worker."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.worker.deadletters import AuditNote, DeadLetter
from cartsync.worker.metrics import (
    OTHER_MERCHANT,
    WORKER_ALIVE_S,
    CartsyncCollector,
    Metrics,
    alive_window_s,
    merchant_label,
)
from cartsync.worker.schedule import HEARTBEAT_S, Pump, Schedule, member_of, watch_s
from tests import support
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

sandbox, producer = support.sandbox, support.producer


def scrape(client, settings, now: float | None = None) -> Samples:
    """Every sample of one scrape of a real collector: (name, sorted labels) -> value."""
    registry = CollectorRegistry(auto_describe=False)
    clock = time.time if now is None else (lambda: now)
    registry.register(CartsyncCollector(client, settings, clock=clock))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def letter(update_id: str, *, merchant: str = "shop", reason: str = "conflict") -> DeadLetter:
    now = time.time()
    return DeadLetter(
        update_id=update_id, merchant=merchant, order_ref=f"o-{update_id}", version=1,
        reason=reason, status=409, errors=["Invalid data"], attempts=[], enqueued_at=now - 5,
        payload={"order": {}}, dead_at=now - 1,
    )  # fmt: skip


def test_merchant_label_is_bounded_to_configured_merchants():
    """A configured merchant-ref is its own label value; any other is ``other``."""
    configured = frozenset({"shop1", "camisas"})
    assert merchant_label("shop1", configured) == "shop1"
    assert merchant_label("someone-else", configured) == OTHER_MERCHANT
    assert merchant_label("shop1", frozenset()) == OTHER_MERCHANT


def test_outcomes_by_merchant_and_delivery_latency(redis_client, settings):
    """Counting with the message's merchant and enqueue time counts the outcome under the
    merchant's label (others as ``other``) and a delivery in the enqueue-to-delivered
    histogram; an update that was not delivered stays out of the histogram."""
    now = 1_800_000_000.0
    metrics = Metrics(redis_client, settings.key_prefix, merchants=["shop1"], clock=lambda: now)
    for merchant, outcome, reason, enqueued_at in [
        ("shop1", "delivered", None, now - 0.2),
        ("shop1", "delivered", None, now - 400.0),
        ("stranger", "dead_lettered", "unauthorized", now - 1.0),
        ("shop1", "retrying", "unavailable", now - 1.0),
    ]:
        pipe = redis_client.pipeline(transaction=False)
        metrics.count_into(
            pipe,
            metrics.increments(
                outcome, reason, 200, 10.0, merchant=merchant, enqueued_at=enqueued_at
            ),
        )
        pipe.execute()
    samples = scrape(redis_client, settings)
    by_merchant = "cartsync_merchant_updates_total"
    assert (
        samples[(by_merchant, (("merchant", "shop1"), ("outcome", "delivered"), ("reason", "")))]
        == 2
    )
    assert (
        samples[
            (
                by_merchant,
                (("merchant", "other"), ("outcome", "dead_lettered"), ("reason", "unauthorized")),
            )
        ]
        == 1
    )
    assert not [k for k in samples if ("merchant", "stranger") in k[1]]
    assert samples[("cartsync_delivery_latency_seconds_count", ())] == 2
    assert samples[("cartsync_delivery_latency_seconds_bucket", (("le", "0.25"),))] == 1
    assert samples[("cartsync_delivery_latency_seconds_bucket", (("le", "300.0"),))] == 1
    assert samples[("cartsync_delivery_latency_seconds_bucket", (("le", "900.0"),))] == 2
    assert samples[("cartsync_delivery_latency_seconds_sum", ())] == pytest.approx(400.2)
    # The outcome counter without the merchant is counted as before.
    assert samples[("cartsync_updates_total", (("outcome", "delivered"), ("reason", "")))] == 2


def test_queue_latency_and_oldest_in_flight(redis_client, settings):
    """Queue latency is how long the oldest due entry has been due (0 when none is due); the
    oldest in-flight age counts from when it was handed to the queue."""
    now = time.time()
    schedule = Schedule(redis_client, settings.key_prefix)
    assert scrape(redis_client, settings, now)[("cartsync_queue_latency_seconds", ())] == 0
    schedule.add({"n": 1}, now + 60)
    assert scrape(redis_client, settings, now)[("cartsync_queue_latency_seconds", ())] == 0
    schedule.add({"n": 2}, now - 42)
    schedule.add({"n": 3}, now - 5)
    handed_at = now - 17
    schedule.hand_off(
        [member_of({"n": 4})], watch_until=handed_at + watch_s(settings.visibility_timeout_s)
    )
    samples = scrape(redis_client, settings, now)
    assert samples[("cartsync_queue_latency_seconds", ())] == pytest.approx(42)
    assert samples[("cartsync_in_flight_oldest_age_seconds", ())] == pytest.approx(17)


def test_workers_alive_counts_recent_heartbeats(redis_client, settings):
    """A worker counts as alive while its last heartbeat is within the window."""
    now = time.time()
    schedule = Schedule(redis_client, settings.key_prefix)
    window = alive_window_s(settings.scheduler_interval_s)
    assert window >= WORKER_ALIVE_S
    schedule.heartbeat("host-a:1", now - 1)
    schedule.heartbeat("host-b:2", now - window + 1)
    schedule.heartbeat("host-c:3", now - window - 1)
    assert scrape(redis_client, settings, now)[("cartsync_workers_alive", ())] == 2
    schedule.forget("host-a:1")
    assert scrape(redis_client, settings, now)[("cartsync_workers_alive", ())] == 1


def test_pump_heartbeats_and_forgets_itself_on_stop(redis_client, settings):
    """A running pump with a worker id beats into the heartbeat set; stopped, it leaves it."""
    schedule = Schedule(redis_client, settings.key_prefix)
    pump = Pump(
        schedule, lambda members: None, queue=settings.queue, slots=1, batch=1,
        interval_s=0.05, lease_s=5, clock=time.time, worker="test-host:123",
    )  # fmt: skip
    pump.start()
    try:
        wait_for(lambda: schedule.workers_alive(time.time() - HEARTBEAT_S) == 1)
        assert scrape(redis_client, settings)[("cartsync_workers_alive", ())] == 1
    finally:
        pump.stop()
        pump.join(timeout=5)
    assert scrape(redis_client, settings)[("cartsync_workers_alive", ())] == 0


def test_dead_letter_actions_are_counted_with_their_audit_entries(store, redis_client, settings):
    """Edits, drops, replays and reveals of one letter each count once under their action,
    in the script or pipeline that writes the audit entry; a run's summary (no letter) and a
    change refused because the letter changed meanwhile count nothing."""
    ids = [store.park(letter(f"u{n}")) for n in range(3)]
    edit = AuditNote("edit", "alice", "run-1")
    stored = store.load(ids[0])
    changed = DeadLetter.from_dict({**stored.letter.to_dict(), "errors": ["fixed"]})
    assert store.replace(stored, changed, audit=edit.with_result("saved revision 1")) == "replaced"
    assert store.replace(stored, changed, audit=edit.with_result("saved revision 2")) == "changed"
    drop = AuditNote("drop", "alice", "run-2")
    assert store.remove(store.load(ids[1]), audit=drop.with_result("dropped")) == "removed"
    replay = AuditNote("replay", "bob", "run-3")
    outcomes = store.remove_many([(store.load(ids[2]), replay.with_result("replayed"), None)])
    assert outcomes == ["removed"]
    store.record(AuditNote("replay", "bob", "run-3", "started"))  # a run's summary
    store.record(AuditNote("reveal", "carol", "run-4", "payload shown"), ids[0])
    samples = scrape(redis_client, settings)
    name = "cartsync_dead_letter_actions_total"
    assert {dict(k[1])["action"] + "/" + dict(k[1])["result"]: v
            for k, v in samples.items() if k[0] == name} == {
        "edit/done": 1, "drop/dropped": 1, "replay/replayed": 1, "reveal/done": 1,
    }  # fmt: skip


@pytest.mark.slow
def test_a_real_worker_reports_delivery_latency_merchant_and_liveness(
    sandbox, producer, redis_client, settings, tmp_path
):
    """A worker delivering through the sandbox shows in the scrape: the delivery in the
    enqueue-to-delivered histogram, the outcome under its configured merchant, itself among
    the live workers; once stopped, it is no longer alive."""
    accounts = tmp_path / "merchants.toml"
    accounts.write_text(
        f'[merchants."{SHOP.ref}"]\nusername = "{SHOP.username}"\npassword = "{SHOP.password}"\n',
        encoding="utf-8",
    )
    env = worker_env(sandbox.url, CARTSYNC_MERCHANTS_FILE=str(accounts))
    body = fully_shipped(merchant=SHOP.ref, order_ref="m-1", items=[Item("s1", "shirt", 1250)])
    with running_worker(env, concurrency=2) as worker:
        wait_for(
            lambda: scrape(redis_client, settings)[("cartsync_workers_alive", ())] == 1,
            what="the worker's heartbeat",
            on_fail=worker.log_text,
        )
        producer.enqueue(body)
        key = ("cartsync_delivery_latency_seconds_count", ())
        wait_for(
            lambda: scrape(redis_client, settings).get(key) == 1,
            what="the delivery to be counted",
            on_fail=worker.log_text,
        )
        samples = scrape(redis_client, settings)
        labels = (("merchant", SHOP.ref), ("outcome", "delivered"), ("reason", ""))
        assert samples[("cartsync_merchant_updates_total", labels)] == 1
        assert 0 < samples[("cartsync_delivery_latency_seconds_sum", ())] < 60
        assert samples[("cartsync_queue_latency_seconds", ())] == 0
    assert scrape(redis_client, settings)[("cartsync_workers_alive", ())] == 0
