"""One attempt of one update, run in this process against a real Redis and the sandbox.

Each test enqueues through the real producer (which puts the message in the schedule), runs
the task's ``process`` on the message as a worker's pump would hand it over, and checks the
sandbox, the ledger, the schedule and the dead letters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.failures import FAILURE_MEMORY_S
from cartsync.tasks.message import UpdateMessage
from cartsync.tasks.order_update import identity_errors, process, run_batch
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.backoff import backoff_ceiling
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.runtime import Runtime
from cartsync.worker.schedule import member_of
from tests import support
from tests.sandbox_fixtures import SHOP

MERCHANT, USER, PASSWORD = SHOP.ref, SHOP.username, SHOP.password


# The sandbox that knows SHOP (tests/support.py).
sandbox = support.sandbox


@pytest.fixture
def rt(settings, sandbox):
    configured = settings.with_overrides(
        sequra_url=sandbox.url,
        sequra_username=USER,
        sequra_password=PASSWORD,
        retry_base_s=1.0,
        retry_cap_s=30.0,
        retry_max_attempts=4,
        retry_min_window_s=0.0,
        read_timeout_s=1.0,
        connect_timeout_s=1.0,
        lock_ttl_s=5.0,
    )
    runtime = Runtime(configured)
    yield runtime
    runtime.client.close()


class Pipeline:
    """A producer, and a way to run the messages it scheduled as a worker would."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.producer = Producer(rt.settings, client=rt.redis)

    def enqueue(self, body, **options):
        return self.producer.enqueue(body, **options)

    def take_next(self) -> str:
        """Take the message that has been due longest out of the schedule, as a pump would."""
        members: list[bytes] = self.rt.redis.zrangebyscore(  # type: ignore[assignment]
            self.rt.schedule.key, "-inf", repr(time.time()), start=0, num=1
        )
        self.rt.redis.zrem(self.rt.schedule.key, members[0])
        return members[0].decode()

    def run_next(self) -> str:
        """Run the message that has been due longest."""
        return process(self.take_next(), self.rt)

    def run_due_retries(self) -> list[str]:
        """Run every scheduled message, whatever its due time."""
        outcomes: list[str] = []
        members: list[bytes] = self.rt.redis.zrange(self.rt.schedule.key, 0, -1)  # type: ignore[assignment]
        for member in members:
            self.rt.redis.zrem(self.rt.schedule.key, member)
            outcomes.append(process(member.decode(), self.rt))
        return outcomes

    def scheduled(self) -> list[tuple[dict, float]]:
        entries: list[tuple[bytes, float]] = self.rt.redis.zrange(  # type: ignore[assignment]
            self.rt.schedule.key, 0, -1, withscores=True
        )
        return [(json.loads(member), score) for member, score in entries]


@pytest.fixture
def pipeline(rt):
    return Pipeline(rt)


def shirt_order(order_ref="A14/12345", quantity=1):
    return fully_shipped(
        merchant=MERCHANT, order_ref=order_ref, items=[Item("shirt1234", "shirt", 1250, quantity)]
    )


def letters(rt):
    store = DeadLetterStore(rt.redis, rt.settings.key_prefix)
    return store


def test_accepted_update_is_delivered_and_recorded(pipeline, sandbox, rt):
    """A 200 makes the body the order's state at seQura and the delivered version in the ledger."""
    body = shirt_order()
    receipt = pipeline.enqueue(body)
    assert pipeline.run_next() == "delivered"
    state = sandbox.state.order(MERCHANT, "A14/12345")
    assert state["state"]["shipped_cart"] == body["order"]["shipped_cart"]
    assert state["history"][0]["version"] == receipt.version
    assert rt.ledger.versions(MERCHANT, "A14/12345") == (1, 1)


def test_conflict_is_parked_with_sequra_text_and_not_retried(pipeline, sandbox, rt):
    """A 409 becomes a dead letter holding seQura's error text; nothing is scheduled again."""
    sandbox.state.script(MERCHANT, "A14/12345", [409])
    receipt = pipeline.enqueue(shirt_order())
    assert pipeline.run_next() == "dead_lettered"
    assert pipeline.scheduled() == []
    assert sandbox.state.calls(MERCHANT, "A14/12345") == 1
    store = letters(rt)
    assert store.holds_update(receipt.update_id)
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    letter = store.get(letter_id.decode())
    assert letter.reason == "conflict"
    assert letter.status == 409
    assert letter.errors
    assert "conflict" in letter.errors[0]
    assert letter.payload == receipt_body(pipeline, receipt)


