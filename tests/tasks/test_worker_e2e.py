"""The whole pipeline with real Celery workers: delivery, ordering, crashes.

Each test starts ``celery -A cartsync.worker worker`` as a child process against the test
Redis and a sandbox in this process, and enqueues through the real producer.
"""

from __future__ import annotations

import functools
import json
import time

import pytest
from click.testing import CliRunner

from cartsync.config.settings import load_settings
from cartsync.tasks.builders import (
    Item,
    cancelled,
    cart_changed,
    fully_shipped,
    partial_return,
    partially_shipped,
)
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.cli.status import status
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.metrics import Metrics
from tests import support
from tests.sandbox_fixtures import SHOP
from tests.support import WorkerProcess, running_worker, wait_for, worker_env
from tests.worker.dlq_support import make_letter

pytestmark = pytest.mark.slow

MERCHANT, USER, PASSWORD = SHOP.ref, SHOP.username, SHOP.password
SHIRT, JACKET = Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)


# The pipeline's fixtures (tests/support.py): the sandbox that knows SHOP, a worker's
# environment and a producer, both sending as SHOP.
sandbox, env, producer = support.sandbox, support.env, support.producer


def state_of(sandbox, order_ref):
    found = sandbox.state.order(MERCHANT, order_ref)
    return None if found is None else found["state"]


def delivered(sandbox, order_ref, body):
    """True once seQura holds exactly ``body``'s carts for the order."""
    state = state_of(sandbox, order_ref)
    return state is not None and all(
        state.get(key) == body["order"].get(key)
        for key in ("shipped_cart", "unshipped_cart", "cancellation_reason")
    )


def test_the_five_scenarios_are_delivered(sandbox, env, producer):
    """Each scenario of seQura's guide arrives and becomes the order's state at seQura."""
    m = MERCHANT
    bodies = {
        "full": fully_shipped(merchant=m, order_ref="full", items=[SHIRT, JACKET]),
        "partial": partially_shipped(
            merchant=m, order_ref="partial", shipped=[JACKET], unshipped=[SHIRT]
        ),
        "return": partial_return(merchant=m, order_ref="return", kept=[JACKET]),
        "cancel": cancelled(merchant=m, order_ref="cancel", reason="out_of_stock"),
        "edit": cart_changed(
            merchant=m, order_ref="edit", shipped=[Item("shirt_XL", "shirt XL", 1250), JACKET]
        ),
    }
    with running_worker(env) as worker:
        for body in bodies.values():
            producer.enqueue(body)
        for ref, body in bodies.items():
            wait_for(
                functools.partial(delivered, sandbox, ref, body),
                what=f"order {ref} to be delivered",
                on_fail=worker.log_text,
            )
        wait_for(lambda: len(worker.events()) == 5, on_fail=worker.log_text)
        outcomes = [e["outcome"] for e in worker.events()]
    assert outcomes == ["delivered"] * 5


def test_503_three_times_then_delivered_on_the_fourth_attempt(sandbox, env, producer):
    """A worker retries 503s with backoff within bounds and delivers on the fourth attempt."""
    sandbox.state.script(MERCHANT, "A1", [503, 503, 503])
    body = fully_shipped(merchant=MERCHANT, order_ref="A1", items=[SHIRT])
    with running_worker(env) as worker:
        producer.enqueue(body)
        wait_for(lambda: len(worker.events()) == 4, on_fail=worker.log_text)
        events = worker.events()
    assert [e["outcome"] for e in events] == ["retrying"] * 3 + ["delivered"]
    assert [e["attempt"] for e in events] == [1, 2, 3, 4]
    cap = float(env["CARTSYNC_RETRY_CAP_S"])
    assert all(0 <= e["next_retry_s"] <= cap for e in events[:3])


def test_ten_updates_in_a_burst_cost_far_fewer_calls(sandbox, env, producer):
    """A burst for one order ends with its last state at seQura after a few calls, not ten."""
    # While the first call is in flight, the rest of the burst arrives and waits.
    sandbox.state.set_faults({"latency_ms": 200})
    # Checked out with room to grow: whichever version lands first, the last is no upsell.
    sandbox.state.create_order(MERCHANT, "B1", original_total=1_000_000)
    bodies = [
        fully_shipped(merchant=MERCHANT, order_ref="B1", items=[Item("s", "shirt", 1000, q)])
        for q in range(1, 11)
    ]
    with running_worker(env) as worker:
        for body in bodies:
            producer.enqueue(body)
        wait_for(lambda: delivered(sandbox, "B1", bodies[-1]), on_fail=worker.log_text)
        wait_for(lambda: len(worker.events()) >= 10, on_fail=worker.log_text)
    assert sandbox.state.calls(MERCHANT, "B1") <= 3
    versions = [h["version"] for h in sandbox.state.order(MERCHANT, "B1")["history"]]
    assert versions == sorted(versions)
    assert versions[-1] == 10


