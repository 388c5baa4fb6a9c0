"""Parking waits for replicas too (CARTSYNC_REDIS_MIN_REPLICAS): a letter the replicas do not
confirm does not end its update's attempt, so a failover cannot lose a letter counted as
parked."""

from __future__ import annotations

import time

import pytest

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.order_update import run_batch
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.runtime import Runtime
from tests import support
from tests.sandbox_fixtures import SHOP

sandbox = support.sandbox


@pytest.fixture
def runtimes(settings, sandbox):
    """Two runtimes on the test Redis (which has no replica): one asking for a replica's
    confirmation, one not."""
    base = settings.with_overrides(
        sequra_url=sandbox.url,
        sequra_username=SHOP.username,
        sequra_password=SHOP.password,
        retry_base_s=0.01,
        retry_cap_s=0.01,
        read_timeout_s=1.0,
        connect_timeout_s=1.0,
        lock_ttl_s=5.0,
    )
    waiting = Runtime(base.with_overrides(redis_min_replicas=1, redis_replica_timeout_ms=20))
    plain = Runtime(base)
    yield waiting, plain
    for rt in (waiting, plain):
        rt.client.close()


def take_due(rt: Runtime) -> list[str]:
    """Take every scheduled message out of the schedule, as a pump would."""
    members: list[bytes] = rt.redis.zrange(rt.schedule.key, 0, -1)  # type: ignore[assignment]
    for member in members:
        rt.redis.zrem(rt.schedule.key, member)
    return [m.decode() for m in members]


def test_an_unconfirmed_park_leaves_the_update_to_come_back(runtimes, sandbox):
    """A 409 is parked, but with no replica to confirm the letter the attempt ends as a
    failure and the message goes back to the schedule; once replicas confirm (here: none asked
    for), it comes back, finds its letter, and ends as a duplicate: one letter, none lost."""
    waiting, plain = runtimes
    order_ref = "PARK-WAIT-1"
    sandbox.state.script(SHOP.ref, order_ref, [409])
    body = fully_shipped(
        merchant=SHOP.ref, order_ref=order_ref, items=[Item("shirt1234", "shirt", 1250, 1)]
    )
    receipt = Producer(plain.settings, client=plain.redis).enqueue(body)
    assert run_batch(take_due(waiting), waiting) == ["failed"]
    store = DeadLetterStore(plain.redis, plain.settings.key_prefix)
    assert store.holds_update(receipt.update_id)  # on the master, not yet confirmed
    time.sleep(0.05)  # the failure's backoff
    again = take_due(plain)
    assert len(again) == 1
    assert run_batch(again, plain) == ["duplicate"]
    assert sandbox.state.calls(SHOP.ref, order_ref) == 1
