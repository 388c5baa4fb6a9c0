"""The dead-letter store: updates that could not be delivered, kept for people to act on.

Layout in Redis (every key starts with ``keys.dead_letters(prefix)``, called ``base`` here):

- ``base:letters``: one hash field per letter, its JSON compressed with zlib. A letter is
  read whole (``show``, replay) or by the page, never field by field, and cart JSON shrinks
  three- to fivefold, which keeps a million letters of 2 KB payload well under the payload's
  own size in memory.
- ``base:ix:{reason}:{status}`` and ``base:ix:{reason}:{status}:{merchant}``, with ``*`` for
  "any": eight sorted sets per letter, one for each combination of the three filters. All
  scores are 0 and members are letter ids, which sort by time (``1715000000000-1a2b3c4d``),
  so newest-first paging is ``ZRANGE ... BYLEX REV LIMIT`` from a cursor, a time range is a
  lexical range, and every filter combination costs O(log n + page), whatever the store size.
- ``base:by-order``: one sorted set of ``{order_ref}\\0{merchant}\\0{id}`` members, lexically
  searchable by order (an order has a handful of letters, so the other filters are applied to
  those few after fetching).
- ``base:by-update``: update id -> letter id, so that parking the same update twice (a
  redelivered message) keeps one letter.
- ``base:counts``: counters by reason, status and merchant, changed in the same script that
  parks or removes a letter, so ``stats`` reads one small hash.
- ``base:forced``: per order, the highest original version sent by a forced replay, so that a
  later forced replay of an older letter of that order is refused (see ``worker.replay``).
- ``base:audit``: a stream of every replay, edit, drop, purge and import, never trimmed.

Nothing here expires and nothing is trimmed: letters leave only through :meth:`remove`.
Every change is one Lua script, so a letter, its indexes, its counters and its audit entry
change together or not at all. Changes to an existing letter are compare-and-set on a hash of
its stored bytes (:class:`Stored.token`): an edit or a replay never overwrites a change it did
not see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.errors import DeadLetterNotFound, DuplicateLetter

#: zlib level for letter bodies: 6 is within a few per cent of 9 on cart JSON at a third of
#: the CPU time, and the bulk import and benchmark fill compress a million letters.
COMPRESSION_LEVEL = 6
#: Letters fetched per round trip when a command walks many of them.
SCAN_BATCH = 500
#: Letter ids: milliseconds since the epoch (13 digits, zero-padded so that lexical order is
#: time order until the year 2286), a dash, 8 random hex digits.
ID_PATTERN = re.compile(r"^\d{13}-[0-9a-f]{8}$")
#: Separator inside ``by-order`` members; order and merchant refs never contain it in practice,
#: and results are re-checked against the letter itself anyway.
_SEP = "\x00"


class Reason(StrEnum):
    CONFLICT = "conflict"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"


def new_letter_id(dead_at: float) -> str:
    """A fresh id for a letter that died at ``dead_at`` (seconds since the epoch)."""
    return f"{int(dead_at * 1000):013d}-{secrets.token_hex(4)}"


def id_time(letter_id: str) -> float:
    """When the letter with this id died, in seconds since the epoch."""
    return int(letter_id.split("-", 1)[0]) / 1000


def id_bound(at: float) -> str:
    """The smallest possible id of a letter that died at or after ``at``."""
    return f"{max(0, math.ceil(at * 1000)):013d}"


def replay_update_id(letter_id: str, revision: int) -> str:
    """The update id a replay of this letter, at this edit revision, is enqueued under
    (see ``worker.replay``)."""
    return f"replay-{letter_id}-r{revision}"


def status_key(status: int | None) -> str:
    """How a status code is named in filters and counters: the number, or ``none``."""
    return "none" if status is None else str(status)


@dataclass
class DeadLetter:
    """One parked update and everything known about why it is here."""

    update_id: str
    merchant: str
    order_ref: str
    version: int | None
    reason: str
    status: int | None
    errors: list[str]
    attempts: list[dict[str, Any]]
    enqueued_at: float
    payload: Any
    dead_at: float = field(default_factory=time.time)
    id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def revision(self) -> int:
        """How many times the payload was edited; a replay's update id includes it."""
        return sum(1 for entry in self.history if entry.get("action") == "edit")

    @property
    def first_error(self) -> str:
        """The first line of seQura's first error text (or of the worker's), for tables."""
        for text in self.errors:
            for line in str(text).splitlines():
                if line.strip():
                    return line.strip()
        return ""

    def to_dict(self) -> dict[str, Any]:
        """The letter as a dict (a deep copy)."""
        return asdict(self)

    def to_json(self) -> str:
        # Not asdict(): it deep-copies the payload first, which costs more than the encoding.
        shallow = {name: getattr(self, name) for name in _FIELD_NAMES}
        return json.dumps(shallow, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: Any) -> DeadLetter:
        """A letter from its dict form; ValueError names the first field that is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("a dead letter must be a JSON object")
        unknown = sorted(set(data) - set(_FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        checks: dict[str, Any] = {
            "update_id": _nonempty_str,
            "merchant": _nonempty_str,
            "order_ref": _nonempty_str,
            "version": lambda v: v is None or (_int(v) and v >= 1),
            "reason": lambda v: v in set(Reason),
            "status": lambda v: v is None or _int(v),
            "errors": lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v),
            "attempts": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
            "enqueued_at": _number,
            "payload": lambda v: True,
            "dead_at": _number,
            "id": lambda v: isinstance(v, str) and (v == "" or ID_PATTERN.match(v) is not None),
            "history": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
        }
        for name, check in checks.items():
            if name not in data:
                if name in {"dead_at", "id", "history"}:
                    continue
                raise ValueError(f"missing field {name!r}")
            if not check(data[name]):
                raise ValueError(f"field {name!r} has an invalid value")
        return cls(**data)


_FIELD_NAMES = tuple(f.name for f in fields(DeadLetter))


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def encode(letter: DeadLetter) -> bytes:
    """A letter as stored: its JSON, zlib-compressed."""
    return zlib.compress(letter.to_json().encode(), COMPRESSION_LEVEL)


def decode(raw: bytes) -> DeadLetter:
    return DeadLetter.from_dict(json.loads(zlib.decompress(raw)))


def token_of(raw: bytes) -> str:
    """The compare-and-set token of a stored letter (what Redis's ``sha1hex`` computes)."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A letter as read, with the token that a change to it must present."""

    letter: DeadLetter
    token: str


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
    #: Case-insensitive text to find in the error texts. The one filter without an index:
    #: it is applied while walking the others' index, so its cost grows with the letters
    #: walked until a page is full.
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
            and (self.grep is None or _grep(self.grep, letter))
        )

    def describe(self) -> dict[str, Any]:
        """The filters that are set, for the audit log."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def _grep(text: str, letter: DeadLetter) -> bool:
    needle = text.casefold()
    return any(needle in error.casefold() for error in letter.errors)


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; ``cursor`` asks for the next, None at the end."""

    letters: list[Stored]
    cursor: str | None


