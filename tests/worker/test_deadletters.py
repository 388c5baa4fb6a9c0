"""The dead-letter store keeps every letter whole, finds them by index, and changes atomically."""

import json
import time
from http import HTTPStatus

import pytest

from cartsync.worker import keys
from cartsync.worker.deadletters import (
    ID_PATTERN,
    AuditNote,
    DeadLetter,
    DeadLetterStore,
    Filters,
    id_bound,
    id_time,
    new_letter_id,
)
from cartsync.worker.deadletters.letter import valid_status, valid_time, valid_version
from cartsync.worker.deadletters.store import ORDERS_FLAGGED_LOOK_S
from cartsync.worker.errors import DeadLetterNotFound
from cartsync.worker.schedule import Schedule
from tests.worker.dlq_support import make_letter

NOTE = AuditNote(action="drop", by="tester", run="run-1")


class CountingStore(DeadLetterStore):
    """A store that counts the letters it fetches, to show what a query costs."""

    fetched = 0

    def load_many(self, letter_ids):
        self.fetched += len(letter_ids)
        return super().load_many(letter_ids)


def park_spread(store, count, start=1_700_000_000.0, **fields):
    """Park ``count`` letters one second apart, oldest first; returns their ids."""
    letters = [make_letter(dead_at=start + i, **fields) for i in range(count)]
    store.park_many(letters)
    return [letter.id for letter in letters]


def test_a_letter_comes_back_exactly_as_parked(store):
    """Every field of a parked letter, payload included, reads back unchanged."""
    letter = make_letter(merchant="shop1", order_ref="A14/1", version=3)
    expected = letter.to_json()
    letter_id = store.park(letter)
    assert ID_PATTERN.match(letter_id)
    assert store.get(letter_id).to_json() == json.dumps(
        {**json.loads(expected), "id": letter_id}, ensure_ascii=False, separators=(",", ":")
    )


def test_ids_sort_by_time_and_are_unique():
    """Ids made in the same millisecond differ, and a later letter's id sorts after."""
    same = {new_letter_id(1_700_000_000.0) for _ in range(1000)}
    assert len(same) == 1000
    assert new_letter_id(1_700_000_000.001) > max(same)
    assert id_time(new_letter_id(1_700_000_000.5)) == 1_700_000_000.5


def test_parking_the_same_update_twice_keeps_one_letter(store):
    """A redelivered update parks once: the second park returns the first letter's id."""
    first = store.park(make_letter(update_id="u-1"))
    second = store.park(make_letter(update_id="u-1"))
    assert first == second
    assert store.stats().total == 1
    assert store.holds_update("u-1")


def test_parking_an_update_flags_its_order_for_the_workers_claim(store, redis_client, settings):
    """A parked update's order gets the field that makes a worker's claim check this store;
    an imported letter, which no live message carries, flags nothing."""
    store.park(make_letter(merchant="shop1", order_ref="A:1", update_id="u-9"))
    order = keys.order(settings.key_prefix, "shop1", "A:1")
    assert redis_client.hget(order, "parked") == b"1"
    exported = make_letter(merchant="shop1", order_ref="B1", update_id="u-10")
    importing = AuditNote(action="import", by="tester", run="run-2")
    store.park_imported([(exported, "origin-1")], audit=importing)
    assert redis_client.hget(keys.order(settings.key_prefix, "shop1", "B1"), "parked") is None


def test_the_store_makes_every_id(store):
    """A letter that comes with an id gets a new one from the store all the same."""
    letter = make_letter(dead_at=1_700_000_000.0)
    letter.id = "1700000000000-0000abcd"
    assert store.park(letter) != "1700000000000-0000abcd"
    assert letter.id.startswith("1700000000000-")
    assert store.get(letter.id).order_ref == letter.order_ref


def test_unknown_id_is_reported(store):
    """Reading an id that is not in the store raises DeadLetterNotFound naming it."""
    with pytest.raises(DeadLetterNotFound, match="1700000000000-deadbeef"):
        store.get("1700000000000-deadbeef")


def test_nothing_expires(store, redis_client, settings):
    """No key the store writes has a time to live."""
    store.park(make_letter())
    store.record(NOTE)
    names = redis_client.keys(keys.pattern(keys.dead_letters(settings.key_prefix)))
    assert names
    assert [n for n in names if redis_client.ttl(n) != -1] == []