def receipt_body(pipeline, receipt):
    """The body the producer accepted for ``receipt`` (with platform defaults filled)."""
    return pipeline.rt.dead_letters.get(
        pipeline.rt.redis.hget(
            keys.dlq_by_update(pipeline.rt.settings.key_prefix), receipt.update_id
        ).decode()
    ).payload


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "unauthorized"), (403, "unauthorized"), (404, "rejected"), (422, "rejected")],
)
def test_other_client_errors_are_parked_by_reason(pipeline, sandbox, rt, status, reason):
    """401/403 park as unauthorized, other 4xx as rejected, without a retry."""
    sandbox.state.script(MERCHANT, "A14/12345", [status])
    receipt = pipeline.enqueue(shirt_order())
    assert pipeline.run_next() == "dead_lettered"
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    assert rt.dead_letters.get(letter_id.decode()).reason == reason
    assert pipeline.scheduled() == []


class _RefusesUpsell(BaseHTTPRequestHandler):
    """A seQura that refuses every update with the 403 it has answered upsells with."""

    def do_PUT(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"errors": ["This order cannot be upsold"]}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def test_a_403_refusing_an_upsell_is_parked_as_a_conflict(settings):
    """seQura's 403 "This order cannot be upsold" parks the update as a conflict, with the
    text, not as unauthorized."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesUpsell)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rt = Runtime(
        settings.with_overrides(
            sequra_url=f"http://127.0.0.1:{server.server_port}",
            sequra_username=USER,
            sequra_password=PASSWORD,
        )
    )
    try:
        receipt = Pipeline(rt).enqueue(shirt_order())
        assert Pipeline(rt).run_next() == "dead_lettered"
    finally:
        server.shutdown()
        server.server_close()
        rt.client.close()
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    assert isinstance(letter_id, bytes)
    letter = rt.dead_letters.get(letter_id.decode())
    assert (letter.reason, letter.status) == ("conflict", 403)
    assert letter.errors == ["This order cannot be upsold"]


def test_unavailable_is_scheduled_with_backoff_then_delivered(pipeline, sandbox, rt):
    """503 three times then 200: three retries within the backoff bounds, then delivered."""
    sandbox.state.script(MERCHANT, "A14/12345", [503, 503, 503])
    pipeline.enqueue(shirt_order())
    before = time.time()
    assert pipeline.run_next() == "retrying"
    outcomes = []
    for attempt in (1, 2, 3):
        [(message, due)] = pipeline.scheduled()
        assert message["attempts"][-1]["status"] == 503
        delay = message["attempts"][-1]["delay_s"]
        assert 0 <= delay <= backoff_ceiling(attempt, base=1.0, cap=30.0)
        assert due >= before + delay - 0.01
        before = time.time()
        outcomes += pipeline.run_due_retries()
    assert outcomes == ["retrying", "retrying", "delivered"]
    assert sandbox.state.calls(MERCHANT, "A14/12345") == 4


def test_retry_after_is_honoured(pipeline, sandbox):
    """A 429 with Retry-After: 2 schedules the next attempt at least 2 s later."""
    sandbox.state.set_faults({"retry_after": "2"})
    sandbox.state.script(MERCHANT, "A14/12345", [429])
    pipeline.enqueue(shirt_order())
    started = time.time()
    assert pipeline.run_next() == "retrying"
    [(message, due)] = pipeline.scheduled()
    assert message["attempts"][-1]["delay_s"] >= 2
    assert due >= started + 2


def test_timeout_and_dropped_connection_are_retried(pipeline, sandbox):
    """A read time-out and a dropped connection are both retryable, never parked."""
    sandbox.state.script(MERCHANT, "A14/12345", ["timeout", "drop"])
    pipeline.enqueue(shirt_order())
    assert pipeline.run_next() == "retrying"
    assert pipeline.run_due_retries() == ["retrying"]
    assert pipeline.run_due_retries() == ["delivered"]


def test_exhausted_retries_are_parked_with_the_attempt_history(pipeline, sandbox, rt):
    """After the attempt limit, the update is parked as exhausted with every attempt listed."""
    sandbox.state.script(MERCHANT, "A14/12345", [503, 502, 500, 504])
    receipt = pipeline.enqueue(shirt_order())
    outcomes = [pipeline.run_next()]
    for _ in range(3):
        outcomes += pipeline.run_due_retries()
    assert outcomes == ["retrying", "retrying", "retrying", "dead_lettered"]
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    letter = rt.dead_letters.get(letter_id.decode())
    assert letter.reason == "exhausted"
    assert [a["status"] for a in letter.attempts] == [503, 502, 500, 504]


def test_older_version_is_never_sent_after_a_newer_one(pipeline, sandbox, rt):
    """v1 fails and waits; v2 is delivered; v1's retry is superseded and never reaches seQura."""
    sandbox.state.script(MERCHANT, "A14/12345", [503])
    pipeline.enqueue(shirt_order(quantity=1))
    assert pipeline.run_next() == "retrying"
    newer = shirt_order(quantity=2)
    pipeline.enqueue(newer)
    assert pipeline.run_next() == "delivered"
    assert pipeline.run_due_retries() == ["superseded"]
    history = sandbox.state.order(MERCHANT, "A14/12345")["history"]
    assert [entry["version"] for entry in history] == [2]
    assert history[-1]["order"]["shipped_cart"] == newer["order"]["shipped_cart"]


