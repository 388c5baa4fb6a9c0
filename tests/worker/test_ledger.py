"""The order ledger: versions grow per order, stale versions are refused, one sender per order."""

import pytest

from cartsync.worker import keys
from cartsync.worker.ledger import Claim, Decision, Ledger, decide
from tests.worker.ledger_support import accept

PREFIX = "t"
#: The dead-letter index a claim checks; empty here, so no update counts as parked.
PARKED = keys.dlq_by_update(PREFIX)


@pytest.fixture
def ledger(redis_client):
    return Ledger(redis_client, PREFIX)


def record_delivered(ledger, version):
    """Record a delivery as a worker does after sending: :meth:`Ledger.finish` records the
    version whoever holds the order's lock (here: nobody)."""
    ledger.finish("m1", "o1", "no-lock-held", delivered=version)


def take_lock(ledger, update_id):
    """Claim version 1 of the order as a worker about to send; (claim, the lock's token)."""
    return ledger.claim("m1", "o1", update_id=update_id, version=1, parked_index=PARKED, ttl_s=5)


def release_lock(ledger, token):
    """Release the order's lock as a worker does when it is done (the lock stays if another
    worker holds it)."""
    ledger.finish("m1", "o1", token, delivered=None)


@pytest.mark.parametrize(
    ("version", "enqueued", "delivered", "expected"),
    [
        (3, 3, 2, Decision.SEND),
        (3, 4, 2, Decision.SUPERSEDED),
        (3, 3, 3, Decision.DUPLICATE),
        (3, 3, 5, Decision.SUPERSEDED),
        (1, 0, 0, Decision.SEND),
    ],
)
def test_decide(version, enqueued, delivered, expected):
    """A version is sent only while no newer one is enqueued or delivered."""
    assert decide(version, enqueued, delivered) is expected


def test_assigned_versions_grow_per_order(ledger):
    """Without a producer version, each update gets the order's next version."""
    assert accept(ledger, update_id="a") == ("enqueued", 1)
    assert accept(ledger, update_id="b") == ("enqueued", 2)
    assert accept(ledger, update_id="c", order="other") == ("enqueued", 1)
    assert ledger.versions("m1", "o1") == (2, 0)


def test_accept_schedules_the_message_with_its_version(ledger, redis_client):
    """The scheduled message carries the version the ledger assigned, joined in Redis."""
    accept(ledger, version=41)
    assert redis_client.zrange(keys.schedule(PREFIX), 0, -1) == [b'{"version":41,"x":1}']


def test_older_producer_version_is_superseded(ledger, redis_client):
    """A producer version older than the newest enqueued is refused and nothing is scheduled."""
    accept(ledger, version=10, update_id="a")
    assert accept(ledger, version=9, update_id="b") == ("superseded", 10)
    assert accept(ledger, version=10, update_id="c") == ("superseded", 10)
    assert redis_client.zcard(keys.schedule(PREFIX)) == 1


def test_replay_may_reuse_the_newest_version(ledger):
    """A replay of the newest version is accepted; of an older one, refused."""
    accept(ledger, version=5, update_id="a")
    assert accept(ledger, version=5, update_id="r1", allow_equal=True) == ("enqueued", 5)
    accept(ledger, version=6, update_id="b")
    assert accept(ledger, version=5, update_id="r2", allow_equal=True) == ("superseded", 6)


def test_same_update_id_is_enqueued_once(ledger, redis_client):
    """Enqueueing an update id again is reported as a duplicate and schedules nothing."""
    accept(ledger, update_id="same")
    assert accept(ledger, update_id="same") == ("duplicate", 1)
    assert redis_client.zcard(keys.schedule(PREFIX)) == 1


def test_a_repeated_update_id_is_a_duplicate_even_when_its_version_is_now_refused(ledger):
    """An update id seen before answers "duplicate" with the version it got, also when the
    version it carries would now be superseded or it names none."""
    assert accept(ledger, version=5, update_id="x") == ("enqueued", 5)
    accept(ledger, version=9, update_id="y")
    assert accept(ledger, version=5, update_id="x") == ("duplicate", 5)
    assert accept(ledger, update_id="x") == ("duplicate", 5)
    assert accept(ledger, version=3, update_id="z") == ("superseded", 9)


def test_delivered_version_only_grows(ledger):
    """Recording an older delivery after a newer one leaves the newer one."""
    record_delivered(ledger, 5)
    record_delivered(ledger, 3)
    assert ledger.versions("m1", "o1") == (0, 5)


def test_a_version_at_or_below_delivered_is_refused(ledger):
    """Even a replay cannot enqueue a version seQura already has a newer state for."""
    record_delivered(ledger, 5)
    assert accept(ledger, version=5, allow_equal=True) == ("superseded", 5)
    assert accept(ledger) == ("enqueued", 6)


def test_lock_admits_one_holder_and_only_the_holder_releases(ledger):
    """The order lock is exclusive, and a stale token cannot release another's lock."""
    found, token = take_lock(ledger, "u1")
    assert found is Claim.SEND
    assert take_lock(ledger, "u2")[0] is Claim.BUSY
    release_lock(ledger, "not-the-token")
    assert take_lock(ledger, "u2")[0] is Claim.BUSY
    release_lock(ledger, token)
    assert take_lock(ledger, "u2")[0] is Claim.SEND
