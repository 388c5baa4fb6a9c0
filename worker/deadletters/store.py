"""The dead-letter store: letters in Redis, their indexes, counters, filters and paging.

The layout is described in ``worker/deadletters/__init__.py``; every change is one Lua script
(``worker/deadletters/changes.py``), and changes to an existing letter are compare-and-set on
a hash of its stored bytes (:attr:`Stored.token`): an edit or a replay never overwrites a
change it did not see.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.deadletters.audit import (
    AuditEntry,
    AuditNote,
    audit_arg,
    pairs,
    read_entries,
)
from cartsync.worker.deadletters.changes import SEP, Changes, StoreKeys, forced_field
from cartsync.worker.deadletters.codec import Stored, encode, stored_of
from cartsync.worker.deadletters.filters import (
    Filters,
    Page,
    Stats,
    grep_matches,
    lower_bound,
    stats_from,
    upper_bound,
)
from cartsync.worker.deadletters.letter import DeadLetter, Reason, new_letter_id
from cartsync.worker.errors import DeadLetterNotFound, DuplicateLetter, NoFreeLetterId
from cartsync.worker.redistext import text

#: Letters fetched per round trip when a command walks many of them.
SCAN_BATCH = 500
#: Fresh ids tried before parking gives up: each is 32 random bits within one millisecond,
#: so a second try is already next to impossible.
PARK_ID_TRIES = 5


class DeadLetterStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.names = StoreKeys(prefix)
        self.base = keys.dead_letters(prefix)
        self.letters_key = self.names.letters
        self.by_update_key = self.names.by_update
        self.by_order_key = self.names.by_order
        self.counts_key = self.names.counts
        self.forced_key = self.names.forced
        self.audit_key = self.names.audit
        self.all_key = self.index_key(None, None, None)
        self._changes = Changes(client, self.names)

    def index_key(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        """The index of letters with this reason, status and merchant (None: any)."""
        return self.names.index(reason, status, merchant)

    @staticmethod
    def forced_field(merchant: str, order_ref: str) -> str:
        return forced_field(merchant, order_ref)

    # -- writing -----------------------------------------------------------------------------

    def park(self, letter: DeadLetter, *, audit: AuditNote | None = None) -> str:
        """Store ``letter``; parking the same update again keeps the first letter.

        Returns the letter's id (the existing letter's, for a repeated update). A letter that
        comes with an id (an import) keeps it; DuplicateLetter if another letter has it.
        """
        outcome, letter_id = self._park_one(letter, audit, self.client)
        if outcome == "taken":
            raise DuplicateLetter(letter.id)
        return letter_id

    def _park_one(
        self, letter: DeadLetter, audit: AuditNote | None, client: Any
    ) -> tuple[str, str]:
        Reason(letter.reason)  # the indexes rely on the reason being one of the known few
        keep_id = bool(letter.id)
        for _ in range(PARK_ID_TRIES):
            if not keep_id:
                letter.id = new_letter_id(letter.dead_at)
            outcome, letter_id = self._run_park(letter, audit, client)
            if outcome != "taken" or keep_id:
                return outcome, letter_id
        raise NoFreeLetterId(letter.dead_at, PARK_ID_TRIES)

    def _run_park(
        self, letter: DeadLetter, audit: AuditNote | None, client: Any
    ) -> tuple[str, str]:
        outcome, letter_id = (text(v) for v in self._call_park(letter, audit, client))
        return outcome, letter_id

    def _call_park(self, letter: DeadLetter, audit: AuditNote | None, client: Any) -> Any:
        """Run the park script on ``client`` (a pipeline queues it and returns itself)."""
        return self._changes.park(
            client, letter, body=encode(letter), audit_entry=audit_arg(audit, letter.id)
        )

    def park_many(
        self, letters: Iterable[DeadLetter], *, audit: AuditNote | None = None
    ) -> list[str]:
        """Park letters in one round trip (import, benchmark fill); returns each outcome.

        Outcomes: ``parked``, ``duplicate`` (its update is parked already) or ``taken`` (its id
        is). Letters without an id get one.
        """
        batch = list(letters)
        for letter in batch:
            Reason(letter.reason)
            if not letter.id:
                letter.id = new_letter_id(letter.dead_at)
        pipe = self.client.pipeline(transaction=False)
        for letter in batch:
            self._call_park(letter, audit, pipe)
        return [text(result[0]) for result in pipe.execute()]

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
            letter,
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

    def replace(self, stored: Stored, letter: DeadLetter, *, audit: AuditNote | None = None) -> str:
        """Store a changed copy of a letter, if it is still as read: ``replaced``, ``gone``
        or ``changed``. What the indexes hold (merchant, order, reason, status, id, update id)
        must not change."""
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
        """The letter with this id and its token; DeadLetterNotFound if there is none."""
        raw = self.client.hget(self.letters_key, letter_id)
        if raw is None:
            raise DeadLetterNotFound(letter_id)
        return stored_of(raw)

    def load_many(self, letter_ids: list[str]) -> list[Stored | None]:
        """Letters by id in one round trip; None where there is no such letter."""
        if not letter_ids:
            return []
        raws = self.client.hmget(self.letters_key, letter_ids)
        return [None if raw is None else stored_of(raw) for raw in raws]

    def page(self, filters: Filters, *, limit: int, cursor: str | None = None) -> Page:
        """Up to ``limit`` letters newest first, older than ``cursor`` (an id) if given."""
        # islice stops without asking the scan for more, so no second batch is fetched.
        found = list(itertools.islice(self.scan(filters, below=cursor, batch=limit + 1), limit + 1))
        more = len(found) > limit
        shown = found[:limit]
        return Page(shown, shown[-1].letter.id if more and shown else None)

    def scan(
        self, filters: Filters, *, below: str | None = None, batch: int = SCAN_BATCH
    ) -> Iterator[Stored]:
        """Every letter that matches, newest first, fetched ``batch`` at a time.

        Safe to use while removing what it yields: it resumes below the last id it saw.
        """
        if filters.order_ref is not None:
            yield from self._scan_order(filters, below)
            return
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = upper_bound(filters.until, below)
        low = lower_bound(filters.since)
        while True:
            ids = [
                text(m)
                for m in self.client.zrange(
                    key, high, low, desc=True, bylex=True, offset=0, num=batch
                )
            ]
            if not ids:
                return
            for found in self.load_many(ids):
                if found is None:
                    continue  # removed since the index was read
                if filters.grep is None or grep_matches(filters.grep, found.letter):
                    yield found
            if len(ids) < batch:
                return
            high = "(" + ids[-1]

    def _scan_order(self, filters: Filters, below: str | None) -> Iterator[Stored]:
        assert filters.order_ref is not None
        prefix = filters.order_ref + SEP
        if filters.merchant is not None:
            prefix += filters.merchant + SEP
        start = prefix.encode()
        members = self.client.zrange(
            self.by_order_key, b"[" + start, b"[" + start + b"\xff", bylex=True
        )
        ids = sorted({text(m).rsplit(SEP, 1)[-1] for m in members}, reverse=True)
        if below is not None:
            ids = [i for i in ids if i < below]
        for offset in range(0, len(ids), SCAN_BATCH):
            for found in self.load_many(ids[offset : offset + SCAN_BATCH]):
                if found is not None and filters.matches(found.letter):
                    yield found

    def count(self, filters: Filters) -> int:
        """How many letters match: O(log n) for indexed filters, a walk otherwise."""
        if not filters.indexed:
            return sum(1 for _ in self.scan(filters))
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = upper_bound(filters.until, None)
        low = lower_bound(filters.since)
        return int(self.client.zlexcount(key, low, high))

    def stats(self) -> Stats:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.counts_key)
        pipe.zrange(self.all_key, 0, 0)
        pipe.zrange(self.all_key, -1, -1)
        counts, oldest, newest = pipe.execute()
        return stats_from(
            counts,
            oldest_id=text(oldest[0]) if oldest else None,
            newest_id=text(newest[0]) if newest else None,
        )

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
        return read_entries(
            self.client,
            self.audit_key,
            limit=limit,
            before=before,
            action=action,
            letter_id=letter_id,
        )
