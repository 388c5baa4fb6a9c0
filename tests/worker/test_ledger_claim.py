"""The worker's one-round-trip claim and finish agree with the ledger's rules."""

import itertools

import pytest

from cartsync.worker import keys
from cartsync.worker.ledger import Claim, Decision, Ledger, decide

PREFIX = "t"
PARKED = keys.dlq_by_update(PREFIX)


@pytest.fixture
def ledger(redis_client):
    return Ledger(redis_client, PREFIX)


def set_versions(redis_client, enqueued, delivered):
    key = keys.order(PREFIX, "m1", "o1")
    redis_client.delete(key)
    mapping = {k: v for k, v in (("enqueued", enqueued), ("delivered", delivered)) if v}
    if mapping:
        redis_client.hset(key, mapping=mapping)


def claim(ledger, version, update_id="u1", orders_flagged=True):
    return ledger.claim(
        "m1", "o1", update_id=update_id, version=version, parked_index=PARKED, ttl_s=5,
        orders_flagged=orders_flagged,
    )  # fmt: skip


def test_claim_decides_exactly_as_decide(ledger, redis_client):
    """For every combination of version, enqueued and delivered up to 3, the Lua claim gives
    the decision of the pure ``decide`` (and takes the lock only to send)."""
    for version, enqueued, delivered in itertools.product(range(1, 4), range(4), range(4)):
        set_versions(redis_client, enqueued, delivered)
        found, token = claim(ledger, version)
        expected = decide(version, enqueued, delivered)
        assert found.value == expected.value, (version, enqueued, delivered)
        locked = redis_client.get(keys.lock(PREFIX, "m1", "o1"))
        assert (locked == f"{token}:{version}".encode()) == (expected is Decision.SEND)
        ledger.finish("m1", "o1", token, delivered=None)


def test_claim_of_a_parked_update_says_parked(ledger, redis_client):
    """An update whose id the dead-letter index holds, in an order its park flagged, is not
    sent again."""
    redis_client.hset(PARKED, "u1", "letter-1")
    redis_client.hset(keys.order(PREFIX, "m1", "o1"), "parked", "1")
    assert claim(ledger, 1)[0] is Claim.PARKED


def test_claim_reads_the_dead_letters_only_for_a_flagged_order(ledger, redis_client):
    """Once every order with a letter is flagged, the claim does not look at the dead-letter
    index for an order without the flag (the one command per update it saves); until then
    it looks for every update."""
    redis_client.hset(PARKED, "u1", "letter-1")
    assert claim(ledger, 1, orders_flagged=False)[0] is Claim.PARKED
    assert claim(ledger, 1, orders_flagged=True)[0] is Claim.SEND


def test_second_sender_finds_the_order_busy(ledger):
    """While one worker holds an order's lock, another's claim is BUSY, until finish."""
    first, token = claim(ledger, 1)
    assert first is Claim.SEND
    assert claim(ledger, 1, update_id="u2")[0] is Claim.BUSY
    ledger.finish("m1", "o1", token, delivered=None)
    assert claim(ledger, 1, update_id="u2")[0] is Claim.SEND


def test_finish_records_delivery_and_releases(ledger):
    """finish with a delivered version records it (never lowering it, even from the lock's
    holder) and frees the lock."""
    _, token = claim(ledger, 3)
    ledger.finish("m1", "o1", token, delivered=3)
    assert ledger.versions("m1", "o1") == (0, 3)
    _, token = claim(ledger, 4)
    ledger.finish("m1", "o1", token, delivered=2)
    assert ledger.versions("m1", "o1") == (0, 3)
    assert claim(ledger, 4)[0] is Claim.SEND


def test_finish_after_the_lock_ran_out_never_lowers_the_delivered_version(ledger):
    """A worker whose lock ran out while sending records its version only if nothing newer
    was delivered meanwhile."""
    _, token = claim(ledger, 5)
    ledger.finish("m1", "o1", token, delivered=5)
    ledger.finish("m1", "o1", "lock-ran-out", delivered=4)
    assert ledger.versions("m1", "o1") == (0, 5)


def test_finish_with_a_stale_token_leaves_the_new_holder_alone(ledger, redis_client):
    """A worker whose lock expired cannot release the lock another worker took since."""
    _, old = claim(ledger, 1)
    redis_client.delete(keys.lock(PREFIX, "m1", "o1"))  # the TTL ran out
    found, new = claim(ledger, 1, update_id="u2")
    assert found is Claim.SEND
    ledger.finish("m1", "o1", old, delivered=None)
    assert redis_client.get(keys.lock(PREFIX, "m1", "o1")) == f"{new}:1".encode()


def test_in_flight_entries_stay_through_claim_and_finish_until_dropped(ledger, redis_client):
    """Neither a claim nor a finish drops a message's in-flight entry (the attempt may yet be
    cut short, and the task drops its entries together): a step's drop part does."""
    redis_client.zadd(keys.inflight(PREFIX), {"msg": 1.0, "other": 1.0})
    found, token = claim(ledger, 1)
    assert found is Claim.SEND
    ledger.finish("m1", "o1", token, delivered=1)
    assert redis_client.zcard(keys.inflight(PREFIX)) == 2
    assert claim(ledger, 1)[0] is Claim.DUPLICATE
    assert redis_client.zcard(keys.inflight(PREFIX)) == 2
    ledger.step(drop=["msg", "other"])
    assert redis_client.zcard(keys.inflight(PREFIX)) == 0
