"""A dead letter: the model, its ids, its validation and its JSON form.

Letters are read back from Redis and from files people edit or import (``cartsync dlq
edit``/``import``), so :meth:`DeadLetter.from_dict` checks every field, numbers and times
included, and names the first that is wrong: a letter that passes can be listed, shown,
counted and replayed. The worker parks whatever a message carried, and a damaged message
may carry anything, so parking goes through :func:`repaired`, which never fails for a value
and never lets one through that would not read back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from cartsync.worker.outcomes import Reason

__all__ = ["Reason"]  # re-exported: the store's reasons are the outcomes' (worker/outcomes.py)

#: Letter ids: milliseconds since the epoch (13 digits, zero-padded so that lexical order is
#: time order until the year 2286), a dash, 8 random hex digits.
ID_PATTERN = re.compile(r"^\d{13}-[0-9a-f]{8}$")

#: The earliest time a letter may carry (2000-01-01T00:00:00Z, seconds since the epoch): when
#: it died, was enqueued or was attempted. cartsync never ran before it, so an earlier time is
#: a damaged or made-up value, and it keeps every time printable.
EARLIEST = 946_684_800.0
#: The latest time a letter may carry (2100-01-01T00:00:00Z); see :data:`EARLIEST`.
LATEST = 4_102_444_800.0
#: HTTP status codes a letter may carry: the three-digit range of RFC 9110, the range the
#: ``--status`` filter takes.
LOWEST_STATUS, HIGHEST_STATUS = 100, 599
#: Versions a letter may carry: what the order ledger gives out (worker/ledger.py), signed 64
#: bits so that Lua and Python agree on them.
LOWEST_VERSION, HIGHEST_VERSION = 1, 2**63 - 1
#: The update id of an imported letter is this prefix and the letter's new id: never the id
#: of a live update, which the worker checks parked letters against (worker/lua/ledger_step.lua).
IMPORTED_UPDATE_PREFIX = "imported-"
#: Characters of an original value kept in a repaired letter's history.
REPAIR_QUOTE_CHARS = 60

_RANGE_TEXT = "between 2000-01-01 and 2100-01-01 (seconds since the epoch)"


# The checks below run on every letter read (a page of ``list`` reads 50, each with up to
# 40 attempts): exact types take the fast path, and the range comparison refuses NaN and the
# infinities.


def valid_time(value: Any) -> bool:
    """Whether ``value`` is a time a letter may carry (a finite number within the bounds)."""
    return _is_number(value) and EARLIEST <= value < LATEST


def valid_status(value: Any) -> bool:
    return _is_int(value) and LOWEST_STATUS <= value <= HIGHEST_STATUS


def valid_version(value: Any) -> bool:
    return _is_int(value) and LOWEST_VERSION <= value <= HIGHEST_VERSION


def valid_duration(value: Any) -> bool:
    """Whether ``value`` is a finite number of 0 or more (an attempt's delay or latency)."""
    return _is_number(value) and 0 <= value < math.inf


def _is_int(value: Any) -> bool:
    """An int, not a bool (an IntEnum status is an int)."""
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return type(value) in _NUMBER_TYPES or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


_NUMBER_TYPES = (int, float)


def valid_id(value: Any) -> bool:
    """Whether ``value`` is a letter id the store could have made (pattern and time)."""
    return (
        isinstance(value, str)
        and ID_PATTERN.match(value) is not None
        and valid_time(id_time(value))
    )


def new_letter_id(dead_at: float) -> str:
    """A fresh id for a letter that died at ``dead_at`` (seconds since the epoch)."""
    if not valid_time(dead_at):
        raise ValueError(f"a letter's time of death must be {_RANGE_TEXT}")
    return f"{int(dead_at * 1000):013d}-{secrets.token_hex(4)}"


def id_time(letter_id: str) -> float:
    """When the letter with this id died, in seconds since the epoch (ValueError if the id
    does not start with the time)."""
    return int(letter_id.split("-", 1)[0]) / 1000


def id_bound(at: float) -> str:
    """The smallest possible id of a letter that died at or after ``at``."""
    return f"{max(0, math.ceil(at * 1000)):013d}"


def replay_update_id(letter_id: str, revision: int) -> str:
    """The update id a replay of this letter, at this edit revision, is enqueued under
    (see ``worker.replay``)."""
    return f"replay-{letter_id}-r{revision}"


def imported_update_id(letter_id: str) -> str:
    """The update id an imported letter carries in this store (see
    :data:`IMPORTED_UPDATE_PREFIX`)."""
    return IMPORTED_UPDATE_PREFIX + letter_id


def import_origin(data: Mapping[str, Any]) -> str:
    """What recognizes a letter read from an export when it is imported again: its id there,
    or, for a letter without one, a digest of its content."""
    letter_id = data.get("id")
    if isinstance(letter_id, str) and letter_id:
        return f"letter:{letter_id}"
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha1:" + hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


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
        for name, check in _CHECKS.items():
            if name not in data:
                if name in _OPTIONAL:
                    continue
                raise ValueError(f"missing field {name!r}")
            problem = check(data[name])
            if problem is not None:
                raise ValueError(f"field {name!r} {problem}")
        return cls(**data)


_FIELD_NAMES = tuple(f.name for f in fields(DeadLetter))


def checked(letter: DeadLetter) -> DeadLetter:
    """``letter`` itself if it would read back as it is; ValueError naming the first field
    that would not."""
    DeadLetter.from_dict({name: getattr(letter, name) for name in _FIELD_NAMES})
    return letter


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _text(value: Any) -> str | None:
    return None if _nonempty_str(value) else "must be non-empty text"


def _time(value: Any) -> str | None:
    return None if valid_time(value) else f"must be a time {_RANGE_TEXT}"


def _optional_status(value: Any) -> str | None:
    if value is None or valid_status(value):
        return None
    return f"must be an HTTP status code ({LOWEST_STATUS}-{HIGHEST_STATUS}) or null"


def _optional_version(value: Any) -> str | None:
    if value is None or valid_version(value):
        return None
    return f"must be a whole number from {LOWEST_VERSION} to {HIGHEST_VERSION}, or null"


def _reason(value: Any) -> str | None:
    if isinstance(value, str) and value in set(Reason):
        return None
    return "must be one of " + ", ".join(r.value for r in Reason)


def _texts(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(e, str) for e in value):
        return None
    return "must be a list of texts"


def _entries(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of objects"
    for number, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            return f"entry {number} must be an object"
    return None


#: What each key of an attempt must hold, where present and not null: the check, and what is
#: wrong otherwise.
_ATTEMPT_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "at": (valid_time, f"must be a time {_RANGE_TEXT}"),
    "status": (valid_status, f"must be an HTTP status code ({LOWEST_STATUS}-{HIGHEST_STATUS})"),
    "delay_s": (valid_duration, "must be a number of 0 or more"),
    "latency_ms": (valid_duration, "must be a number of 0 or more"),
}


def _attempts(value: Any) -> str | None:
    problem = _entries(value)
    if problem is not None:
        return problem
    for number, entry in enumerate(value, start=1):
        for key, (valid, wrong) in _ATTEMPT_KEYS.items():
            found = entry.get(key)
            if found is not None and not valid(found):
                return f"entry {number}: {key!r} {wrong}"
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, str) and (value == "" or ID_PATTERN.match(value) is not None):
        return None
    return "must be a letter id (13 digits, a dash, 8 hexadecimal digits)"


