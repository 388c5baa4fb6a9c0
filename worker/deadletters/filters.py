"""Which letters a command is about, and what a listing returns: pure values and decisions.

The store (``worker/deadletters/reading.py``) turns a :class:`Filters` into index reads; the
lexical bounds of those reads are decided here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from cartsync.worker.deadletters.codec import Damaged, Stored
from cartsync.worker.deadletters.letter import DeadLetter, id_bound, status_key
from cartsync.worker.redistext import text


@dataclass(frozen=True)
class Filters:
    """Which letters a command is about. Every field left None matches all."""

    merchant: str | None = None
    reason: str | None = None
    #: A status code as text, or ``none`` for letters without one (see :func:`status_key`).
    status: str | None = None
    order_ref: str | None = None
    #: Died at or after (seconds since the epoch).
    since: float | None = None
    #: Died before.
    until: float | None = None
    #: Case-insensitive text to find in the error texts (:func:`grep_matches`). The
    #: error-text index (``textindex.py``) names the letters that may hold it, which are then
    #: checked; a text too common for that is checked while walking the others' index.
    grep: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    @property
    def indexed(self) -> bool:
        """True when an index answers this filter alone (counting is then O(log n))."""
        return self.order_ref is None and self.grep is None

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` passes every filter (used where no index decided already)."""
        return (
            (self.merchant is None or letter.merchant == self.merchant)
            and (self.reason is None or letter.reason == self.reason)
            and (self.status is None or status_key(letter.status) == self.status)
            and (self.order_ref is None or letter.order_ref == self.order_ref)
            and (self.since is None or letter.id >= id_bound(self.since))
            and (self.until is None or letter.id < id_bound(self.until))
            and (self.grep is None or grep_matches(self.grep, letter))
        )

    def admits_damaged(self, letter_id: str) -> bool:
        """Whether a damaged letter found by its order (and merchant) passes the rest: only
        filters its id can answer, as its reason, status and texts cannot be read."""
        return (
            self.reason is None
            and self.status is None
            and self.grep is None
            and (self.since is None or letter_id >= id_bound(self.since))
            and (self.until is None or letter_id < id_bound(self.until))
        )

    def describe(self) -> dict[str, Any]:
        """The filters that are set, for the audit log."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def grep_matches(needle: str, letter: DeadLetter) -> bool:
    """Whether one of the letter's error texts holds ``needle``, ignoring case."""
    folded = needle.casefold()
    return any(folded in error.casefold() for error in letter.errors)


def lower_bound(since: float | None) -> str:
    """The lexical lower bound (inclusive) for ids of letters that died at ``since`` or later."""
    return "[" + id_bound(since) if since is not None else "-"


def upper_bound(until: float | None, below: str | None) -> str:
    """The lexical upper bound (exclusive) for ids before ``until`` and below ``below``."""
    bounds = [b for b in (id_bound(until) if until is not None else None, below) if b is not None]
    return "(" + min(bounds) if bounds else "+"


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; ``cursor`` asks for the next, None at the end."""

    #: The letters, and the damaged letters among them, in the order listed.
    entries: list[Stored | Damaged]
    cursor: str | None

    @property
    def letters(self) -> list[Stored]:
        """The letters that read back."""
        return [e for e in self.entries if isinstance(e, Stored)]


@dataclass(frozen=True)
class Stats:
    total: int
    by_reason: dict[str, int]
    by_status: dict[str, int]
    by_merchant: dict[str, int]
    oldest_id: str | None
    newest_id: str | None


def stats_from(counts: Mapping[Any, Any], oldest_id: str | None, newest_id: str | None) -> Stats:
    """Stats out of the store's counters hash (``total``, ``r:…``, ``s:…``, ``m:…`` fields),
    each group largest first. A field that is not a count (written by hand) is passed over:
    the stats feed ``cartsync status`` and the metrics, which must keep answering."""
    grouped: dict[str, dict[str, int]] = {"r": {}, "s": {}, "m": {}}
    total = 0
    for raw_name, raw_value in counts.items():
        try:
            name, value = text(raw_name), int(raw_value)
        except ValueError:
            continue
        if name == "total":
            total = value
            continue
        kind, _, label = name.partition(":")
        grouped.setdefault(kind, {})[label] = value

    def ordered(group: dict[str, int]) -> dict[str, int]:
        return dict(sorted(group.items(), key=lambda kv: (-kv[1], kv[0])))

    return Stats(
        total=total,
        by_reason=ordered(grouped["r"]),
        by_status=ordered(grouped["s"]),
        by_merchant=ordered(grouped["m"]),
        oldest_id=oldest_id,
        newest_id=newest_id,
    )
