"""Dead letters made by real seQura answers, and replayed through the real pipeline.

A real Celery worker sends to the sandbox; letters are parked by genuine 409s and by 5xx
exhaustion, then inspected and replayed with ``cartsync dlq`` as an on-call engineer would.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.worker.cli import cli
from tests import support
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for

pytestmark = pytest.mark.slow

MERCHANT = SHOP.ref


# The pipeline's fixtures (tests/support.py): the sandbox that knows SHOP, a worker's
# environment and a producer, both sending as SHOP.
sandbox, env, producer = support.sandbox, support.env, support.producer


@pytest.fixture
def dlq(env):
    """Runs ``cartsync dlq ARGS...`` with the worker's environment; returns click's Result."""
    cleared = {name: None for name in os.environ if name.startswith("CARTSYNC_")}

    def run(*args: str):
        result = CliRunner(env={**cleared, **env}).invoke(
            cli, ["dlq", *args], catch_exceptions=False
        )
        assert "Traceback" not in result.output
        return result

    return run


def letters(dlq, *filters: str) -> list[dict]:
    result = dlq("list", "--json", *filters)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def shirts(order_ref: str, quantity: int) -> dict:
    return fully_shipped(
        merchant=MERCHANT, order_ref=order_ref, items=[Item("shirt", "Shirt", 1000, quantity)]
    )


def state_items(sandbox, order_ref):
    found = sandbox.state.order(MERCHANT, order_ref)
    return None if found is None else found["state"]["shipped_cart"]["items"]


def test_a_real_409_is_parked_shown_and_replayed_once_sequra_accepts(sandbox, env, producer, dlq):
    """An upsell seQura refuses with 409 is parked with its text; after the fix it replays and
    seQura holds the state."""
    sandbox.state.create_order(MERCHANT, "U1", shirts("U1", 1)["order"])
    with running_worker(env) as worker:
        producer.enqueue(shirts("U1", 3))  # +200 %: over seQura's 15 % upselling limit
        wait_for(lambda: letters(dlq), on_fail=worker.log_text)
        [letter] = letters(dlq)
        assert letter["reason"] == "conflict"
        assert letter["status"] == 409
        assert "15%" in dlq("show", letter["id"]).output
        # seQura's operations raise the limit (here: the order is checked out again).
        sandbox.state.create_order(MERCHANT, "U1", shirts("U1", 3)["order"])
        dry = dlq("replay", letter["id"], "--dry-run")
        assert "would replay" in dry.output
        assert letters(dlq) != []
        result = dlq("replay", letter["id"], "--yes")
        assert "1 replayed" in result.output
        wait_for(
            lambda: state_items(sandbox, "U1") and state_items(sandbox, "U1")[0]["quantity"] == 3,
            on_fail=worker.log_text,
        )
    assert letters(dlq) == []


def test_exhausted_retries_are_parked_and_replayed_by_filter(sandbox, env, producer, dlq):
    """Updates that ran out of retries while seQura was down are replayed by reason and arrive."""
    sandbox.state.set_faults({"fail_rate": 1.0})
    with running_worker(env) as worker:
        for ref in ("X1", "X2"):
            producer.enqueue(shirts(ref, 1))
        wait_for(
            lambda: len(letters(dlq, "--reason", "exhausted")) == 2,
            timeout=30,
            on_fail=worker.log_text,
        )
        [first, *_] = letters(dlq)
        assert first["attempts"] == int(env["CARTSYNC_RETRY_MAX_ATTEMPTS"])
        sandbox.state.set_faults({"fail_rate": 0.0})
        result = dlq("replay", "--reason", "exhausted", "--yes")
        assert "2 replayed" in result.output
        wait_for(
            lambda: state_items(sandbox, "X1") and state_items(sandbox, "X2"),
            on_fail=worker.log_text,
        )


def test_replay_of_a_superseded_letter_is_refused_unless_forced(sandbox, env, producer, dlq):
    """v1 parked, v2 delivered: replaying v1 is refused; --force sends it as the newest."""
    sandbox.state.script(MERCHANT, "S1", [409])
    with running_worker(env) as worker:
        producer.enqueue(shirts("S1", 1))
        wait_for(lambda: letters(dlq), on_fail=worker.log_text)
        [letter] = letters(dlq)
        producer.enqueue(shirts("S1", 2))
        wait_for(
            lambda: state_items(sandbox, "S1") and state_items(sandbox, "S1")[0]["quantity"] == 2,
            on_fail=worker.log_text,
        )
        refused = dlq("replay", letter["id"], "--yes")
        assert "1 refused" in refused.output
        assert [x["id"] for x in letters(dlq)] == [letter["id"]]
        assert state_items(sandbox, "S1")[0]["quantity"] == 2
        forced = dlq("replay", letter["id"], "--yes", "--force")
        assert "1 replayed" in forced.output
        wait_for(lambda: state_items(sandbox, "S1")[0]["quantity"] == 1, on_fail=worker.log_text)
    versions = [h["version"] for h in sandbox.state.order(MERCHANT, "S1")["history"]]
    assert versions == sorted(versions)
