"""The store's changes, each one Lua script (``worker/lua/dlq_*.lua``), called by name.

A letter, its index entries (the error-text index's too), its counters and its audit entry
change together or not at all because one script makes every change. The scripts take their
keys and arguments by position (a letter's index and text-index keys as lists of their own);
this module is the one place that puts them in order, so the store calls each change with
named parameters. Where a letter is listed is a
:class:`Place`, so that a damaged letter, whose JSON cannot say it, can be removed from
wherever the store finds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cartsync.worker import keys, scripts
from cartsync.worker.deadletters.letter import DeadLetter, status_key
from cartsync.worker.deadletters.textindex import Term, terms_of

#: Separator inside ``by-order`` members and ``forced`` fields; order and merchant refs never
#: contain it in practice, and results are re-checked against the letter itself anyway.
SEP = "\x00"


@dataclass(frozen=True)
class Place:
    """Where a letter is listed: what its index entries, counters and update-id entry are
    made of. Every part is known for a letter that reads back; for a damaged one, the parts
    the store could not find are None and what they would name is left alone."""

    id: str
    merchant: str | None
    order_ref: str | None
    reason: str | None
    #: The status as counters and filters name it (:func:`status_key`).
    status: str | None
    #: Its field in the ``by-update`` hash, if it has one there.
    update_id: str | None
    #: What the error-text index lists it under (none known for a damaged letter).
    terms: tuple[Term, ...] = ()


def place_of(letter: DeadLetter) -> Place:
    """Where a letter that reads back is listed."""
    return Place(
        letter.id,
        letter.merchant,
        letter.order_ref,
        letter.reason,
        status_key(letter.status),
        letter.update_id,
        tuple(terms_of(letter.errors)),
    )


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
    def imported(self) -> str:
        return keys.dlq_imported(self.prefix)

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

    @property
    def actions(self) -> str:
        """The metrics' count of audited actions (``worker/metrics.py``)."""
        return keys.metrics_dlq_actions(self.prefix)

    @property
    def everything(self) -> str:
        """The index of every letter."""
        return self.index(None, None, None)

    @property
    def orders_flagged(self) -> str:
        return keys.dlq_orders_flagged(self.prefix)

    @property
    def text_ready(self) -> str:
        return keys.dlq_text_ready(self.prefix)

    @property
    def text_signatures(self) -> str:
        return keys.dlq_text_signatures(self.prefix)

    @property
    def text_numbers(self) -> str:
        return keys.dlq_text_numbers(self.prefix)

    def text_signature(self, digest: str) -> str:
        return keys.dlq_text_signature(self.prefix, digest)

    def text_number(self, number: str) -> str:
        return keys.dlq_text_number(self.prefix, number)

    def term_key(self, term: Term) -> str:
        """The set of the letters listed under ``term``."""
        return self.text_signature(term.name) if term.kind == "s" else self.text_number(term.name)

    def audit_run(self, run: str) -> str:
        return keys.dlq_audit_run(self.prefix, run)

    def index(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        return keys.dlq_index(self.prefix, reason, status, merchant)

    def indexes(self, place: Place) -> list[str]:
        """The indexes that list a letter, :attr:`everything` first: one for each combination
        of its reason, status and merchant or any (eight), or of the parts that are known."""
        found = [
            self.index(r, s, m)
            for r in {place.reason, None}
            for s in {place.status, None}
            for m in {place.merchant, None}
        ]
        return sorted(set(found), key=lambda name: (name != self.everything, name))


def order_member(place: Place) -> str:
    """The letter's member in the ``by-order`` set, found by a lexical search on the order
    ('' when its order or merchant is unknown)."""
    if place.order_ref is None or place.merchant is None:
        return ""
    return f"{place.order_ref}{SEP}{place.merchant}{SEP}{place.id}"


def counter_fields(place: Place) -> list[str]:
    """The fields of the counters hash the letter counts in: its reason, status, merchant
    ('' for a part that is unknown)."""
    return [
        "" if value is None else f"{kind}:{value}"
        for kind, value in (("r", place.reason), ("s", place.status), ("m", place.merchant))
    ]


def terms_arg(terms: Sequence[Term]) -> str:
    """Text-index terms as the scripts take them: a JSON list of [kind, field, text]."""
    return json.dumps([[t.kind, t.name, t.text] for t in terms])


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
        self._text_add = scripts.load(client, "dlq_text_add")
        self._record = scripts.load(client, "dlq_record")

    def record(self, client: Any, flat: Sequence[str], *, run: str, audit_count: str = "") -> Any:
        """Add the audit entry ``flat`` (field/value list), listed under its ``run``, and count
        it under ``audit_count`` in the metrics ('' for none)."""
        n = self.names
        return self._record(
            keys=[n.audit, n.audit_run(run), n.actions], args=[audit_count, *flat], client=client
        )

    def park(
        self,
        client: Any,
        letter: DeadLetter,
        *,
        body: bytes,
        audit_entry: str,
        run: str = "",
        audit_count: str = "",
        origin: str = "",
        present_as: str = "",
    ) -> Any:
        """Store, index and count ``letter`` (whose stored form is ``body``): {outcome, id}.

        A parked update is recognized again by its update id (``by-update``); an imported
        letter by its ``origin`` (``imported``), and also when a letter ``present_as`` is
        stored (its id in the export it came from).
        """
        n = self.names
        dedup_key, dedup_field = (n.imported, origin) if origin else (n.by_update, letter.update_id)
        place = place_of(letter)
        indexes = n.indexes(place)
        # A parked update flags its order, so that a worker's claim checks ``by-update`` for
        # that order's updates only (worker/lua/ledger_step.lua).
        flags_order = not origin and bool(letter.update_id and letter.merchant and letter.order_ref)
        order = [keys.order(n.prefix, letter.merchant, letter.order_ref)] if flags_order else []
        return self._park(
            keys=[
                n.letters,
                dedup_key,
                n.by_order,
                n.counts,
                n.audit,
                n.text_ready,
                n.text_signatures,
                n.text_numbers,
                n.audit_run(run),
                *indexes,
                *(n.term_key(term) for term in place.terms),
                *order,
                n.actions,
            ],
            args=[
                letter.id,
                dedup_field,
                body,
                order_member(place),
                *counter_fields(place),
                audit_entry,
                present_as,
                len(indexes),
                terms_arg(place.terms),
                audit_count,
                "1" if order else "0",
            ],
            client=client,
        )

    def remove(
        self,
        client: Any,
        place: Place,
        *,
        token: str,
        audit_entry: str,
        forced: str,
        forced_version: int,
        run: str = "",
        audit_count: str = "",
    ) -> Any:
        """Take the letter at ``place`` out if its stored bytes still have ``token`` ('' for
        whatever is stored); with a ``forced`` field, remember ``forced_version`` there."""
        n = self.names
        indexes = n.indexes(place)
        return self._remove(
            keys=[
                n.letters,
                n.by_update,
                n.by_order,
                n.counts,
                n.audit,
                n.forced,
                n.text_signatures,
                n.text_numbers,
                n.audit_run(run),
                *indexes,
                *(n.term_key(term) for term in place.terms),
                n.actions,
            ],
            args=[
                place.id,
                token,
                place.update_id or "",
                order_member(place),
                *counter_fields(place),
                audit_entry,
                forced,
                forced_version,
                len(indexes),
                terms_arg(place.terms),
                audit_count,
            ],
            client=client,
        )

    def replace(
        self,
        client: Any,
        old: DeadLetter,
        letter: DeadLetter,
        *,
        token: str,
        body: bytes,
        audit_entry: str,
        run: str = "",
        audit_count: str = "",
    ) -> Any:
        """Store ``body`` as ``letter``'s new form if its stored bytes (``old``'s) still have
        ``token``; its text-index terms follow its error texts."""
        n = self.names
        new_terms = terms_of(letter.errors)
        left = [term for term in terms_of(old.errors) if term not in new_terms]
        return self._replace(
            keys=[
                n.letters,
                n.audit,
                n.text_signatures,
                n.text_numbers,
                n.audit_run(run),
                *(n.term_key(term) for term in (*left, *new_terms)),
                n.actions,
            ],
            args=[
                letter.id,
                token,
                body,
                audit_entry,
                len(left),
                terms_arg(left),
                terms_arg(new_terms),
                audit_count,
            ],
            client=client,
        )

    def add_text_terms(self, client: Any, letters: Sequence[tuple[DeadLetter, str]]) -> Any:
        """List each (letter, token) in the text index if it is still stored with that token;
        returns how many were."""
        n = self.names
        term_keys: list[str] = []
        args: list[str] = []
        for letter, token in letters:
            terms = terms_of(letter.errors)
            term_keys.extend(n.term_key(term) for term in terms)
            args.extend((letter.id, token, terms_arg(terms)))
        return self._text_add(
            keys=[n.letters, n.text_signatures, n.text_numbers, *term_keys],
            args=args,
            client=client,
        )
