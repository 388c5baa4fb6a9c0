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
from cartsync.worker.deadletters.audit import (
    AUDIT_BATCH,
    AuditEntry,
    AuditNote,
    audit_arg,
    pairs,
    parse_entry,
)
from cartsync.worker.deadletters.changes import (
    SEP,
    Changes,
    Place,
    StoreKeys,
    forced_field,
    place_of,
)
from cartsync.worker.deadletters.codec import Damaged, Stored, encode, stored_of
from cartsync.worker.deadletters.filters import (
    Filters,
    Page,
    Stats,
    grep_matches,
    lower_bound,
    stats_from,
    upper_bound,
)
from cartsync.worker.deadletters.letter import (
    ID_PATTERN,
    DeadLetter,
    checked,
    imported_update_id,
    new_letter_id,
    repaired,
    status_key,
    valid_id,
)
from cartsync.worker.errors import DamagedLetter, DeadLetterNotFound, NoFreeLetterId
from cartsync.worker.redistext import text

#: Letters fetched per round trip when a command walks many of them.
SCAN_BATCH = 500
#: Fresh ids tried before parking gives up: each is 32 random bits within one millisecond,
#: so a second try is already next to impossible.
PARK_ID_TRIES = 5
#: Ids read from each end of the index by ``stats``, of which the first the store could have
#: made is the oldest (newest) letter's; more are read only when all of those are damaged.
EDGE_PROBE = 16
#: Fields and members read per round trip while :meth:`DeadLetterStore.locate` searches the
#: update-id hash and the order index for a damaged letter.
LOCATE_BATCH = 2000


class DeadLetterStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.names = StoreKeys(prefix)
        self.base = keys.dead_letters(prefix)
        self.letters_key = self.names.letters
        self.by_update_key = self.names.by_update
        self.imported_key = self.names.imported
        self.by_order_key = self.names.by_order
        self.counts_key = self.names.counts
        self.forced_key = self.names.forced
        self.audit_key = self.names.audit
        self.all_key = self.names.everything
        self._changes = Changes(client, self.names)

    def index_key(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        """The index of letters with this reason, status and merchant (None: any)."""
        return self.names.index(reason, status, merchant)

    @staticmethod
    def forced_field(merchant: str, order_ref: str) -> str:
        return forced_field(merchant, order_ref)

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
            forced="",
            forced_version=0,
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
            letter,
            token=stored.token,
            body=encode(letter),
            audit_entry=audit_arg(audit, letter.id),
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
        entry_id = self.client.xadd(self.audit_key, pairs(note.flat(letter_id)))  # type: ignore[arg-type]
        return text(entry_id)

    # -- reading -----------------------------------------------------------------------------

    def holds_update(self, update_id: str) -> bool:
        return bool(self.client.hexists(self.by_update_key, update_id))

    def get(self, letter_id: str) -> DeadLetter:
        return self.load(letter_id).letter

    def load(self, letter_id: str) -> Stored:
        """The letter with this id and its token; DeadLetterNotFound if there is none,
        DamagedLetter (one) if what is stored there is not a letter."""
        found = self.read(letter_id)
        if isinstance(found, Damaged):
            raise DamagedLetter(letter_id, found.problem)
        return found

    def read(self, letter_id: str) -> Stored | Damaged:
        """What is stored under this id, letter or damaged; DeadLetterNotFound if nothing."""
        raw = self.client.hget(self.letters_key, letter_id)
        if raw is None:
            raise DeadLetterNotFound(letter_id)
        return stored_of(letter_id, raw)

    def load_many(self, letter_ids: list[str]) -> list[Stored | Damaged | None]:
        """What is stored under each id, in one round trip; None where there is nothing."""
        if not letter_ids:
            return []
        raws = self.client.hmget(self.letters_key, letter_ids)
        return [
            None if raw is None else stored_of(letter_id, raw)
            for letter_id, raw in zip(letter_ids, raws, strict=True)
        ]

    def page(self, filters: Filters, *, limit: int, cursor: str | None = None) -> Page:
        """Up to ``limit`` letters newest first, older than ``cursor`` (an id) if given;
        damaged letters among them (see :meth:`entries`)."""
        # islice stops without asking the walk for more, so no second batch is fetched.
        walk = self.entries(filters, below=cursor, batch=limit + 1)
        found = list(itertools.islice(walk, limit + 1))
        more = len(found) > limit
        shown = found[:limit]
        return Page(shown, _id_of(shown[-1]) if more and shown else None)

    def scan(
        self, filters: Filters, *, below: str | None = None, batch: int = SCAN_BATCH
    ) -> Iterator[Stored]:
        """Every letter that matches, newest first, fetched ``batch`` at a time; damaged ones
        are left out (:meth:`entries` has them).

        Safe to use while removing what it yields: it resumes below the last id it saw.
        """
        return (e for e in self.entries(filters, below=below, batch=batch) if isinstance(e, Stored))

    def entries(
        self, filters: Filters, *, below: str | None = None, batch: int = SCAN_BATCH
    ) -> Iterator[Stored | Damaged]:
        """:meth:`scan` with the damaged letters the filters select: those an index lists
        under the filters, unless ``grep`` asks about texts a damaged letter cannot show."""
        if filters.order_ref is not None:
            yield from self._scan_order(filters, below)
            return
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = upper_bound(filters.until, below)
        low = lower_bound(filters.since)
        while True:
            ids = [
                _member(m)
                for m in self.client.zrange(
                    key, high, low, desc=True, bylex=True, offset=0, num=batch
                )
            ]
            if not ids:
                return
            for found in self.load_many(ids):
                # None: removed since the index was read.
                if found is not None and _wanted(found, filters, by_index=True):
                    yield found
            if len(ids) < batch:
                return
            high = "(" + ids[-1]

    def _scan_order(self, filters: Filters, below: str | None) -> Iterator[Stored | Damaged]:
        assert filters.order_ref is not None
        prefix = filters.order_ref + SEP
        if filters.merchant is not None:
            prefix += filters.merchant + SEP
        start = prefix.encode()
        members = self.client.zrange(
            self.by_order_key, b"[" + start, b"[" + start + b"\xff", bylex=True
        )
        ids = sorted({_member(m).rsplit(SEP, 1)[-1] for m in members}, reverse=True)
        if below is not None:
            ids = [i for i in ids if i < below]
        for offset in range(0, len(ids), SCAN_BATCH):
            for found in self.load_many(ids[offset : offset + SCAN_BATCH]):
                if found is not None and _wanted(found, filters, by_index=False):
                    yield found

    def count(self, filters: Filters) -> int:
        """How many letters match: O(log n) for indexed filters, a walk otherwise."""
        if not filters.indexed:
            return sum(1 for _ in self.entries(filters))
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = upper_bound(filters.until, None)
        low = lower_bound(filters.since)
        return int(self.client.zlexcount(key, low, high))

    def stats(self) -> Stats:
        """Counts by reason, status and merchant, and the oldest and newest letters' ids.

        Those ids are the oldest and newest the store could have made: a damaged letter's id
        (one written by hand, or by an import before the store made every id) is passed
        over, so that an age can always be computed from them (:func:`id_time`).
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.counts_key)
        pipe.zrange(self.all_key, "[0", "(:", bylex=True, offset=0, num=EDGE_PROBE)
        pipe.zrange(self.all_key, "(:", "[0", desc=True, bylex=True, offset=0, num=EDGE_PROBE)
        counts, oldest, newest = pipe.execute()
        return stats_from(
            counts,
            oldest_id=self._edge(oldest, desc=False),
            newest_id=self._edge(newest, desc=True),
        )

    def _edge(self, probed: list[Any], *, desc: bool) -> str | None:
        """The first valid id at one end of the index of every letter: among the ids already
        ``probed`` there, walking on only while all of those are damaged."""
        batch, size = [_member(m) for m in probed], EDGE_PROBE
        while batch:
            for letter_id in batch:
                if valid_id(letter_id):
                    return letter_id
            if len(batch) < size:
                return None
            # Ids the store makes start with a digit: only "0" up to ":" can hold them.
            after, size = "(" + batch[-1], SCAN_BATCH
            batch = [
                _member(m)
                for m in self.client.zrange(
                    self.all_key,
                    after,
                    "[0" if desc else "(:",
                    desc=desc,
                    bylex=True,
                    offset=0,
                    num=size,
                )
            ]
        return None

    def locate(self, damaged: Damaged) -> Place:
        """Where a damaged letter is listed, found in the indexes themselves (its JSON's
        hints are only tried first): its reason, status and merchant by the indexes that hold
        its id, its order by the order index, its update id by the update-id hash.

        Costs a few round trips, plus a walk of the update-id hash and the order index when
        the hints do not name them: meant for the odd damaged letter, not for bulk use.
        """
        hints = damaged.hints
        groups = self._labels_found(damaged.id, hints)
        reason, status, merchant = (groups.get(kind) for kind in ("r", "s", "m"))
        order_ref, merchant = self._order_of(damaged.id, hints, merchant)
        return Place(
            damaged.id, merchant, order_ref, reason, status, self._update_of(damaged.id, hints)
        )

    def _labels_found(self, letter_id: str, hints: Mapping[str, Any]) -> dict[str, str]:
        """Of every reason, status and merchant the counters name (and the hints), those
        whose own index lists ``letter_id``: kind (``r``, ``s``, ``m``) -> label."""
        candidates: dict[str, set[str]] = {"r": set(), "s": set(), "m": set()}
        for raw in self.client.hkeys(self.counts_key):
            kind, _, label = _member(raw).partition(":")
            if kind in candidates and label:
                candidates[kind].add(label)
        if isinstance(hints.get("reason"), str):
            candidates["r"].add(hints["reason"])
        status = hints.get("status")
        candidates["s"].add(status_key(status) if isinstance(status, int) else "none")
        if isinstance(hints.get("merchant"), str):
            candidates["m"].add(hints["merchant"])
        asked = [(kind, label) for kind, labels in candidates.items() for label in sorted(labels)]
        pipe = self.client.pipeline(transaction=False)
        for kind, label in asked:
            key = self.index_key(
                label if kind == "r" else None,
                label if kind == "s" else None,
                label if kind == "m" else None,
            )
            pipe.zscore(key, letter_id)
        found: dict[str, str] = {}
        for (kind, label), score in zip(asked, pipe.execute(), strict=True):
            if score is not None:
                found.setdefault(kind, label)
        return found

    def _order_of(
        self, letter_id: str, hints: Mapping[str, Any], merchant: str | None
    ) -> tuple[str | None, str | None]:
        """(order-ref, merchant) of the letter's member in the order index, if it has one."""
        order_ref = hints.get("order_ref")
        if isinstance(order_ref, str) and merchant is not None:
            member = f"{order_ref}{SEP}{merchant}{SEP}{letter_id}"
            if self.client.zscore(self.by_order_key, member) is not None:
                return order_ref, merchant
        pattern = "*" + SEP + _glob_escape(letter_id)
        for raw, _score in self.client.zscan_iter(
            self.by_order_key, match=pattern, count=LOCATE_BATCH
        ):
            parts = _member(raw).rsplit(SEP, 2)
            if len(parts) == 3 and merchant in (None, parts[1]):
                return parts[0], parts[1]
        return None, merchant

    def _update_of(self, letter_id: str, hints: Mapping[str, Any]) -> str | None:
        """The letter's field in the update-id hash, if it has one."""
        update_id = hints.get("update_id")
        if (
            isinstance(update_id, str)
            and _member(self.client.hget(self.by_update_key, update_id) or b"") == letter_id
        ):
            return update_id
        for field, value in self.client.hscan_iter(self.by_update_key, count=LOCATE_BATCH):
            if _member(value) == letter_id:
                return _member(field)
        return None

    def forced_before(self, merchant: str, order_ref: str) -> int:
        """The highest original version a forced replay sent for this order (0: none)."""
        raw = self.client.hget(self.forced_key, forced_field(merchant, order_ref))
        return int(raw) if raw is not None else 0

    def audit_entries(
        self,
        *,
        limit: int,
        before: str | None = None,
        action: str | None = None,
        letter_id: str | None = None,
    ) -> list[AuditEntry]:
        """Audit entries newest first, older than the entry id ``before`` if given.

        ``action`` and ``letter_id`` filter while walking the log (it has no index).
        """
        found: list[AuditEntry] = []
        high = "(" + before if before else "+"
        while len(found) < limit:
            rows = self.client.xrevrange(self.audit_key, high, "-", count=AUDIT_BATCH)
            if not rows:
                break
            for entry_id, values in rows:
                entry = parse_entry(text(entry_id), values)
                if (action is None or entry.action == action) and (
                    letter_id is None or entry.letter == letter_id
                ):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if len(rows) < AUDIT_BATCH:
                break
            high = "(" + text(rows[-1][0])
        return found


def _member(raw: Any) -> str:
    """An index member, hash field or value as text; bytes that are not UTF-8 (written by
    hand) read as an id no letter has, rather than stopping the walk."""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _wanted(found: Stored | Damaged, filters: Filters, *, by_index: bool) -> bool:
    """Whether what was read passes the filters: those an index did not answer already
    (``by_index``: only ``grep``), or all of them (found by its order). A damaged letter
    passes only filters that do not need its content."""
    if isinstance(found, Damaged):
        return filters.grep is None if by_index else filters.admits_damaged(found.id)
    if by_index:
        return filters.grep is None or grep_matches(filters.grep, found.letter)
    return filters.matches(found.letter)


def _id_of(entry: Stored | Damaged) -> str:
    return entry.letter.id if isinstance(entry, Stored) else entry.id


def _glob_escape(value: str) -> str:
    """``value`` matched literally by a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)
