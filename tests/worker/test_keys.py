"""Order keys: no two orders share one, and refs without ``%`` or ``:`` keep today's keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cartsync.worker import keys

#: Refs rich in the characters that matter: the separator, the escape and its digits.
refs = st.text(st.sampled_from(":%3Aa2"), max_size=6) | st.text(max_size=8)
orders = st.tuples(refs, refs)


@given(orders, orders)
def test_two_orders_never_share_a_ledger_or_a_lock(first, second):
    """The order and lock keys of two different (merchant, order-ref) pairs always differ."""
    if first != second:
        assert keys.order("p", *first) != keys.order("p", *second)
        assert keys.lock("p", *first) != keys.lock("p", *second)


@given(refs, refs, refs)
def test_a_colon_moved_from_one_ref_to_the_other_makes_another_key(a, b, c):
    """("a:b", "c") and ("a", "b:c") are two orders, with two ledgers and two locks."""
    assert keys.order("p", f"{a}:{b}", c) != keys.order("p", a, f"{b}:{c}")
    assert keys.lock("p", f"{a}:{b}", c) != keys.lock("p", a, f"{b}:{c}")


def test_refs_that_used_to_share_a_key_no_longer_do():
    """("x:y", "1") and ("x", "y:1") were one key; now each has its own."""
    assert keys.order("p", "x:y", "1") == "p:order:x%3Ay:1"
    assert keys.order("p", "x", "y:1") == "p:order:x:y%3A1"
    assert keys.lock("p", "x", "%3A") == "p:lock:x:%253A"


def test_refs_without_a_colon_or_percent_keep_their_keys():
    """Keys of refs without ``:`` or ``%`` are byte for byte what they were, so a running
    deployment keeps its ledgers and locks."""
    for merchant, order_ref in [("camisasonline", "A14/12345"), ("991", "ñandú 7"), ("a", "b")]:
        assert keys.order("cartsync", merchant, order_ref) == (
            f"cartsync:order:{merchant}:{order_ref}"
        )
        assert keys.lock("cartsync", merchant, order_ref) == f"cartsync:lock:{merchant}:{order_ref}"