def test_failing_older_version_never_lands_after_a_newer_one(sandbox, env, producer):
    """v1 keeps failing and retrying while v2 is delivered; v1 never reaches seQura after v2."""
    sandbox.state.script(MERCHANT, "O1", [503, 503, 503, 503, 503])
    v1 = fully_shipped(merchant=MERCHANT, order_ref="O1", items=[SHIRT])
    v2 = fully_shipped(merchant=MERCHANT, order_ref="O1", items=[SHIRT, JACKET])
    with running_worker(env) as worker:
        producer.enqueue(v1)
        wait_for(
            lambda: any(e["outcome"] == "retrying" for e in worker.events()),
            on_fail=worker.log_text,
        )
        producer.enqueue(v2)
        wait_for(lambda: delivered(sandbox, "O1", v2), timeout=30, on_fail=worker.log_text)
        wait_for(
            lambda: any(
                e["version"] == 1 and e["outcome"] == "superseded" for e in worker.events()
            ),
            timeout=30,
            on_fail=worker.log_text,
        )
    versions = [h["version"] for h in sandbox.state.order(MERCHANT, "O1")["history"]]
    assert versions == [2]


def test_worker_killed_during_a_send_still_delivers(sandbox, env, producer):
    """SIGKILL while seQura is answering: another worker delivers once the task comes back."""
    # The sandbox applies the update and then never answers, so the kill lands mid-send.
    sandbox.state.script(MERCHANT, "K1", ["timeout_after_apply"])
    sandbox.state.set_faults({"hang_s": 20})
    body = fully_shipped(merchant=MERCHANT, order_ref="K1", items=[SHIRT])
    first = WorkerProcess(env).start()
    try:
        producer.enqueue(body)
        wait_for(lambda: sandbox.state.calls(MERCHANT, "K1") == 1, on_fail=first.log_text)
        first.kill()
    finally:
        first.stop()
    with running_worker(env) as second:
        # The task returns after the visibility timeout (5 s in tests) and is sent again.
        wait_for(
            lambda: any(e["outcome"] == "delivered" for e in second.events()),
            timeout=40,
            on_fail=second.log_text,
        )
    assert delivered(sandbox, "K1", body)


def test_worker_killed_during_a_backoff_wait_still_delivers(sandbox, env, producer):
    """SIGKILL while an update waits to retry: the wait lives in Redis, a new worker delivers."""
    env = dict(env, CARTSYNC_RETRY_BASE_S="2", CARTSYNC_RETRY_CAP_S="3")
    sandbox.state.script(MERCHANT, "K2", [503])
    body = fully_shipped(merchant=MERCHANT, order_ref="K2", items=[SHIRT])
    first = WorkerProcess(env).start()
    try:
        producer.enqueue(body)
        wait_for(
            lambda: any(e["outcome"] == "retrying" for e in first.events()), on_fail=first.log_text
        )
        first.kill()
    finally:
        first.stop()
    with running_worker(env) as second:
        wait_for(lambda: delivered(sandbox, "K2", body), timeout=30, on_fail=second.log_text)
    assert sandbox.state.calls(MERCHANT, "K2") == 2


def test_redis_restart_loses_nothing(sandbox):
    """Updates waiting in the queue and in the backoff schedule survive a Redis crash and restart
    (append-only file on) and are delivered afterwards."""
    from cartsync.config.settings import load_settings
    from cartsync.worker.redisserver import EmbeddedRedis

    server = EmbeddedRedis(persistent=True).start()
    try:
        env = worker_env(
            sandbox.url,
            CARTSYNC_SEQURA_USERNAME=USER,
            CARTSYNC_SEQURA_PASSWORD=PASSWORD,
            CARTSYNC_REDIS_URL=server.url,
            CARTSYNC_RETRY_BASE_S="3",
            CARTSYNC_RETRY_CAP_S="4",
        )
        settings = load_settings(env)
        producer = Producer(settings)
        waiting = fully_shipped(merchant=MERCHANT, order_ref="R1", items=[SHIRT])
        queued = fully_shipped(merchant=MERCHANT, order_ref="R2", items=[JACKET])
        sandbox.state.script(MERCHANT, "R1", [503])
        with running_worker(env) as worker:
            producer.enqueue(waiting)
            wait_for(
                lambda: any(e["outcome"] == "retrying" for e in worker.events()),
                on_fail=worker.log_text,
            )
        # No worker runs now: R2 stays in the queue while Redis crashes and comes back.
        producer.enqueue(queued)
        producer.client.close()
        server.kill()
        server.start()
        with running_worker(env) as worker:
            wait_for(
                lambda: delivered(sandbox, "R1", waiting) and delivered(sandbox, "R2", queued),
                timeout=40,
                on_fail=worker.log_text,
            )
    finally:
        server.stop()


