"""The dead-letter store: letters in Redis, their indexes, counters, filters and paging.

The layout is described in ``worker/deadletters/__init__.py``; every change is one Lua script
(``worker/deadletters/changes.py``), and changes to an existing letter are compare-and-set on
a hash of its stored bytes (:attr:`Stored.token`): an edit or a replay never overwrites a
change it did not see.

The store makes every letter id, and reads defensively: what does not read back as a letter
is a :class:`Damaged` entry in listings (and :class:`DamagedLetter` for :meth:`load`), never
an exception that stops a listing, the stats, ``cartsync status`` or the metrics; it can be
removed by id like any letter (:meth:`remove_damaged`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.deadletters.audit import AuditNote, audit_arg, counted_as
from cartsync.worker.deadletters.changes import SEP, Changes, forced_field, place_of
from cartsync.worker.deadletters.codec import Damaged, Stored, encode, member_text
from cartsync.worker.deadletters.filters import Filters
from cartsync.worker.deadletters.letter import (
    ID_PATTERN,
    DeadLetter,
    checked,
    imported_update_id,
    new_letter_id,
    repaired,
)
from cartsync.worker.deadletters.reading import SCAN_BATCH, StoreReader
from cartsync.worker.errors import NoFreeLetterId
from cartsync.worker.redistext import text

#: Fresh ids tried before parking gives up: each is 32 random bits within one millisecond,
#: so a second try is already next to impossible.
PARK_ID_TRIES = 5


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


#: Seconds between looks at whether every order with a parked update is flagged, until it is
#: (:meth:`DeadLetterStore.orders_flagged`).
ORDERS_FLAGGED_LOOK_S = 10.0


class DeadLetterStore(StoreReader):
    """The dead-letter store: its reads (:class:`StoreReader`, ``worker/deadletters/reading.py``,
    and :class:`DamagedLookup`, ``worker/deadletters/damaged.py``) and its changes."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(client, prefix)
        self._changes = Changes(client, self.names)
        self._orders_flagged = False
        self._next_flag_look = 0.0

    # -- writing -----------------------------------------------------------------------------

    def park(self, letter: DeadLetter, *, audit: AuditNote | None = None) -> str:
        """Store ``letter`` under a new id (set on ``letter``); parking the same update again
        keeps the first letter. Returns the letter's id (the first letter's, for a repeated
        update).

        The store makes the id, whatever ``letter.id`` held, and stores the letter
        :func:`repaired`: a value that would not read back is replaced and its history says so.
        """
        return self._park_one(letter, audit, self.client)[1]

    def _park_one(
        self,
        letter: DeadLetter,
        audit: AuditNote | None,
        client: Any,
        *,
        origin: str = "",
        present_as: str = "",
    ) -> tuple[str, str]:
        kept = repaired(letter, time.time())
        for _ in range(PARK_ID_TRIES):
            self._new_id(letter, kept, imported=bool(origin))
            outcome, letter_id = (
                text(v)
                for v in self._call_park(kept, audit, client, origin=origin, present_as=present_as)
            )
            if outcome != "taken":
                return outcome, letter_id
        raise NoFreeLetterId(kept.dead_at, PARK_ID_TRIES)

    @staticmethod
    def _new_id(letter: DeadLetter, kept: DeadLetter, *, imported: bool) -> None:
        """Give the letter to store (``kept``) and the caller's copy a fresh id; an imported
        letter's update id goes with it (see :func:`imported_update_id`)."""
        letter.id = kept.id = new_letter_id(kept.dead_at)
        if imported:
            letter.update_id = kept.update_id = imported_update_id(kept.id)

    def _call_park(
        self,
        letter: DeadLetter,
        audit: AuditNote | None,
        client: Any,
        *,
        origin: str = "",
        present_as: str = "",
    ) -> Any:
        """Run the park script on ``client`` (a pipeline queues it and returns itself)."""
        return self._changes.park(
            client,
            letter,
            body=encode(letter),
            audit_entry=audit_arg(audit, letter.id),
            audit_count=counted_as(audit, letter.id),
            run=audit.run if audit else "",
            origin=origin,
            present_as=present_as,
        )

    def park_many(
        self, letters: Iterable[DeadLetter], *, audit: AuditNote | None = None
    ) -> list[str]:
        """:meth:`park` for many letters in one round trip (the benchmark fill); returns each
        outcome, ``parked`` or ``duplicate`` (its update is parked already)."""
        batch = [(letter, repaired(letter, time.time())) for letter in letters]
        pipe = self.client.pipeline(transaction=False)
        for letter, kept in batch:
            self._new_id(letter, kept, imported=False)
            self._call_park(kept, audit, pipe)
        outcomes = [text(result[0]) for result in pipe.execute()]
        for position, outcome in enumerate(outcomes):
            if outcome == "taken":
                outcomes[position] = self._park_one(batch[position][0], audit, self.client)[0]
        return outcomes

    def park_imported(
        self, letters: Sequence[tuple[DeadLetter, str]], *, audit: AuditNote
    ) -> list[str]:
        """Store letters read from an export (``cartsync dlq import``), each given as (letter,
        its origin: :func:`import_origin`), in one round trip; returns each outcome.

        Each gets a new id from the store and the update id ``imported-<id>``, so that it can
        never pass for a live update, and is recognized by its origin instead of its update
        id. Its history gains an ``imported`` entry naming its id and update id in the export.
        Outcomes: ``parked``, or ``duplicate`` (imported before, or still stored under its
        id in the export: this is the store it came from).
        """
        now = time.time()
        batch = []
        for letter, origin in letters:
            checked(letter)
            entry = {
                "at": now,
                "action": "imported",
                "by": audit.by,
                "run": audit.run,
                "letter": letter.id or None,
                "update_id": letter.update_id,
            }
            kept = dataclasses.replace(letter, history=[*letter.history, entry])
            present_as = letter.id if ID_PATTERN.match(letter.id) else ""
            batch.append((kept, origin, present_as))
        pipe = self.client.pipeline(transaction=False)
        for kept, origin, present_as in batch:
            self._new_id(kept, kept, imported=True)
            self._call_park(kept, audit, pipe, origin=origin, present_as=present_as)
        outcomes = [text(result[0]) for result in pipe.execute()]
        for position, outcome in enumerate(outcomes):
            if outcome == "taken":
                kept, origin, present_as = batch[position]
                outcomes[position] = self._park_one(
                    kept, audit, self.client, origin=origin, present_as=present_as
                )[0]
        return outcomes

    def remove(
        self,
        stored: Stored,
        *,
        audit: AuditNote | None = None,
        forced_version: int | None = None,
        check: bool = True,
    ) -> str:
        """Take a letter out of the store: ``removed``, ``gone`` or ``changed``.

        With ``check`` the letter must be exactly as read (else ``changed`` and nothing
        happens). ``forced_version`` records that a forced replay sent this order's state at
        that original version.
        """
        return text(self._call_remove(stored, audit, forced_version, check, self.client))

    def _call_remove(
        self,
        stored: Stored,
        audit: AuditNote | None,
        forced_version: int | None,
        check: bool,
        client: Any,
    ) -> Any:
        letter = stored.letter
        return self._changes.remove(
            client,
            place_of(letter),
            token=stored.token if check else "",
            audit_entry=audit_arg(audit, letter.id),
            audit_count=counted_as(audit, letter.id),
            run=audit.run if audit else "",
            forced=(
                forced_field(letter.merchant, letter.order_ref)
                if forced_version is not None
                else ""
            ),
            forced_version=forced_version or 0,
        )

    def remove_many(
        self, items: Sequence[tuple[Stored, AuditNote | None, int | None]], *, check: bool = True
    ) -> list[str]:
        """:meth:`remove` for several letters in one round trip: each item is (letter as
        read, audit note, forced version). Returns each outcome."""
        pipe = self.client.pipeline(transaction=False)
        for stored, audit, forced_version in items:
            self._call_remove(stored, audit, forced_version, check, pipe)
        return [text(outcome) for outcome in pipe.execute()]

    def remove_damaged(
        self, damaged: Damaged, *, audit: AuditNote | None = None, check: bool = True
    ) -> str:
        """Take a damaged letter out of the store and out of wherever :meth:`locate` finds it
        listed: ``removed``, ``gone`` or ``changed`` (as :meth:`remove`)."""
        result = self._changes.remove(
            self.client,
            self.locate(damaged),
            token=damaged.token if check else "",
            audit_entry=audit_arg(audit, damaged.id),
            audit_count=counted_as(audit, damaged.id),
            forced="",
            forced_version=0,
            run=audit.run if audit else "",
        )
        return text(result)

    def replace(self, stored: Stored, letter: DeadLetter, *, audit: AuditNote | None = None) -> str:
        """Store a changed copy of a letter, if it is still as read: ``replaced``, ``gone``
        or ``changed``. What the indexes hold (merchant, order, reason, status, id, update id)
        must not change, and the copy must read back (ValueError otherwise)."""
        old = stored.letter
        if (old.id, old.update_id, old.merchant, old.order_ref, old.reason, old.status) != (
            letter.id,
            letter.update_id,
            letter.merchant,
            letter.order_ref,
            letter.reason,
            letter.status,
        ):
            raise ValueError("replace cannot change what the indexes hold")
        checked(letter)
        result = self._changes.replace(
            self.client,
            old,
            letter,
            token=stored.token,
            body=encode(letter),
            audit_entry=audit_arg(audit, letter.id),
            audit_count=counted_as(audit, letter.id),
            run=audit.run if audit else "",
        )
        return text(result)

    def note(
        self, stored: Stored, entry: Mapping[str, Any], *, audit: AuditNote | None = None
    ) -> str:
        """Append ``entry`` to a letter's history (if it is still as read)."""
        letter = dataclasses.replace(stored.letter, history=[*stored.letter.history, dict(entry)])
        return self.replace(stored, letter, audit=audit)

    def record(self, note: AuditNote, letter_id: str = "") -> str:
        """Add an entry to the audit log that goes with no change to a letter."""
        return text(
            self._changes.record(
                self.client,
                note.flat(letter_id),
                run=note.run,
                audit_count=counted_as(note, letter_id),
            )
        )

    def orders_flagged(self, now: float) -> bool:
        """Whether every order with a parked update carries the ledger's ``parked`` field, so
        that a worker's claim may look among the dead letters for flagged orders only
        (``worker/lua/ledger_step.lua``). Read from Redis at most every
        :data:`ORDERS_FLAGGED_LOOK_S` until it is true, then never again (it stays true)."""
        if self._orders_flagged:
            return True
        if now >= self._next_flag_look:
            self._next_flag_look = now + ORDERS_FLAGGED_LOOK_S
            self._orders_flagged = bool(self.client.exists(self.names.orders_flagged))
        return self._orders_flagged

    def flag_parked_orders(self, *, batch: int = SCAN_BATCH) -> int:
        """Give every order that has a letter the ledger's ``parked`` field, then record that
        it is done (:meth:`orders_flagged`); returns the letters read (0 when done before).

        A park sets that field (``worker/lua/dlq_park.lua``), but letters parked by a release
        before it did not, and a worker of such a release still running parks without it.
        So a worker runs this only once no worker of an earlier release is alive
        (``Schedule.earlier_workers_alive``, ``worker/celeryapp.py``); until then claims look
        among the dead letters for every update. Imported letters flag their orders too,
        which costs those orders' updates one command each and changes nothing else; running
        it twice is harmless.
        """
        if self.client.exists(self.names.orders_flagged):
            self._orders_flagged = True
            return 0
        read = 0
        members = self.client.zscan_iter(self.names.by_order, count=batch)
        for found in batches(members, batch):
            pipe = self.client.pipeline(transaction=False)
            for member, _ in found:
                parts = member_text(member).split(SEP, 2)
                if len(parts) == 3:  # else a letter of no known order: no claim to flag for
                    order_ref, merchant, _id = parts
                    pipe.hset(keys.order(self.names.prefix, merchant, order_ref), "parked", "1")
            pipe.execute()
            read += len(found)
        self.client.set(self.names.orders_flagged, "1")
        self._orders_flagged = True
        return read

    def reindex(self, *, batch: int = SCAN_BATCH) -> Iterator[int]:
        """List every letter in the error-text index (a store parked before the index
        existed), then mark the index complete, which lets ``grep`` use it. Yields the
        letters read so far after each batch. Safe while letters are parked, changed and
        removed (each is listed only if still as read, and those changes keep the index),
        and to run again or interrupt."""
        read = 0
        for found in batches(self.entries(Filters(), batch=batch), batch):
            letters = [(s.letter, s.token) for s in found if isinstance(s, Stored)]
            if letters:
                self._changes.add_text_terms(self.client, letters)
            read += len(found)
            yield read
        self.client.set(self.names.text_ready, "1")
