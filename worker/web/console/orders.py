"""Every letter of each order on a listing page, read in two round trips whatever the number
of orders: one pipeline of range reads of the store's by-order index (its layout is in
``worker/deadletters/__init__.py``), then one read of all those letters.

The store's own ``scan`` by order costs two round trips per order; a page of fifty letters
of fifty orders then spends most of its time waiting on Redis.
"""

from __future__ import annotations

from collections.abc import Iterable

from cartsync.worker.deadletters import DeadLetter, DeadLetterStore, Stored
from cartsync.worker.deadletters.changes import SEP
from cartsync.worker.deadletters.codec import member_text

#: An order: (merchant, order-ref).
OrderKey = tuple[str, str]


def letters_of_orders(
    store: DeadLetterStore, orders: Iterable[OrderKey]
) -> dict[OrderKey, list[DeadLetter]]:
    """Each order's letters, newest id first (damaged ones left out, as ``scan`` does)."""
    wanted = list(dict.fromkeys(orders))
    if not wanted:
        return {}
    pipe = store.client.pipeline(transaction=False)
    for merchant, order_ref in wanted:
        start = (order_ref + SEP + merchant + SEP).encode()
        pipe.zrange(store.by_order_key, b"[" + start, b"[" + start + b"\xff", bylex=True)
    ids_of: dict[OrderKey, list[str]] = {
        key: sorted({member_text(m).rsplit(SEP, 1)[-1] for m in members}, reverse=True)
        for key, members in zip(wanted, pipe.execute(), strict=True)
    }
    every = list(dict.fromkeys(i for ids in ids_of.values() for i in ids))
    by_id = {
        letter_id: found.letter
        for letter_id, found in zip(every, store.load_many(every), strict=True)
        if isinstance(found, Stored)
    }
    return {
        key: [
            by_id[i] for i in ids if i in by_id and (by_id[i].merchant, by_id[i].order_ref) == key
        ]
        for key, ids in ids_of.items()
    }