def test_letters_are_stored_compressed(store, redis_client, settings):
    """The stored bytes of a letter are smaller than its JSON."""
    letter = make_letter()
    store.park(letter)
    raw = redis_client.hget(keys.dlq_letters(settings.key_prefix), letter.id)
    assert len(raw) < len(letter.to_json().encode()) * 0.8


def test_paging_walks_every_letter_once_newest_first(store):
    """Pages of 7 over 30 letters list each exactly once, newest first, then stop."""
    ids = park_spread(store, 30)
    seen, cursor = [], None
    while True:
        page = store.page(Filters(), limit=7, cursor=cursor)
        seen += [s.letter.id for s in page.letters]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == list(reversed(ids))


def test_paging_survives_removals_between_pages(store):
    """Letters removed while someone pages (a replay) do not make the pager skip others."""
    ids = park_spread(store, 10)
    page = store.page(Filters(), limit=4)
    for stored in page.letters:
        store.remove(stored)
    rest = store.page(Filters(), limit=10, cursor=page.cursor)
    assert [s.letter.id for s in rest.letters] == list(reversed(ids[:6]))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(merchant="shop2"), {"b", "d"}),
        (Filters(reason="exhausted"), {"c", "d"}),
        (Filters(status="none"), {"e"}),
        (Filters(status="503"), {"c", "d"}),
        (Filters(merchant="shop2", reason="exhausted", status="503"), {"d"}),
        (Filters(order_ref="O-1"), {"a", "b"}),
        (Filters(order_ref="O-1", merchant="shop2"), {"b"}),
        (Filters(order_ref="O-1", reason="exhausted"), set()),
        (Filters(grep="DIFF IS 42"), {"a", "b"}),
        (Filters(grep="unavailable", merchant="shop1"), {"c"}),
        (Filters(since=1_700_000_002.0), {"c", "d", "e"}),
        (Filters(until=1_700_000_002.0), {"a", "b"}),
        (Filters(since=1_700_000_001.0, until=1_700_000_003.0, order_ref="O-1"), {"b"}),
    ],
)
def test_filters_select_exactly_the_matching_letters(store, filters, expected):
    """Each filter, alone and combined, lists exactly the letters that match, and counts them."""
    named = {
        "a": make_letter(merchant="shop1", order_ref="O-1", dead_at=1_700_000_000.0),
        "b": make_letter(merchant="shop2", order_ref="O-1", dead_at=1_700_000_001.0),
        "c": make_letter(
            merchant="shop1",
            reason="exhausted",
            status=503,
            errors=["Service Unavailable"],
            dead_at=1_700_000_002.0,
        ),
        "d": make_letter(
            merchant="shop2",
            reason="exhausted",
            status=503,
            errors=["Service Unavailable"],
            dead_at=1_700_000_003.0,
        ),
        "e": make_letter(
            merchant="shop1",
            reason="invalid",
            status=None,
            errors=["order.merchant: Missing data"],
            dead_at=1_700_000_004.0,
        ),
    }
    for letter in named.values():
        store.park(letter)
    by_id = {letter.id: name for name, letter in named.items()}
    page = store.page(filters, limit=50)
    assert {by_id[s.letter.id] for s in page.letters} == expected
    assert store.count(filters) == len(expected)


def test_a_deep_filtered_page_reads_only_the_page(redis_client, settings):
    """Paging deep into one merchant's letters among many others fetches just the page."""
    store = CountingStore(redis_client, settings.key_prefix)
    park_spread(store, 300, merchant="busy")
    rare = park_spread(
        store, 30, start=1_600_000_000.0, merchant="rare", reason="rejected", status=404
    )
    store.fetched = 0
    page = store.page(Filters(merchant="rare", reason="rejected"), limit=5, cursor=rare[20])
    assert [s.letter.id for s in page.letters] == list(reversed(rare[15:20]))
    assert store.fetched <= 6


def test_a_time_range_page_reads_only_the_page(redis_client, settings):
    """A page inside a time range fetches only the letters it shows (plus one to look ahead)."""
    store = CountingStore(redis_client, settings.key_prefix)
    ids = park_spread(store, 200)
    store.fetched = 0
    page = store.page(Filters(since=1_700_000_050.0, until=1_700_000_060.0), limit=4)
    assert [s.letter.id for s in page.letters] == list(reversed(ids[56:60]))
    assert store.fetched <= 5


