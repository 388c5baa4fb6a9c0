"""Replaying a letter goes through the producer, never sends an old state over a newer one,
and is safe to repeat after an interruption."""

import pytest

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.tasks.examples import two_item_body
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import Filters, replay_update_id
from cartsync.worker.replay import Replayer, judge
from tests.worker.dlq_support import make_letter, queued_messages, queued_update_ids

ACCOUNT = MerchantAccount(ref="", username="user", password="secret-pw")


@pytest.fixture
def producer(settings, redis_client):
    return Producer(settings, client=redis_client, merchants=MerchantDirectory(single=ACCOUNT))


def replayer(store, producer, force=False):
    return Replayer(store, producer, by="tester", run="run-1", force=force)


@pytest.mark.parametrize(
    ("version", "enqueued", "delivered", "forced_before", "force", "action"),
    [
        (3, 3, 2, 0, False, "replay"),  # its own version is still the newest
        (3, 0, 0, 0, False, "replay"),  # the ledger never saw the order (an import)
        (3, 4, 2, 0, False, "refuse"),  # a newer version was enqueued since
        (3, 3, 3, 0, False, "refuse"),  # this version was delivered after all
        (3, 3, 5, 0, False, "refuse"),  # a newer version was delivered
        (None, 0, 0, 0, False, "refuse"),  # no version: only --force may send it
        (3, 9, 9, 0, True, "replay"),  # forced over anything the ledger holds
        (None, 9, 9, 0, True, "replay"),
        (3, 9, 9, 4, True, "refuse"),  # a newer letter of the order was forced already
        (5, 9, 9, 4, True, "replay"),
    ],
)
def test_judge_follows_the_ledger_and_forced_replays(
    version, enqueued, delivered, forced_before, force, action
):
    """Replay is refused exactly when the order moved past the letter, unless forced."""
    verdict = judge(
        version, enqueued=enqueued, delivered=delivered, forced_before=forced_before, force=force
    )
    assert verdict.action == action


def test_replay_update_ids_are_stable_per_revision():
    """The same letter and revision always replay under one update id; an edit changes it."""
    assert replay_update_id("1700000000000-0000abcd", 0) == replay_update_id(
        "1700000000000-0000abcd", 0
    )
    assert replay_update_id("1700000000000-0000abcd", 1) != replay_update_id(
        "1700000000000-0000abcd", 0
    )


def test_replay_enqueues_the_letter_at_its_version_and_removes_it(
    store, producer, redis_client, settings
):
    """A replayable letter is queued with its own version and payload, then leaves the store."""
    letter = make_letter(order_ref="R-1", version=1)
    store.park(letter)
    result = replayer(store, producer).replay(store.load(letter.id))
    assert (result.outcome, result.detail) == ("replayed", "enqueued as v1")
    [message] = queued_messages(redis_client, settings)
    assert message["update_id"] == replay_update_id(letter.id, 0)
    assert message["version"] == 1
    assert message["replay_of"] == letter.id
    assert message["body"]["order"]["merchant_reference"]["order_ref_1"] == "R-1"
    assert store.stats().total == 0
    [entry] = store.audit_entries(limit=5)
    assert (entry.action, entry.letter, entry.result) == ("replay", letter.id, "replayed")


def test_replay_of_a_superseded_letter_is_refused_and_kept(store, producer, redis_client, settings):
    """When the order has a newer version enqueued, the letter stays, with the reason noted."""
    letter = make_letter(order_ref="R-2", version=1)
    store.park(letter)
    producer.enqueue(two_item_body("shop1", "R-2"), version=2)
    before = queued_update_ids(redis_client, settings)
    result = replayer(store, producer).replay(store.load(letter.id))
    assert result.outcome == "refused"
    assert "v2" in result.detail
    assert queued_update_ids(redis_client, settings) == before
    kept = store.get(letter.id)
    assert kept.history[-1]["action"] == "replay_refused"
    assert store.audit_entries(limit=1)[0].result == "refused"


def test_forced_replay_becomes_the_newest_version(store, producer, redis_client, settings):
    """With force, a superseded letter is queued as the order's next version."""
    letter = make_letter(order_ref="R-3", version=1)
    store.park(letter)
    producer.enqueue(two_item_body("shop1", "R-3"), version=4)
    result = replayer(store, producer, force=True).replay(store.load(letter.id))
    assert (result.outcome, result.detail) == ("replayed", "enqueued as v5")
    [sent] = [m for m in queued_messages(redis_client, settings) if m["replay_of"] == letter.id]
    assert sent["version"] == 5


