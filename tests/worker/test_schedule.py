"""The schedule moves due messages to the queue at least once, never early."""

import contextlib

from worker.schedule import Schedule, pump_once


def test_only_due_messages_are_published(redis_client):
    """A message due later stays in the schedule; a due one is published and removed."""
    schedule = Schedule(redis_client, "t")
    schedule.add({"n": 1}, due=100.0)
    schedule.add({"n": 2}, due=200.0)
    published: list[dict] = []
    assert pump_once(schedule, published.append, now=150.0, lease_s=30) == 1
    assert published == [{"n": 1}]
    assert schedule.depth() == 1


def test_failed_publish_leaves_the_message_to_be_published_after_the_lease(redis_client):
    """If publishing fails after the claim, the message comes due again when the lease ends."""
    schedule = Schedule(redis_client, "t")
    schedule.add({"n": 1}, due=100.0)

    def broken(message):
        raise ConnectionError("broker gone")

    with contextlib.suppress(ConnectionError):
        pump_once(schedule, broken, now=100.0, lease_s=30)
    published: list[dict] = []
    assert pump_once(schedule, published.append, now=110.0, lease_s=30) == 0
    assert pump_once(schedule, published.append, now=131.0, lease_s=30) == 1
    assert published == [{"n": 1}]
    assert schedule.depth() == 0


def test_claimed_messages_are_hidden_from_a_second_pump(redis_client):
    """Two workers pumping at once publish each due message once."""
    schedule = Schedule(redis_client, "t")
    for n in range(10):
        schedule.add({"n": n}, due=1.0)
    first = schedule.claim_due(now=5.0, lease_s=30)
    second = schedule.claim_due(now=5.0, lease_s=30)
    assert len(first) == 10
    assert second == []