def test_stats_follow_parks_and_removals(store):
    """Counts by reason, status and merchant change with every park and removal."""
    park_spread(store, 3, merchant="shop1")
    park_spread(store, 2, start=1_690_000_000.0, merchant="shop2", reason="rejected", status=404)
    stats = store.stats()
    assert stats.total == 5
    assert stats.by_reason == {"conflict": 3, "rejected": 2}
    assert stats.by_status == {"409": 3, "404": 2}
    assert stats.by_merchant == {"shop1": 3, "shop2": 2}
    assert str(stats.oldest_id).startswith("1690000000000")
    for stored in store.page(Filters(merchant="shop2"), limit=10).letters:
        assert store.remove(stored) == "removed"
    stats = store.stats()
    assert (stats.total, stats.by_merchant, stats.by_status) == (3, {"shop1": 3}, {"409": 3})


def test_removal_leaves_no_trace_in_the_indexes(store, redis_client, settings):
    """After its only letter is removed, the store holds no index entry and no counter."""
    letter = make_letter(update_id="u-9")
    store.park(letter)
    assert store.remove(store.load(letter.id)) == "removed"
    assert not store.holds_update("u-9")
    assert store.page(Filters(order_ref=letter.order_ref), limit=5).letters == []
    assert redis_client.keys(keys.pattern(keys.dlq_indexes(settings.key_prefix))) == []
    assert store.stats().total == 0


def test_a_change_made_meanwhile_stops_a_removal(store):
    """Removing a letter read before someone changed it does nothing and says ``changed``."""
    letter = make_letter()
    store.park(letter)
    before = store.load(letter.id)
    assert store.note(before, {"action": "looked", "at": time.time()}) == "replaced"
    assert store.remove(before) == "changed"
    assert store.get(letter.id).history[-1]["action"] == "looked"
    assert store.remove(before, check=False) == "removed"
    assert store.remove(before) == "gone"


def test_replace_cannot_move_a_letter_between_indexes(store):
    """A replacement that changes the merchant is refused (the indexes would lie)."""
    letter = make_letter()
    store.park(letter)
    stored = store.load(letter.id)
    moved = DeadLetter.from_dict({**stored.letter.to_dict(), "merchant": "other"})
    with pytest.raises(ValueError, match="indexes"):
        store.replace(stored, moved)


def test_changes_are_audited_with_the_letter(store):
    """A removal with an audit note writes one audit entry naming the letter and result."""
    letter = make_letter()
    store.park(letter)
    store.remove(store.load(letter.id), audit=NOTE.with_result("dropped", reason="conflict"))
    [entry] = store.audit_entries(limit=10)
    assert (entry.action, entry.by, entry.letter, entry.result) == (
        "drop",
        "tester",
        letter.id,
        "dropped",
    )
    assert entry.detail == {"reason": "conflict"}


def test_audit_entries_filter_by_action_and_letter(store):
    """The audit log lists newest first and filters by action and by letter."""
    store.record(AuditNote("import", "a", "r1", "imported"), "1700000000000-00000001")
    store.record(AuditNote("drop", "b", "r2", "dropped"), "1700000000000-00000002")
    store.record(AuditNote("drop", "c", "r3", "dropped"), "1700000000000-00000001")
    assert [e.by for e in store.audit_entries(limit=10)] == ["c", "b", "a"]
    assert [e.by for e in store.audit_entries(limit=10, action="drop")] == ["c", "b"]
    assert [e.by for e in store.audit_entries(limit=10, letter_id="1700000000000-00000001")] == [
        "c",
        "a",
    ]