def test_a_burst_costs_one_call(pipeline, sandbox):
    """Ten updates enqueued before a worker gets to them cost one call: the last state."""
    for quantity in range(1, 11):
        pipeline.enqueue(shirt_order(quantity=quantity))
    outcomes = [pipeline.run_next() for _ in range(10)]
    assert outcomes == ["superseded"] * 9 + ["delivered"]
    assert sandbox.state.calls(MERCHANT, "A14/12345") == 1
    assert (
        sandbox.state.order(MERCHANT, "A14/12345")["state"]["shipped_cart"]["items"][0]["quantity"]
        == 10
    )


def test_redelivered_message_is_not_sent_twice(pipeline, sandbox):
    """Running the same message again after delivery sends nothing (a broker redelivery)."""
    pipeline.enqueue(shirt_order())
    message = pipeline.take_next()
    assert process(message, pipeline.rt) == "delivered"
    assert process(message, pipeline.rt) == "duplicate"
    assert sandbox.state.calls(MERCHANT, "A14/12345") == 1


def test_busy_order_is_deferred_not_sent_concurrently(pipeline, sandbox, rt):
    """While another worker holds the order's lock, the message waits in the schedule."""
    pipeline.enqueue(shirt_order())
    _, token = rt.ledger.claim(
        MERCHANT, "A14/12345", update_id="another", version=1,
        parked_index=rt.dead_letters.by_update_key, ttl_s=5,
    )  # fmt: skip
    assert pipeline.run_next() == "deferred"
    assert sandbox.state.calls(MERCHANT, "A14/12345") == 0
    rt.ledger.finish(MERCHANT, "A14/12345", token, delivered=None)
    assert pipeline.run_due_retries() == ["delivered"]


def test_undecodable_message_is_parked_as_invalid(rt):
    """A queue message that is not an update is parked with reason invalid, not dropped."""
    assert process('{"something":"else"}', rt) == "dead_lettered"
    stats = rt.redis.hgetall(keys.dlq_by_update(rt.settings.key_prefix))
    [letter_id] = stats.values()
    letter = rt.dead_letters.get(letter_id.decode())
    assert letter.reason == "invalid"
    assert letter.payload == {"something": "else"}


def test_a_message_that_is_not_json_is_parked_with_its_text(rt):
    """Text that does not even parse is parked as invalid, holding the text as it came."""
    assert process("{not json", rt) == "dead_lettered"
    [letter_id] = rt.redis.hgetall(keys.dlq_by_update(rt.settings.key_prefix)).values()
    letter = rt.dead_letters.get(letter_id.decode())
    assert (letter.reason, letter.payload) == ("invalid", "{not json")
    assert "not valid JSON" in letter.errors[0]


