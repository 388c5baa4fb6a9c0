"""The store's three changes, each one Lua script (``worker/lua/dlq_*.lua``), called by name.

A letter, its index entries, its counters and its audit entry change together or not at all
because one script makes every change. The scripts take their keys and arguments by position
(up to fourteen keys and ten arguments); this module is the one place that puts them in
order, so the store calls each change with named parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from cartsync.worker import keys, scripts
from cartsync.worker.deadletters.letter import DeadLetter, status_key

#: Separator inside ``by-order`` members and ``forced`` fields; order and merchant refs never
#: contain it in practice, and results are re-checked against the letter itself anyway.
SEP = "\x00"


@dataclass(frozen=True)
class StoreKeys:
    """The Redis keys of one dead-letter store (named in ``worker/keys.py``)."""

    prefix: str

    @property
    def letters(self) -> str:
        return keys.dlq_letters(self.prefix)

    @property
    def by_update(self) -> str:
        return keys.dlq_by_update(self.prefix)

    @property
    def by_order(self) -> str:
        return keys.dlq_by_order(self.prefix)

    @property
    def counts(self) -> str:
        return keys.dlq_counts(self.prefix)

    @property
    def forced(self) -> str:
        return keys.dlq_forced(self.prefix)

    @property
    def audit(self) -> str:
        return keys.dlq_audit(self.prefix)

    def index(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        return keys.dlq_index(self.prefix, reason, status, merchant)

    def indexes(self, letter: DeadLetter) -> list[str]:
        """The eight indexes that list ``letter``: its reason, status and merchant, or any."""
        status = status_key(letter.status)
        return [
            self.index(r, s, m)
            for r in (letter.reason, None)
            for s in (status, None)
            for m in (letter.merchant, None)
        ]


def order_member(letter: DeadLetter) -> str:
    """The letter's member in the ``by-order`` set, found by a lexical search on the order."""
    return f"{letter.order_ref}{SEP}{letter.merchant}{SEP}{letter.id}"


def counter_fields(letter: DeadLetter) -> list[str]:
    """The fields of the counters hash the letter counts in: its reason, status, merchant."""
    return [f"r:{letter.reason}", f"s:{status_key(letter.status)}", f"m:{letter.merchant}"]


def forced_field(merchant: str, order_ref: str) -> str:
    """The order's field in the ``forced`` hash."""
    return f"{merchant}{SEP}{order_ref}"


class Changes:
    """The store's scripts, registered with its client. Each method takes ``client``: the
    store's client, or a pipeline to queue the change on (the result is then the pipeline's)."""

    def __init__(self, client: redis.Redis, names: StoreKeys) -> None:
        self.names = names
        self._park = scripts.load(client, "dlq_park")
        self._remove = scripts.load(client, "dlq_remove")
        self._replace = scripts.load(client, "dlq_replace")

    def park(self, client: Any, letter: DeadLetter, *, body: bytes, audit_entry: str) -> Any:
        """Store, index and count ``letter`` (whose stored form is ``body``): {outcome, id}."""
        n = self.names
        return self._park(
            keys=[n.letters, n.by_update, n.by_order, n.counts, n.audit, *n.indexes(letter)],
            args=[
                letter.id,
                letter.update_id,
                body,
                order_member(letter),
                *counter_fields(letter),
                audit_entry,
            ],
            client=client,
        )

    def remove(
        self,
        client: Any,
        letter: DeadLetter,
        *,
        token: str,
        audit_entry: str,
        forced: str,
        forced_version: int,
    ) -> Any:
        """Take ``letter`` out if its stored bytes still have ``token`` ('' for whatever is
        stored); with a ``forced`` field, remember ``forced_version`` there."""
        n = self.names
        return self._remove(
            keys=[
                n.letters,
                n.by_update,
                n.by_order,
                n.counts,
                n.audit,
                n.forced,
                *n.indexes(letter),
            ],
            args=[
                letter.id,
                token,
                letter.update_id,
                order_member(letter),
                *counter_fields(letter),
                audit_entry,
                forced,
                forced_version,
            ],
            client=client,
        )

    def replace(
        self, client: Any, letter: DeadLetter, *, token: str, body: bytes, audit_entry: str
    ) -> Any:
        """Store ``body`` as ``letter``'s new form if its stored bytes still have ``token``."""
        n = self.names
        return self._replace(
            keys=[n.letters, n.audit],
            args=[letter.id, token, body, audit_entry],
            client=client,
        )