@dataclass(frozen=True)
class Stats:
    total: int
    by_reason: dict[str, int]
    by_status: dict[str, int]
    by_merchant: dict[str, int]
    oldest_id: str | None
    newest_id: str | None


@dataclass(frozen=True)
class AuditNote:
    """What to record in the audit log beside a change: who did what, with which result."""

    action: str
    by: str
    run: str
    result: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def with_result(self, result: str, **detail: Any) -> AuditNote:
        return AuditNote(self.action, self.by, self.run, result, {**self.detail, **detail})

    def flat(self, letter_id: str = "") -> list[str]:
        """The stream entry's field/value list."""
        return [
            "at",
            repr(time.time()),
            "by",
            self.by,
            "action",
            self.action,
            "run",
            self.run,
            "letter",
            letter_id,
            "result",
            self.result,
            "detail",
            json.dumps(dict(self.detail), ensure_ascii=False, separators=(",", ":")),
        ]


@dataclass(frozen=True)
class AuditEntry:
    id: str
    at: float
    by: str
    action: str
    run: str
    letter: str
    result: str
    detail: dict[str, Any]


# KEYS: letters, by-update, by-order, counts, audit, then the eight index sets.
# ARGV: id, update id, body, by-order member, reason/status/merchant counter fields,
# audit entry as a JSON list ('' for none). Returns {outcome, id}.
_PARK = """
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then return {'duplicate', existing} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'taken', ARGV[1]} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
for i = 6, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
for _, f in ipairs({'total', ARGV[5], ARGV[6], ARGV[7]}) do redis.call('HINCRBY', KEYS[4], f, 1) end
if ARGV[8] ~= '' then redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[8]))) end
return {'parked', ARGV[1]}
"""