def test_each_outcome_is_counted_for_metrics(pipeline, sandbox, rt):
    """Every processed message adds to the outcome counters the metrics endpoint serves."""
    sandbox.state.script(MERCHANT, "A14/12345", [409])
    pipeline.enqueue(shirt_order())
    pipeline.run_next()
    pipeline.enqueue(shirt_order("other"))
    pipeline.run_next()
    totals = rt.metrics.totals()
    assert sum(int(v) for v in totals.updates.values()) == 2
    assert totals.attempts == {"total": "2"}


def test_a_send_finishes_even_when_redis_forgot_its_scripts(pipeline, sandbox, rt):
    """After a Redis restart empties the script cache, the delivery is still recorded once,
    the lock freed and the attempt counted once."""
    pipeline.enqueue(shirt_order())
    message = pipeline.take_next()
    rt.redis.script_flush()
    assert process(message, rt) == "delivered"
    assert rt.ledger.versions(MERCHANT, "A14/12345") == (1, 1)
    assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, "A14/12345")) == 0
    assert sum(int(v) for v in rt.metrics.totals().updates.values()) == 1


def test_a_batch_runs_every_update_in_order(pipeline, sandbox, rt):
    """A task's batch delivers each of its updates, one after the other."""
    for ref in ("B1", "B2", "B3"):
        pipeline.enqueue(shirt_order(ref))
    batch = [pipeline.take_next() for _ in range(3)]
    assert run_batch(batch, rt) == ["delivered"] * 3
    assert [sandbox.state.calls(MERCHANT, ref) for ref in ("B1", "B2", "B3")] == [1, 1, 1]


def test_a_batch_takes_one_ledger_step_per_update_and_drops_in_flight_entries_at_its_end(
    pipeline, sandbox, rt
):
    """Each update's claim rides with the finish of the one before (three deliveries, four
    steps); every update's outcome record and count are written, the lock freed, and the
    in-flight entries all go with the last step."""
    refs = ("S1", "S2", "S3")
    receipts = [pipeline.enqueue(shirt_order(ref)) for ref in refs]
    batch = [pipeline.take_next() for _ in refs]
    rt.schedule.hand_off(batch, watch_until=time.time() + 600)
    steps = []
    step = rt.ledger.step

    def counted(*args, **kwargs):  # a spy: the real step runs
        steps.append(kwargs.get("drop", ()))
        return step(*args, **kwargs)

    rt.ledger.step = counted
    assert run_batch(batch, rt) == ["delivered"] * 3
    assert len(steps) == 4
    assert [len(drop) for drop in steps] == [0, 0, 0, 3]
    assert rt.schedule.in_flight() == 0
    for receipt, ref in zip(receipts, refs, strict=True):
        assert rt.ledger.versions(MERCHANT, ref) == (1, 1)
        assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, ref)) == 0
        stored = rt.redis.get(keys.outcome(rt.settings.key_prefix, receipt.update_id))
        assert json.loads(stored)["outcome"] == "delivered"
    assert rt.metrics.totals().updates == {"delivered|": "3"}


def broken_for(rt, failing_ref):
    """Make ``rt``'s client raise, as a bug would, when it sends for ``failing_ref``."""
    send = rt.client.update_order

    def broken(account, order_ref, body, **options):
        if order_ref == failing_ref:
            raise RuntimeError("a bug")
        return send(account, order_ref, body, **options)

    rt.client.update_order = broken


def test_an_update_failing_unexpectedly_does_not_stop_its_batch(pipeline, sandbox, rt):
    """A bug hit by one update still lets the rest of the batch through; the failed update
    leaves the in-flight set for the schedule, to be tried again after a backoff, and its
    order's lock is free."""
    for ref in ("B1", "B2", "B3"):
        pipeline.enqueue(shirt_order(ref))
    batch = [pipeline.take_next() for _ in range(3)]
    rt.schedule.hand_off(batch, watch_until=time.time() + 600)
    broken_for(rt, "B2")
    started = time.time()
    assert run_batch(batch, rt) == ["delivered", "failed", "delivered"]
    assert [sandbox.state.calls(MERCHANT, ref) for ref in ("B1", "B3")] == [1, 1]
    assert rt.schedule.in_flight() == 0
    [(message, due)] = pipeline.scheduled()
    assert message == json.loads(batch[1])
    assert started < due <= time.time() + backoff_ceiling(1, base=1.0, cap=30.0)
    assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, "B2")) == 0


