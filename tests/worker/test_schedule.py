"""The schedule moves due messages to the queue at least once, never early, in batches that
fit the room the queue has."""

import contextlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartsync.worker.schedule import Schedule, batch_sizes, member_of, pump_once

QUEUE = "t-queue"


def pump(schedule, publish, *, now, slots=4, batch=8, **options):
    return pump_once(
        schedule, publish, now=now, lease_s=30, queue=QUEUE, slots=slots, batch=batch, **options
    )


def test_only_due_messages_are_published(redis_client):
    """A message due later stays in the schedule; a due one is published and removed."""
    schedule = Schedule(redis_client, "t")
    schedule.add({"n": 1}, due=100.0)
    schedule.add({"n": 2}, due=200.0)
    published: list[list[str]] = []
    assert pump(schedule, published.append, now=150.0).members == [member_of({"n": 1})]
    assert published == [[member_of({"n": 1})]]
    assert schedule.depth() == 1


def test_failed_publish_leaves_the_message_to_be_published_after_the_lease(redis_client):
    """If publishing fails after the claim, the message comes due again when the lease ends."""
    schedule = Schedule(redis_client, "t")
    schedule.add({"n": 1}, due=100.0)

    def broken(members):
        raise ConnectionError("broker gone")

    with contextlib.suppress(ConnectionError):
        pump(schedule, broken, now=100.0)
    published: list[list[str]] = []
    assert pump(schedule, published.append, now=110.0).members == []
    assert len(pump(schedule, published.append, now=131.0).members) == 1
    assert published == [[member_of({"n": 1})]]
    assert schedule.depth() == 0


def test_claimed_messages_are_hidden_from_a_second_pump(redis_client):
    """Two workers pumping at once publish each due message once."""
    schedule = Schedule(redis_client, "t")
    for n in range(10):
        schedule.add({"n": n}, due=1.0)
    first = schedule.claim_due(now=5.0, lease_s=30, queue=QUEUE, slots=4, batch=8)
    second = schedule.claim_due(now=5.0, lease_s=30, queue=QUEUE, slots=4, batch=8)
    assert len(first.members) == 10
    assert second.members == []


def test_a_claim_with_a_watch_time_hands_its_entries_off_in_the_same_step(redis_client):
    """With a watch time, claimed entries leave the schedule for the in-flight set at once,
    watched until then; a claim that took as many as it could says so (look again at once),
    one that took every due entry does not (wait for a wake token)."""
    schedule = Schedule(redis_client, "t")
    for n in range(5):
        schedule.add({"n": n}, due=1.0)
    schedule.add({"n": 9}, due=50.0)
    first = schedule.claim_due(
        now=5.0, lease_s=30, queue=QUEUE, slots=2, batch=2, watch_until=500.0
    )
    assert (first.members, first.full) == ([member_of({"n": n}) for n in range(4)], True)
    assert schedule.in_flight() == 4
    assert redis_client.zscore(schedule.inflight_key, member_of({"n": 0})) == 500.0
    assert schedule.due(5.0) == 1
    second = schedule.claim_due(
        now=5.0, lease_s=30, queue=QUEUE, slots=2, batch=2, watch_until=500.0
    )
    assert (second.members, second.full) == ([member_of({"n": 4})], False)
    assert (schedule.depth(), schedule.in_flight()) == (1, 5)


def test_a_backlog_is_cut_into_one_batch_per_free_slot(redis_client):
    """Ten due messages and four free slots make four tasks of 3, 3, 2 and 2, in due order."""
    schedule = Schedule(redis_client, "t")
    for n in range(10):
        schedule.add({"n": n}, due=float(n))
    published: list[list[str]] = []
    pump(schedule, published.append, now=100.0, slots=4, batch=8)
    assert [len(task) for task in published] == [3, 3, 2, 2]
    assert [m for task in published for m in task] == [member_of({"n": n}) for n in range(10)]


def test_the_pump_claims_only_what_the_queue_has_room_for(redis_client):
    """With the queue holding 3 of 4 tasks, one more task of at most ``batch`` updates goes;
    with the queue full, nothing is claimed and the rest waits in the schedule."""
    schedule = Schedule(redis_client, "t")
    for n in range(10):
        schedule.add({"n": n}, due=1.0)
    redis_client.rpush(QUEUE, "a", "b", "c")
    published: list[list[str]] = []
    claimed = pump(schedule, published.append, now=5.0, slots=4, batch=3)
    assert (claimed.free, [len(task) for task in published]) == (1, [3])
    redis_client.rpush(QUEUE, "d")
    assert pump(schedule, published.append, now=5.0, slots=4, batch=3).free == 0
    assert schedule.due(5.0) == 7


def test_given_back_messages_are_due_again_and_wake_the_pump(redis_client):
    """Entries a worker hands back leave the in-flight set, are due at once, and leave a
    wake token."""
    schedule = Schedule(redis_client, "t")
    members = [member_of({"n": n}) for n in range(3)]
    schedule.hand_off(members, watch_until=1000.0)
    schedule.give_back(members[1:], now=50.0)
    assert schedule.in_flight() == 1
    assert schedule.due(50.0) == 2
    assert redis_client.lrange(schedule.wake_key, 0, -1) == [b"1"]


def test_waiting_for_work_returns_at_once_when_woken(redis_client):
    """A wake token ends the pump's wait at once; without one it waits its time out."""
    schedule = Schedule(redis_client, "t")
    redis_client.rpush(schedule.wake_key, 1)
    started = time.monotonic()
    schedule.wait_for_work(5.0)
    assert time.monotonic() - started < 1.0
    assert redis_client.llen(schedule.wake_key) == 0  # the token was taken
    started = time.monotonic()
    schedule.wait_for_work(0.2)
    assert time.monotonic() - started >= 0.15


@given(count=st.integers(0, 2000), free=st.integers(1, 200), most=st.integers(1, 50))
def test_batch_sizes_cover_every_update_evenly_within_the_limit(count, free, most):
    """The batches add up to what was claimed, none exceeds the limit, they differ by one at
    most, and no more tasks are made than needed to fill the free slots."""
    sizes = batch_sizes(count, free, most)
    assert sum(sizes) == count
    assert all(1 <= size <= most for size in sizes)
    if sizes:
        assert max(sizes) - min(sizes) <= 1
        assert len(sizes) <= max(free, -(-count // most))


@pytest.mark.parametrize(
    ("count", "free", "most", "sizes"),
    [(1, 64, 16, [1]), (5, 64, 16, [1] * 5), (100, 4, 16, [15, 15, 14, 14, 14, 14, 14])],
)
def test_a_trickle_goes_one_per_task_and_a_burst_in_batches(count, free, most, sizes):
    """Few updates with many free slots travel one per task; a burst fills tasks evenly."""
    assert batch_sizes(count, free, most) == sizes