@pytest.mark.parametrize("newer_first", [True, False])
def test_forced_bulk_replay_ends_with_the_newest_letter(
    store, producer, redis_client, settings, newer_first
):
    """Forcing two letters of one order, in either order, leaves the newer one's state last."""
    old = make_letter(order_ref="R-4", version=1, payload=two_item_body("shop1", "R-4", quantity=1))
    new = make_letter(order_ref="R-4", version=2, payload=two_item_body("shop1", "R-4", quantity=7))
    store.park(old)
    store.park(new)
    run = replayer(store, producer, force=True)
    order = [new, old] if newer_first else [old, new]
    outcomes = [run.replay(store.load(letter.id)).outcome for letter in order]
    assert outcomes == (["replayed", "refused"] if newer_first else ["replayed", "replayed"])
    newest = max(queued_messages(redis_client, settings), key=lambda m: m["version"])
    assert newest["replay_of"] == new.id
    assert newest["body"]["order"]["shipped_cart"]["items"][0]["quantity"] == 7


def test_a_replay_interrupted_after_enqueueing_finishes_without_a_second_message(
    store, producer, redis_client, settings
):
    """If the letter is still there after its enqueue (a crash), replaying again only removes it."""
    letter = make_letter(order_ref="R-5", version=1)
    store.park(letter)
    run = replayer(store, producer)
    # The crash: the producer accepted the replay, the letter was never removed.
    producer.enqueue(letter.payload, version=1, update_id=run.update_id(letter), replay=True)
    result = run.replay(store.load(letter.id))
    assert (result.outcome, result.detail) == ("replayed", "already enqueued by an earlier run")
    assert queued_update_ids(redis_client, settings) == [run.update_id(letter)]
    assert store.stats().total == 0


def test_an_invalid_payload_fails_and_stays(store, producer, redis_client, settings):
    """A letter whose payload fails validation is not queued; it stays with the error noted."""
    payload = two_item_body("shop1", "R-6")
    payload["order"]["shipped_cart"]["items"][0]["quantity"] = "two"
    letter = make_letter(order_ref="R-6", payload=payload)
    store.park(letter)
    result = replayer(store, producer).replay(store.load(letter.id))
    assert result.outcome == "failed"
    assert "order.shipped_cart.items.0.quantity" in result.detail
    assert queued_update_ids(redis_client, settings) == []
    assert store.get(letter.id).history[-1]["action"] == "replay_failed"


def test_dry_run_plans_without_writing(store, producer, redis_client):
    """Planning says replay or refuse with the reason, and changes nothing in Redis."""
    ok = make_letter(order_ref="R-7", version=1)
    stale = make_letter(order_ref="R-8", version=1)
    store.park(ok)
    store.park(stale)
    producer.enqueue(two_item_body("shop1", "R-8"), version=3)
    before = {key: redis_client.dump(key) for key in redis_client.keys("*")}
    run = replayer(store, producer)
    assert run.plan(store.load(ok.id)).action == "replay"
    verdict = run.plan(store.load(stale.id))
    assert verdict.action == "refuse"
    assert "v3" in verdict.reason
    assert {key: redis_client.dump(key) for key in redis_client.keys("*")} == before


def test_a_forced_batch_sees_the_mark_of_an_earlier_letter_of_the_same_order(store, producer):
    """Within one batch, a forced older letter after a forced newer one of its order is refused."""
    old = make_letter(order_ref="R-9", version=1)
    new = make_letter(order_ref="R-9", version=2)
    store.park(old)
    store.park(new)
    results = replayer(store, producer, force=True).replay_many(
        [store.load(new.id), store.load(old.id)]
    )
    assert [(r.letter_id, r.outcome) for r in results] == [
        (new.id, "replayed"),
        (old.id, "refused"),
    ]
    assert store.count(Filters()) == 1


def test_a_batch_reports_in_order_and_removes_what_it_sent(store, producer, redis_client, settings):
    """replay_many returns one result per letter, in order, and only sent letters leave."""
    letters = [make_letter(order_ref=f"B-{i}") for i in range(4)]
    letters[2].payload["order"]["shipped_cart"]["currency"] = 7
    for letter in letters:
        store.park(letter)
    results = replayer(store, producer).replay_many([store.load(x.id) for x in letters])
    assert [r.letter_id for r in results] == [x.id for x in letters]
    assert [r.outcome for r in results] == ["replayed", "replayed", "failed", "replayed"]
    assert [s.letter.id for s in store.scan(Filters())] == [letters[2].id]
    assert len(queued_update_ids(redis_client, settings)) == 3