def test_a_failed_step_leaves_the_waiting_finish_for_the_next_one(pipeline, sandbox, rt, caplog):
    """When the step that carries B1's finish fails (with B2's claim), B1's delivery is still
    recorded, once, with the task's next step; B2 goes back to the schedule."""
    for ref in ("B1", "B2", "B3"):
        pipeline.enqueue(shirt_order(ref))
    batch = [pipeline.take_next() for _ in range(3)]
    rt.schedule.hand_off(batch, watch_until=time.time() + 600)
    step, calls = rt.ledger.step, []

    def failing_once(*args, **kwargs):  # fault injection around the real step
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("a bug in the step")
        return step(*args, **kwargs)

    rt.ledger.step = failing_once
    caplog.set_level(logging.INFO, logger="cartsync.order_update")
    assert run_batch(batch, rt) == ["delivered", "failed", "delivered"]
    assert [rt.ledger.versions(MERCHANT, ref) for ref in ("B1", "B2", "B3")] == [
        (1, 1), (1, 0), (1, 1),
    ]  # fmt: skip
    assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, "B1")) == 0
    delivered = [r.getMessage() for r in caplog.records if "outcome=delivered" in r.getMessage()]
    assert [("order_ref=B1" in m, "order_ref=B3" in m) for m in delivered] == [
        (True, False), (False, True),
    ]  # fmt: skip
    assert rt.metrics.totals().updates["delivered|"] == "2"
    assert rt.schedule.in_flight() == 0
    [(message, _)] = pipeline.scheduled()
    assert message == json.loads(batch[1])


def test_a_batch_mixing_superseded_and_sent_updates_records_each_once(pipeline, sandbox, rt):
    """Superseded, delivered and conflicting updates in one task: each outcome is counted
    once (the claim's in its own step), every in-flight entry goes, no lock stays."""
    sandbox.state.script(MERCHANT, "M3", [409])
    pipeline.enqueue(shirt_order("M1"), version=1)
    pipeline.enqueue(shirt_order("M1"), version=2)
    pipeline.enqueue(shirt_order("M3"))
    batch = [pipeline.take_next() for _ in range(3)]
    rt.schedule.hand_off(batch, watch_until=time.time() + 600)
    assert run_batch(batch, rt) == ["superseded", "delivered", "dead_lettered"]
    assert rt.metrics.totals().updates == {
        "superseded|": "1", "delivered|": "1", "dead_lettered|conflict": "1",
    }  # fmt: skip
    assert rt.schedule.in_flight() == 0
    for ref in ("M1", "M3"):
        assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, ref)) == 0
    assert rt.ledger.versions(MERCHANT, "M1") == (2, 2)


def test_an_update_that_keeps_failing_is_parked_as_invalid(pipeline, sandbox, rt, capsys):
    """After CARTSYNC_WORKER_MAX_FAILURES unexpected failures, counted in Redis across worker
    processes, the update is parked as invalid with the exception's type, message and place;
    every failure is counted for the metrics and logged without the payload."""
    receipt = pipeline.enqueue(shirt_order("B2"))
    member = pipeline.take_next()
    outcomes = []
    for _ in range(3):
        worker = Runtime(rt.settings)  # a fresh worker process each time
        broken_for(worker, "B2")
        rt.schedule.hand_off([member], watch_until=time.time() + 600)
        rt.schedule.remove(member)
        outcomes += run_batch([member], worker)
        worker.client.close()
    assert outcomes == ["failed", "failed", "dead_lettered"]
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    letter = rt.dead_letters.get(letter_id.decode())
    assert (letter.reason, letter.status) == ("invalid", None)
    [error] = letter.errors
    assert error.startswith("processing failed unexpectedly 3 time(s), the last with ")
    assert "RuntimeError: a bug (at tests/tasks/test_order_update.py:" in error
    assert letter.payload == json.loads(member)["body"]
    assert (rt.schedule.in_flight(), rt.schedule.depth()) == (0, 0)
    assert rt.redis.keys(keys.failures(rt.settings.key_prefix, "*")) == []
    assert rt.metrics.totals().updates == {"failed|RuntimeError": "2", "dead_lettered|invalid": "1"}
    assert "shirt1234" not in capsys.readouterr().out
    assert sandbox.state.calls(MERCHANT, "B2") == 0


