"""Reading every letter of many orders at once (``StoreReader.letters_of_orders``, the
console's listing pages) finds what the store's own scan by order finds, and nothing of
another order."""

from __future__ import annotations

from cartsync.worker.deadletters import Filters
from tests.worker.dlq_support import make_letter


def test_each_order_gets_exactly_its_letters_newest_first(store):
    """Orders whose refs are prefixes of others', or hold the separator's neighbours, get
    their own letters only, as the store's scan by order would list them."""
    orders = [("shop1", "A"), ("shop10", "A"), ("shop1", "A1"), ("shop1", "x:y"), ("shop1", "B")]
    for merchant, order_ref in orders[:4]:
        for version in (1, 2):
            store.park(make_letter(merchant=merchant, order_ref=order_ref, version=version))
    found = store.letters_of_orders([*orders, ("shop1", "A")])
    assert set(found) == set(orders)
    for merchant, order_ref in orders:
        expected = [s.letter for s in store.scan(Filters(merchant=merchant, order_ref=order_ref))]
        assert found[(merchant, order_ref)] == expected
    assert found[("shop1", "B")] == []
    assert [len(found[o]) for o in orders[:4]] == [2, 2, 2, 2]
    assert store.letters_of_orders([]) == {}