# KEYS: letters, by-update, by-order, counts, audit, forced, then the eight index sets.
# ARGV: id, token ('' = unconditional), update id, by-order member, three counter fields,
# audit entry ('' for none), forced field ('' for none), forced version.
_REMOVE = """
local body = redis.call('HGET', KEYS[1], ARGV[1])
if not body then return 'gone' end
if ARGV[2] ~= '' and redis.sha1hex(body) ~= ARGV[2] then return 'changed' end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[3]) end
redis.call('ZREM', KEYS[3], ARGV[4])
for i = 7, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
for _, f in ipairs({'total', ARGV[5], ARGV[6], ARGV[7]}) do
  if redis.call('HINCRBY', KEYS[4], f, -1) <= 0 then redis.call('HDEL', KEYS[4], f) end
end
if ARGV[9] ~= '' then
  local highest = tonumber(redis.call('HGET', KEYS[6], ARGV[9]) or '0')
  if tonumber(ARGV[10]) > highest then redis.call('HSET', KEYS[6], ARGV[9], ARGV[10]) end
end
if ARGV[8] ~= '' then redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(ARGV[8]))) end
return 'removed'
"""

# KEYS: letters, audit. ARGV: id, token, new body, audit entry ('' for none).
_REPLACE = """
local body = redis.call('HGET', KEYS[1], ARGV[1])
if not body then return 'gone' end
if redis.sha1hex(body) ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(ARGV[4]))) end
return 'replaced'
"""


class DeadLetterStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.base = keys.dead_letters(prefix)
        self.letters_key = f"{self.base}:letters"
        self.by_update_key = f"{self.base}:by-update"
        self.by_order_key = f"{self.base}:by-order"
        self.counts_key = f"{self.base}:counts"
        self.forced_key = f"{self.base}:forced"
        self.audit_key = f"{self.base}:audit"
        self.all_key = self.index_key(None, None, None)
        self._park = client.register_script(_PARK)
        self._remove = client.register_script(_REMOVE)
        self._replace = client.register_script(_REPLACE)

    # -- key names ---------------------------------------------------------------------------

    def index_key(self, reason: str | None, status: str | None, merchant: str | None) -> str:
        """The index of letters with this reason, status and merchant (None: any)."""
        name = f"{self.base}:ix:{reason or '*'}:{status or '*'}"
        return name if merchant is None else f"{name}:{merchant}"

    def _indexes(self, letter: DeadLetter) -> list[str]:
        status = status_key(letter.status)
        return [
            self.index_key(r, s, m)
            for r in (letter.reason, None)
            for s in (status, None)
            for m in (letter.merchant, None)
        ]

    @staticmethod
    def _order_member(letter: DeadLetter) -> str:
        return f"{letter.order_ref}{_SEP}{letter.merchant}{_SEP}{letter.id}"

    @staticmethod
    def _counter_fields(letter: DeadLetter) -> list[str]:
        return [f"r:{letter.reason}", f"s:{status_key(letter.status)}", f"m:{letter.merchant}"]

    @staticmethod
    def forced_field(merchant: str, order_ref: str) -> str:
        return f"{merchant}{_SEP}{order_ref}"

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
        for _ in range(5):
            if not keep_id:
                letter.id = new_letter_id(letter.dead_at)
            outcome, letter_id = self._run_park(letter, audit, client)
            if outcome != "taken" or keep_id:
                return outcome, letter_id
        raise RuntimeError("could not find a free letter id")  # 32 random bits, 5 times

    def _run_park(
        self, letter: DeadLetter, audit: AuditNote | None, client: Any
    ) -> tuple[str, str]:
        outcome, letter_id = (_text(v) for v in self._call_park(letter, audit, client))
        return outcome, letter_id

    def _call_park(self, letter: DeadLetter, audit: AuditNote | None, client: Any) -> Any:
        """Run the park script on ``client`` (a pipeline queues it and returns itself)."""
        return self._park(
            keys=[
                self.letters_key,
                self.by_update_key,
                self.by_order_key,
                self.counts_key,
                self.audit_key,
                *self._indexes(letter),
            ],
            args=[
                letter.id,
                letter.update_id,
                encode(letter),
                self._order_member(letter),
                *self._counter_fields(letter),
                _audit_arg(audit, letter.id),
            ],
            client=client,
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
        return [_text(result[0]) for result in pipe.execute()]

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
        return _text(self._call_remove(stored, audit, forced_version, check, self.client))

    def _call_remove(
        self,
        stored: Stored,
        audit: AuditNote | None,
        forced_version: int | None,
        check: bool,
        client: Any,
    ) -> Any:
        letter = stored.letter
        forced = (
            self.forced_field(letter.merchant, letter.order_ref)
            if forced_version is not None
            else ""
        )
        return self._remove(
            keys=[
                self.letters_key,
                self.by_update_key,
                self.by_order_key,
                self.counts_key,
                self.audit_key,
                self.forced_key,
                *self._indexes(letter),
            ],
            args=[
                letter.id,
                stored.token if check else "",
                letter.update_id,
                self._order_member(letter),
                *self._counter_fields(letter),
                _audit_arg(audit, letter.id),
                forced,
                forced_version or 0,
            ],
            client=client,
        )

    def remove_many(
        self, items: Sequence[tuple[Stored, AuditNote | None, int | None]], *, check: bool = True
    ) -> list[str]:
        """:meth:`remove` for several letters in one round trip: each item is (letter as
        read, audit note, forced version). Returns each outcome."""
        pipe = self.client.pipeline(transaction=False)
        for stored, audit, forced_version in items:
            self._call_remove(stored, audit, forced_version, check, pipe)
        return [_text(outcome) for outcome in pipe.execute()]

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
        result = self._replace(
            keys=[self.letters_key, self.audit_key],
            args=[letter.id, stored.token, encode(letter), _audit_arg(audit, letter.id)],
        )
        return _text(result)

    def note(
        self, stored: Stored, entry: Mapping[str, Any], *, audit: AuditNote | None = None
    ) -> str:
        """Append ``entry`` to a letter's history (if it is still as read)."""
        letter = dataclasses.replace(stored.letter, history=[*stored.letter.history, dict(entry)])
        return self.replace(stored, letter, audit=audit)

    def record(self, note: AuditNote, letter_id: str = "") -> str:
        """Add an entry to the audit log that goes with no change to a letter."""
        entry_id = self.client.xadd(self.audit_key, _pairs(note.flat(letter_id)))  # type: ignore[arg-type]
        return _text(entry_id)

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
        return _stored(raw)

    def load_many(self, letter_ids: list[str]) -> list[Stored | None]:
        """Letters by id in one round trip; None where there is no such letter."""
        if not letter_ids:
            return []
        raws = self.client.hmget(self.letters_key, letter_ids)
        return [None if raw is None else _stored(raw) for raw in raws]

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
        high = _upper_bound(filters.until, below)
        low = "[" + id_bound(filters.since) if filters.since is not None else "-"
        while True:
            ids = [
                _text(m)
                for m in self.client.zrange(
                    key, high, low, desc=True, bylex=True, offset=0, num=batch
                )
            ]
            if not ids:
                return
            for stored in self.load_many(ids):
                if stored is None:
                    continue  # removed since the index was read
                if filters.grep is None or _grep(filters.grep, stored.letter):
                    yield stored
            if len(ids) < batch:
                return
            high = "(" + ids[-1]

    def _scan_order(self, filters: Filters, below: str | None) -> Iterator[Stored]:
        assert filters.order_ref is not None
        prefix = filters.order_ref + _SEP
        if filters.merchant is not None:
            prefix += filters.merchant + _SEP
        start = prefix.encode()
        members = self.client.zrange(
            self.by_order_key, b"[" + start, b"[" + start + b"\xff", bylex=True
        )
        ids = sorted({_text(m).rsplit(_SEP, 1)[-1] for m in members}, reverse=True)
        if below is not None:
            ids = [i for i in ids if i < below]
        for offset in range(0, len(ids), SCAN_BATCH):
            for stored in self.load_many(ids[offset : offset + SCAN_BATCH]):
                if stored is not None and filters.matches(stored.letter):
                    yield stored

    def count(self, filters: Filters) -> int:
        """How many letters match: O(log n) for indexed filters, a walk otherwise."""
        if not filters.indexed:
            return sum(1 for _ in self.scan(filters))
        key = self.index_key(filters.reason, filters.status, filters.merchant)
        high = _upper_bound(filters.until, None)
        low = "[" + id_bound(filters.since) if filters.since is not None else "-"
        return int(self.client.zlexcount(key, low, high))

    def stats(self) -> Stats:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.counts_key)
        pipe.zrange(self.all_key, 0, 0)
        pipe.zrange(self.all_key, -1, -1)
        counts, oldest, newest = pipe.execute()
        grouped: dict[str, dict[str, int]] = {"r": {}, "s": {}, "m": {}}
        total = 0
        for raw_name, raw_value in counts.items():
            name, value = _text(raw_name), int(raw_value)
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
            oldest_id=_text(oldest[0]) if oldest else None,
            newest_id=_text(newest[0]) if newest else None,
        )

    def forced_before(self, merchant: str, order_ref: str) -> int:
        """The highest original version a forced replay sent for this order (0: none)."""
        raw = self.client.hget(self.forced_key, self.forced_field(merchant, order_ref))
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
            rows = self.client.xrevrange(self.audit_key, high, "-", count=SCAN_BATCH)
            if not rows:
                break
            for entry_id, values in rows:
                entry = _audit_entry(_text(entry_id), values)
                if (action is None or entry.action == action) and (
                    letter_id is None or entry.letter == letter_id
                ):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if len(rows) < SCAN_BATCH:
                break
            high = "(" + _text(rows[-1][0])
        return found


def _upper_bound(until: float | None, below: str | None) -> str:
    """The lexical upper bound (exclusive) for ids before ``until`` and below ``below``."""
    bounds = [b for b in (id_bound(until) if until is not None else None, below) if b is not None]
    return "(" + min(bounds) if bounds else "+"


def _stored(raw: Any) -> Stored:
    return Stored(decode(raw), token_of(raw))


def _audit_arg(note: AuditNote | None, letter_id: str) -> str:
    return "" if note is None else json.dumps(note.flat(letter_id), ensure_ascii=False)


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _audit_entry(entry_id: str, values: Mapping[Any, Any] | None) -> AuditEntry:
    text = {_text(k): _text(v) for k, v in (values or {}).items()}
    try:
        detail = json.loads(text.get("detail") or "{}")
    except ValueError:
        detail = {}
    return AuditEntry(
        id=entry_id,
        at=float(text.get("at") or 0),
        by=text.get("by", ""),
        action=text.get("action", ""),
        run=text.get("run", ""),
        letter=text.get("letter", ""),
        result=text.get("result", ""),
        detail=detail if isinstance(detail, dict) else {},
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