def test_forced_replays_are_remembered_per_order(store):
    """A removal for a forced replay records the highest original version sent for the order."""
    low, high = make_letter(order_ref="O-9", version=2), make_letter(order_ref="O-9", version=5)
    store.park(low)
    store.park(high)
    store.remove(store.load(high.id), forced_version=5)
    store.remove(store.load(low.id), forced_version=2)
    assert store.forced_before("shop1", "O-9") == 5
    assert store.forced_before("shop1", "O-10") == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": 0}, "version"),
        ({"reason": "bored"}, "reason"),
        ({"errors": "text"}, "errors"),
        ({"id": "not-an-id"}, "id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_malformed_letter_names_its_field(change, field):
    """Reading a letter dict with a bad or unknown field raises ValueError naming that field."""
    data = {**make_letter().to_dict(), **change}
    with pytest.raises(ValueError, match=field):
        DeadLetter.from_dict(data)


def test_id_bound_orders_with_ids():
    """The bound for an instant sorts before that millisecond's ids and after earlier ones."""
    assert new_letter_id(1_700_000_000.999) < id_bound(1_700_000_001.0)
    assert id_bound(1_700_000_001.0) < new_letter_id(1_700_000_001.0)


@pytest.mark.parametrize(
    ("check", "value", "valid"),
    [
        (valid_time, 946_684_800, True),  # 2000-01-01
        (valid_time, 946_684_799.9, False),
        (valid_time, 4_102_444_800.0, False),  # 2100-01-01
        (valid_time, float("nan"), False),
        (valid_time, float("inf"), False),
        (valid_time, True, False),
        (valid_time, "1700000000", False),
        (valid_status, 100, True),
        (valid_status, HTTPStatus.CONFLICT, True),
        (valid_status, 600, False),
        (valid_status, 409.0, False),
        (valid_version, 2**63 - 1, True),
        (valid_version, 2**63, False),
        (valid_version, 0, False),
        (valid_version, False, False),
    ],
)
def test_times_statuses_and_versions_are_range_checked(check, value, valid):
    """Times lie in 2000-2100, statuses in 100-599, versions in 1..2^63-1; bools, text, NaN
    and infinities are none of them."""
    assert check(value) is valid


def test_a_change_that_would_not_read_back_is_refused(store):
    """Replacing a letter with a copy the store could not read back raises, changing nothing."""
    letter = make_letter()
    store.park(letter)
    stored = store.load(letter.id)
    broken = DeadLetter.from_dict(stored.letter.to_dict())
    broken.enqueued_at = 1e300
    with pytest.raises(ValueError, match="enqueued_at"):
        store.replace(stored, broken)
    assert store.load(letter.id).token == stored.token


def test_an_audit_note_about_a_letter_names_it_and_lets_detail_win():
    """``about`` carries the letter's merchant, order-ref, reason and version; a detail given
    (a refusal's reason) takes the place of the letter's own."""
    letter = make_letter(merchant="shop1", order_ref="A-1", version=3)
    note = AuditNote("replay", "sam", "run-1")
    assert note.about(letter, "dropped").detail == {
        "merchant": "shop1", "order_ref": "A-1", "reason": letter.reason, "version": 3,
    }  # fmt: skip
    assert note.about(letter, "refused", reason="superseded").detail["reason"] == "superseded"


def test_orders_of_letters_parked_before_the_flag_get_it_once(store, redis_client, settings):
    """A store from before the order flag: the pass a worker runs as it starts flags every
    order with a letter, then remembers it is done and reads nothing more."""
    letters = [make_letter(merchant="shop1", order_ref=f"R:{i}") for i in range(5)]
    store.park_many(letters)
    orders = [keys.order(settings.key_prefix, "shop1", f"R:{i}") for i in range(5)]
    for order in orders:  # as an earlier release left them
        redis_client.hdel(order, "parked")
    assert store.flag_parked_orders(batch=2) == 5
    assert [redis_client.hget(order, "parked") for order in orders] == [b"1"] * 5
    assert store.flag_parked_orders() == 0


def test_workers_of_an_earlier_release_hold_back_the_flagged_mode(store, redis_client, settings):
    """A worker alive only in the plain heartbeat set (an earlier release, whose parks do not
    flag) counts as earlier; once it is gone, the pass runs and every store reader learns,
    within its look interval, that claims may rely on the flags."""
    schedule = Schedule(redis_client, settings.key_prefix)
    now = time.time()
    schedule.heartbeat("new:1", now)
    redis_client.zadd(keys.workers(settings.key_prefix), {"old:2": now})
    assert schedule.earlier_workers_alive(now - 5) == 1
    redis_client.zrem(keys.workers(settings.key_prefix), "old:2")
    assert schedule.earlier_workers_alive(now - 5) == 0
    reader = DeadLetterStore(redis_client, settings.key_prefix)
    assert reader.orders_flagged(now) is False
    store.flag_parked_orders()
    assert reader.orders_flagged(now + 1) is False  # looked a moment ago
    assert reader.orders_flagged(now + ORDERS_FLAGGED_LOOK_S) is True