def test_the_failure_count_expires(pipeline, sandbox, rt):
    """An update's count of failures lives in Redis with an expiry, so that it is kept across
    worker restarts and does not stay forever."""
    receipt = pipeline.enqueue(shirt_order("B2"))
    member = pipeline.take_next()
    broken_for(rt, "B2")
    assert run_batch([member], rt) == ["failed"]
    key = keys.failures(rt.settings.key_prefix, receipt.update_id)
    assert rt.redis.get(key) == b"1"
    assert 0 < rt.redis.ttl(key) <= FAILURE_MEMORY_S


@pytest.mark.parametrize(
    ("part", "field", "value", "name"),
    [
        ("merchant", "id", "another-shop", "merchant-ref"),
        ("merchant_reference", "order_ref_1", "B9", "order-ref"),
    ],
)
def test_a_body_naming_another_merchant_or_order_is_parked_and_never_sent(
    pipeline, sandbox, rt, part, field, value, name
):
    """A message whose body's merchant.id or order_ref_1 differs from the message's own is
    parked as invalid, naming the field, and nothing reaches seQura."""
    receipt = pipeline.enqueue(shirt_order("B1"))
    message = json.loads(pipeline.take_next())
    message["body"]["order"][part][field] = value
    assert process(member_of(message), rt) == "dead_lettered"
    assert sandbox.state.calls(MERCHANT, "B1") == sandbox.state.calls(MERCHANT, "B9") == 0
    letter_id = rt.redis.hget(keys.dlq_by_update(rt.settings.key_prefix), receipt.update_id)
    letter = rt.dead_letters.get(letter_id.decode())
    assert letter.reason == "invalid"
    assert letter.errors == [
        f"order.{part}.{field}: does not match the {name} the update was queued for"
    ]
    assert rt.redis.exists(keys.lock(rt.settings.key_prefix, MERCHANT, "B1")) == 0


def test_identity_is_compared_as_the_producer_reads_it():
    """A numeric merchant id or order ref equals its text; a body that leaves them out is
    validation's business, not a mismatch."""

    def message(order):
        return UpdateMessage(
            update_id="u", merchant="42", order_ref="7", version=1, body={"order": order},
            enqueued_at=1.0,
        )  # fmt: skip

    numeric = {"merchant": {"id": 42}, "merchant_reference": {"order_ref_1": 7}}
    assert identity_errors(message(numeric)) == []
    assert identity_errors(message({})) == []
    assert identity_errors(message({"merchant": "42", "merchant_reference": None})) == []
    assert len(identity_errors(message({"merchant": {"id": True}}))) == 0
    assert len(identity_errors(message({"merchant": {"id": 43}}))) == 1


def test_a_batch_past_its_time_hands_back_what_it_has_not_started(pipeline, sandbox, rt):
    """Once half the visibility timeout has passed, the updates not started go back to the
    schedule, due now, instead of running past the point where the broker would hand the task
    to a second worker."""
    rt.settings = rt.settings.with_overrides(visibility_timeout_s=0.000001)
    for ref in ("B1", "B2", "B3"):
        pipeline.enqueue(shirt_order(ref))
    batch = [pipeline.take_next() for _ in range(3)]
    rt.schedule.hand_off(batch, watch_until=time.time() + 600)
    assert run_batch(batch, rt) == ["delivered"]
    assert rt.schedule.in_flight() == 0
    assert rt.schedule.due(time.time()) == 2
    assert pipeline.run_due_retries() == ["delivered", "delivered"]