def _anything(value: Any) -> str | None:
    return None


#: What each field of a letter's dict form must hold, in the order the fields are checked:
#: each check returns what is wrong, or None.
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "update_id": _text,
    "merchant": _text,
    "order_ref": _text,
    "version": _optional_version,
    "reason": _reason,
    "status": _optional_status,
    "errors": _texts,
    "attempts": _attempts,
    "enqueued_at": _time,
    "payload": _anything,
    "dead_at": _time,
    "id": _id,
    # Only the shape: show prints history times it cannot read as "?" (worker/cli/dlq/inspect.py).
    "history": _entries,
}
#: Fields a letter's dict form may leave out (a letter to import has no id or history yet).
_OPTIONAL = frozenset({"dead_at", "id", "history"})
#: Fields that place a letter in the indexes: no stand-in can replace them.
_IDENTITY = frozenset({"update_id", "merchant", "order_ref", "reason"})


def repaired(letter: DeadLetter, now: float) -> DeadLetter:
    """``letter`` with every value that would not read back replaced by a stand-in (none, or
    the time of death), and a history entry naming what was replaced and quoting it; the
    letter itself when nothing needs to change.

    ValueError only when a field that places the letter in the indexes is wrong (a bug in the
    caller, not a damaged message: the worker always knows the update, merchant and order).
    """
    changes: dict[str, Any] = {}
    dead_at = letter.dead_at if valid_time(letter.dead_at) else now
    if dead_at != letter.dead_at:
        changes["dead_at"] = dead_at
    for name in ("version", "status", "errors", "attempts", "enqueued_at", "history"):
        value = getattr(letter, name)
        if _CHECKS[name](value) is not None:
            changes[name] = _stand_in(name, value, dead_at)
    for name in _IDENTITY:
        problem = _CHECKS[name](getattr(letter, name))
        if problem is not None:
            raise ValueError(f"field {name!r} {problem}")
    if not changes:
        return letter
    quoted = {name: repr(getattr(letter, name))[:REPAIR_QUOTE_CHARS] for name in changes}
    note = {
        "at": now,
        "action": "repaired",
        "reason": "out of range when parked: " + ", ".join(sorted(changes)),
        "was": quoted,
    }
    history = changes.get("history", letter.history)
    return replace(letter, **{**changes, "history": [*history, note]})


def _stand_in(name: str, value: Any, dead_at: float) -> Any:
    if name in ("version", "status"):
        return None
    if name == "enqueued_at":
        return dead_at
    if name == "errors":
        return [str(e) for e in value] if isinstance(value, list) else [str(value)]
    entries = [dict(e) for e in value if isinstance(e, dict)] if isinstance(value, list) else []
    if name == "attempts":
        for entry in entries:
            for key, (valid, _) in _ATTEMPT_KEYS.items():
                if entry.get(key) is not None and not valid(entry[key]):
                    entry[key] = None
    return entries
