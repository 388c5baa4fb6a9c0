"""Versions stay exact through Lua: decimal text compared as numbers, up to 2**63-1.

Lua numbers are doubles, exact only up to 2**53; a producer's version may be a microsecond
timestamp (past 2**53) or any integer up to 2**63-1. Every script of the ledger keeps them as
text, so versions one apart are told apart at any size.
"""

import pytest

from cartsync.tasks.message import MAX_VERSION
from cartsync.worker import keys
from cartsync.worker.ledger import Claim, Ledger, stored_version
from tests.worker.ledger_support import accept

PREFIX = "t"
PARKED = keys.dlq_by_update(PREFIX)
#: Past it, doubles skip odd integers: 2**53 + 1 reads as 2**53.
EDGE = 2**53


@pytest.fixture
def ledger(redis_client):
    return Ledger(redis_client, PREFIX)


def claim(ledger, version, update_id="w"):
    return ledger.claim(
        "m1", "o1", update_id=update_id, version=version, parked_index=PARKED, ttl_s=5
    )[0]


@pytest.mark.parametrize("version", [EDGE + 1, 10**14, 10**18, MAX_VERSION])
def test_a_large_version_is_recorded_and_scheduled_exactly(ledger, redis_client, version):
    """The ledger, the message joined in Redis and the update marker hold the very integer."""
    assert accept(ledger, version) == ("enqueued", version)
    assert ledger.versions("m1", "o1") == (version, 0)
    [member] = redis_client.zrange(keys.schedule(PREFIX), 0, -1)
    assert member == f'{{"version":{version},"x":1}}'.encode()
    assert accept(ledger, version) == ("duplicate", version)


def test_versions_one_apart_past_2_53_are_ordered(ledger):
    """2**53+2 is newer than 2**53+1, which is then superseded; a replay of 2**53+2 is equal."""
    assert accept(ledger, EDGE + 1, update_id="a") == ("enqueued", EDGE + 1)
    assert accept(ledger, EDGE + 2, update_id="b") == ("enqueued", EDGE + 2)
    assert accept(ledger, EDGE + 1, update_id="c") == ("superseded", EDGE + 2)
    assert accept(ledger, EDGE + 2, update_id="d", allow_equal=True) == ("enqueued", EDGE + 2)


def test_the_next_version_counts_on_past_2_53_and_across_digits(ledger):
    """Without a producer version, the next one is exact: 2**53+2 after 2**53+1, and
    10**18 after 10**18-1 (a carry through every digit)."""
    accept(ledger, EDGE + 1, update_id="a")
    assert accept(ledger, update_id="b") == ("enqueued", EDGE + 2)
    accept(ledger, 10**18 - 1, update_id="c")
    assert accept(ledger, update_id="d") == ("enqueued", 10**18)


def test_an_order_at_the_highest_version_is_full(ledger, redis_client):
    """After 2**63-1 no next version is assigned, and nothing is scheduled."""
    accept(ledger, MAX_VERSION, update_id="a")
    assert accept(ledger, update_id="b") == ("full", MAX_VERSION)
    assert redis_client.zcard(keys.schedule(PREFIX)) == 1


def test_claim_and_finish_compare_exactly_past_2_53(ledger):
    """A delivery of 2**53+1 is recorded as such; 2**53 is then superseded, not a duplicate,
    and a later delivery of 2**53 does not lower it."""
    ledger.finish("m1", "o1", "no-lock", delivered=EDGE + 1)
    assert ledger.versions("m1", "o1") == (0, EDGE + 1)
    assert claim(ledger, EDGE) is Claim.SUPERSEDED
    assert claim(ledger, EDGE + 1) is Claim.DUPLICATE
    ledger.finish("m1", "o1", "no-lock", delivered=EDGE)
    assert ledger.versions("m1", "o1") == (0, EDGE + 1)
    assert claim(ledger, EDGE + 2) is Claim.SEND


def test_versions_read_back_as_ints(ledger, redis_client):
    """``versions`` returns ints, also for text an older release wrote as a Lua number."""
    redis_client.hset(keys.order(PREFIX, "m1", "o1"), mapping={"enqueued": "1e+20"})
    assert ledger.versions("m1", "o1") == (10**20, 0)
    assert stored_version(b"007") == 7
    assert stored_version("garbage") == 0


def test_an_older_release_s_float_text_still_compares_as_its_number(ledger, redis_client):
    """A ledger holding ``1e+20`` refuses older versions as superseded rather than misreading
    it as text; its order is at a version past the highest, so it takes no next one."""
    redis_client.hset(keys.order(PREFIX, "m1", "o1"), mapping={"enqueued": "1e+20"})
    assert accept(ledger, MAX_VERSION, update_id="a") == ("superseded", 10**20)
    assert accept(ledger, update_id="b") == ("full", 10**20)


@pytest.mark.parametrize("version", [1.5, 2.0, True, 0, -1, MAX_VERSION + 1, "3"])
def test_the_ledger_takes_only_int_versions_in_range(ledger, version):
    """A float (which would reach Lua as ``2.0``), a bool or a version out of range is a
    ValueError before anything is sent to Redis."""
    with pytest.raises(ValueError, match="version"):
        accept(ledger, version)
    with pytest.raises(ValueError, match="version"):
        claim(ledger, version)
    with pytest.raises(ValueError, match="version"):
        ledger.finish("m1", "o1", "no-lock", delivered=version)
