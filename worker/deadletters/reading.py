"""Reading the dead-letter store: letters by id, filtered walks and pages, counts and stats.

:class:`StoreReader` holds the store's keys and everything that only reads them;
:class:`DeadLetterStore` (``worker/deadletters/store.py``) adds the changes. Reading is
defensive: what does not read back as a letter is a :class:`Damaged` entry in listings (and
:class:`DamagedLetter` for :meth:`StoreReader.load`), never an exception that stops a listing,
the stats, ``cartsync status`` or the metrics.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.deadletters.audit import AUDIT_BATCH, AuditEntry, parse_entry
from cartsync.worker.deadletters.changes import SEP, StoreKeys, forced_field
from cartsync.worker.deadletters.codec import Damaged, Stored, member_text, stored_of
from cartsync.worker.deadletters.damaged import DamagedLookup
from cartsync.worker.deadletters.filters import (
    Filters,
    Page,
    Stats,
    grep_matches,
    lower_bound,
    stats_from,
    upper_bound,
)
from cartsync.worker.deadletters.letter import DeadLetter, valid_id
from cartsync.worker.deadletters.textindex import query
from cartsync.worker.errors import DamagedLetter, DeadLetterNotFound
from cartsync.worker.redistext import text

#: Letters fetched per round trip when a command walks many of them.
SCAN_BATCH = 500
#: Most letters a ``grep`` reads from the error-text index's candidates: beyond that the text
#: is common, and walking the other filters' index newest first fills a page sooner.
GREP_CANDIDATES = 50_000
#: Most numbers a ``grep`` widens one partial number of its text to (``add up to 50`` is
#: 50, 500, 5055, ...); beyond that the number is left out of the search.
GREP_NUMBERS = 2_000

#: Seconds before a run's start (by its id) that its audit entries are looked for, should
#: the clock of the machine that made the id be behind Redis's.
RUN_CLOCK_SLACK_S = 60

#: Ids read from each end of the index by ``stats``, of which the first the store could have
#: made is the oldest (newest) letter's; more are read only when all of those are damaged.
EDGE_PROBE = 16


class StoreReader(DamagedLookup):
    """The store's keys and its reads (the reading part of :class:`DeadLetterStore`)."""

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
        #: :data:`GREP_CANDIDATES` for this reader (a test may lower it).
        self.grep_candidates = GREP_CANDIDATES

    def index_key(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        """The index of letters with this reason, status and merchant (None: any)."""
        return self.names.index(reason, status, merchant)

    @staticmethod
    def forced_field(merchant: str, order_ref: str) -> str:
        return forced_field(merchant, order_ref)

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
        if filters.grep is not None:
            candidates = self.grep_candidates_of(filters.grep)
            if candidates is not None:
                yield from self._scan_ids(candidates, filters, below, batch)
                return
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = upper_bound(filters.until, below)
        low = lower_bound(filters.since)
        while True:
            ids = [
                member_text(m)
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

    def letters_of_orders(
        self, orders: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[DeadLetter]]:
        """Each (merchant, order-ref)'s letters, newest id first (damaged ones left out, as
        :meth:`scan` does), in two round trips whatever the number of orders: one pipeline
        of by-order range reads, then one read of all those letters."""
        wanted = list(dict.fromkeys(orders))
        if not wanted:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for merchant, order_ref in wanted:
            pipe.zrange(self.by_order_key, *_order_range(order_ref, merchant), bylex=True)
        ids_of = dict(zip(wanted, map(_ids_of, pipe.execute()), strict=True))
        every = list(dict.fromkeys(i for ids in ids_of.values() for i in ids))
        by_id = {
            letter_id: found.letter
            for letter_id, found in zip(every, self.load_many(every), strict=True)
            if isinstance(found, Stored)
        }
        return {
            key: [
                by_id[i]
                for i in ids
                if i in by_id and (by_id[i].merchant, by_id[i].order_ref) == key
            ]
            for key, ids in ids_of.items()
        }

    def _scan_order(self, filters: Filters, below: str | None) -> Iterator[Stored | Damaged]:
        assert filters.order_ref is not None
        members = self.client.zrange(
            self.by_order_key, *_order_range(filters.order_ref, filters.merchant), bylex=True
        )
        ids = _ids_of(members)
        if below is not None:
            ids = [i for i in ids if i < below]
        for offset in range(0, len(ids), SCAN_BATCH):
            for found in self.load_many(ids[offset : offset + SCAN_BATCH]):
                if found is not None and _wanted(found, filters, by_index=False):
                    yield found

    def _scan_ids(
        self, ids: Iterable[str], filters: Filters, below: str | None, batch: int
    ) -> Iterator[Stored | Damaged]:
        """The letters among ``ids`` that pass every filter, newest first (what an index
        walk with these filters yields, damaged letters left out as ``grep`` leaves them)."""
        # The bounds an index walk would give ZRANGE, without their "(" and "[".
        high_bound, low_bound = upper_bound(filters.until, below), lower_bound(filters.since)
        high = None if high_bound == "+" else high_bound[1:]
        low = None if low_bound == "-" else low_bound[1:]
        wanted = sorted(
            (i for i in ids if (high is None or i < high) and (low is None or i >= low)),
            reverse=True,
        )
        # Read ``batch`` at a time: a page reads only the newest few of many candidates.
        for offset in range(0, len(wanted), batch):
            for found in self.load_many(wanted[offset : offset + batch]):
                if isinstance(found, Stored) and filters.matches(found.letter):
                    yield found

    def text_index_ready(self) -> bool:
        """Whether the error-text index lists every letter (see :meth:`reindex`)."""
        return bool(self.client.exists(self.names.text_ready))

    def grep_candidates_of(self, needle: str) -> set[str] | None:
        """Ids of letters that may have an error text holding ``needle`` (every one that
        does among them), from the error-text index; None when the index cannot say (not
        built yet) or names more than :attr:`grep_candidates` letters.

        Of what the index knows about the text (the signatures it could have, numbers it
        must hold whole, numbers that must start or hold some digits), the part naming the
        fewest letters is read; the letters named are then checked exactly.
        """
        if not self.text_index_ready():
            return None
        wanted = query(needle)
        sigs = self.client.hgetall(self.names.text_signatures)
        groups = [
            [self.names.text_signature(text(d)) for d, s in sigs.items() if wanted.admits(text(s))]
        ]
        groups.extend([self.names.text_number(number)] for number in wanted.exact)
        if wanted.prefixes or wanted.infixes:
            numbers_key = self.names.text_numbers
            everything: list[str] | None = None
            for prefix in wanted.prefixes:
                start = b"[" + prefix.encode()
                found = self.client.zrange(
                    numbers_key, start, start + b"\xff", bylex=True, offset=0, num=GREP_NUMBERS + 1
                )
                if len(found) <= GREP_NUMBERS:
                    groups.append([self.names.text_number(text(n)) for n in found])
            for infix in wanted.infixes:
                if everything is None:
                    everything = [text(n) for n in self.client.zrange(numbers_key, 0, -1)]
                found_numbers = [n for n in everything if infix in n]
                if len(found_numbers) <= GREP_NUMBERS:
                    groups.append([self.names.text_number(n) for n in found_numbers])
        pipe = self.client.pipeline(transaction=False)
        for group in groups:
            for key in group:
                pipe.scard(key)
        sizes = iter(pipe.execute())
        estimates = [sum(int(next(sizes)) for _ in group) for group in groups]
        smallest = min(range(len(groups)), key=lambda g: estimates[g])
        if estimates[smallest] == 0:
            return set()
        if estimates[smallest] > self.grep_candidates:
            return None
        return {text(m) for m in self.client.sunion(groups[smallest])}

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
        batch, size = [member_text(m) for m in probed], EDGE_PROBE
        while batch:
            for letter_id in batch:
                if valid_id(letter_id):
                    return letter_id
            if len(batch) < size:
                return None
            # Ids the store makes start with a digit: only "0" up to ":" can hold them.
            after, size = "(" + batch[-1], SCAN_BATCH
            batch = [
                member_text(m)
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

    def run_entries(
        self,
        run: str,
        *,
        limit: int | None = None,
        action: str | None = None,
        letter_id: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Every audit entry of one command run, newest first (up to ``limit``), however old
        or many: read from the run's list of entry ids. A run written before those lists
        existed is found by walking the log down to the run's start (:func:`run_start_id`)."""
        listed = self.names.audit_run(run)
        if not self.client.exists(listed):
            entries = self._walk_run(run)
        else:
            entries = self._listed_run(listed)
        shown = 0
        for entry in entries:
            if (action is None or entry.action == action) and (
                letter_id is None or entry.letter == letter_id
            ):
                yield entry
                shown += 1
                if limit is not None and shown >= limit:
                    return

    def _listed_run(self, listed: str) -> Iterator[AuditEntry]:
        # From the end as it was when reading began: a run still going appends to the list,
        # which must not shift what the next page reads.
        end = int(self.client.llen(listed)) - 1
        while end >= 0:
            ids = self.client.lrange(listed, max(0, end - AUDIT_BATCH + 1), end)
            pipe = self.client.pipeline(transaction=False)
            for entry_id in reversed(ids):
                pipe.xrange(self.audit_key, entry_id, entry_id)
            for rows in pipe.execute():
                for entry_id, values in rows:
                    yield parse_entry(text(entry_id), values)
            end -= AUDIT_BATCH

    def _walk_run(self, run: str) -> Iterator[AuditEntry]:
        high, low = "+", run_start_id(run)
        while True:
            rows = self.client.xrevrange(self.audit_key, high, low, count=AUDIT_BATCH) or []
            for entry_id, values in rows:
                entry = parse_entry(text(entry_id), values)
                if entry.run == run:
                    yield entry
            if len(rows) < AUDIT_BATCH:
                return
            high = "(" + text(rows[-1][0] or "")


def run_start_id(run: str) -> str:
    """The lowest audit stream id an entry of ``run`` can have: its start, as the CLI's run
    ids say it (``20240506T101112Z-a1b2c3``), a minute early for clocks; ``-`` (the
    beginning) for a run id that says no time."""
    try:
        started = datetime.strptime(run.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "-"
    return str(max(0, int((started.timestamp() - RUN_CLOCK_SLACK_S) * 1000)))


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


def _order_range(order_ref: str, merchant: str | None) -> tuple[bytes, bytes]:
    """The lexical range of the by-order members of an order (of any merchant when
    ``merchant`` is None)."""
    prefix = order_ref + SEP + ("" if merchant is None else merchant + SEP)
    start = prefix.encode()
    return b"[" + start, b"[" + start + b"\xff"


def _ids_of(members: Iterable[Any]) -> list[str]:
    """The letter ids of by-order members, newest first."""
    return sorted({member_text(m).rsplit(SEP, 1)[-1] for m in members}, reverse=True)