def test_a_message_that_breaks_the_worker_ends_parked_and_seen(
    sandbox, env, producer, redis_client, settings
):
    """A message in the schedule whose body nests deeper than any body may (once a
    RecursionError that failed the worker on every try) is parked as invalid at its first
    try; the metrics and ``cartsync status`` show it, nothing stays in flight, and the worker
    carries on delivering. (Updates that fail unexpectedly again and again are parked after
    CARTSYNC_WORKER_MAX_FAILURES tries: tests/tasks/test_order_update.py.)"""
    depth = 50_000
    poison = (
        '{"update_id":"poison-1","merchant":"shop1","order_ref":"P1","version":1,'
        '"body":{"order":{"deep":' + "[" * depth + "]" * depth + "}},"
        '"enqueued_at":1.0,"attempts":[],"replay_of":null,"deferrals":0}'
    )
    body = fully_shipped(merchant=MERCHANT, order_ref="P2", items=[SHIRT])
    with running_worker(env) as worker:
        redis_client.zadd(keys.schedule(settings.key_prefix), {poison: time.time()})
        wait_for(
            lambda: any(e["outcome"] == "dead_lettered" for e in worker.events()),
            what="the poison message to be parked",
            on_fail=worker.log_text,
        )
        producer.enqueue(body)
        wait_for(lambda: delivered(sandbox, "P2", body), on_fail=worker.log_text)
        events = worker.events()
    failures = [e for e in events if e["outcome"] in ("failed", "dead_lettered")]
    assert [(e["outcome"], e["reason"]) for e in failures] == [("dead_lettered", "invalid")]
    [letter_id] = redis_client.hvals(keys.dlq_by_update(settings.key_prefix))
    assert failures[-1]["letter_id"] == letter_id.decode()
    counts = Metrics(redis_client, settings.key_prefix).totals().updates
    assert counts["dead_lettered|invalid"] == "1"
    assert not any(field.startswith("failed|") for field in counts)
    shown = CliRunner().invoke(status, ["--json"], catch_exceptions=False)
    numbers = json.loads(shown.output)
    assert numbers["dead_by_reason"]["invalid"] == 1
    assert (numbers["in_flight"], numbers["scheduled"]) == (0, 0)


def test_a_worker_flags_parked_orders_once_no_earlier_release_is_alive(env, redis_client):
    """While a worker of an earlier release still beats (only in the plain heartbeat set), a
    new worker leaves the orders of parked letters as they are; once it is gone, the worker
    flags every stored letter's order and records that claims may rely on the flags."""
    settings = load_settings(env)
    prefix = settings.key_prefix
    store = DeadLetterStore(redis_client, prefix)
    store.park(make_letter(merchant=MERCHANT, order_ref="F1"))
    order = keys.order(prefix, MERCHANT, "F1")
    redis_client.hdel(order, "parked")  # as an earlier release parked it
    redis_client.zadd(keys.workers(prefix), {"earlier:1": time.time() + 3600})
    with running_worker(env) as worker:
        flagging = keys.workers_flagging(prefix)
        wait_for(lambda: redis_client.zcard(flagging) == 1, on_fail=worker.log_text)
        time.sleep(4 * settings.scheduler_interval_s)
        assert redis_client.exists(keys.dlq_orders_flagged(prefix)) == 0
        assert redis_client.hget(order, "parked") is None
        redis_client.zrem(keys.workers(prefix), "earlier:1")
        wait_for(
            lambda: redis_client.exists(keys.dlq_orders_flagged(prefix)),
            on_fail=worker.log_text,
        )
    assert redis_client.hget(order, "parked") == b"1"
