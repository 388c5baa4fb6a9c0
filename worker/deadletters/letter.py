"""A dead letter: the model, its ids, its validation and its JSON form.

Letters are read back from Redis and from files people edit or import (``cartsync dlq
edit``/``import``), so :meth:`DeadLetter.from_dict` checks every field and names the first
that is wrong.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

#: Letter ids: milliseconds since the epoch (13 digits, zero-padded so that lexical order is
#: time order until the year 2286), a dash, 8 random hex digits.
ID_PATTERN = re.compile(r"^\d{13}-[0-9a-f]{8}$")


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
        for name, check in _CHECKS.items():
            if name not in data:
                if name in _OPTIONAL:
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


def _dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(e, dict) for e in value)


#: What each field of a letter's dict form must hold, in the order the fields are checked.
_CHECKS: dict[str, Any] = {
    "update_id": _nonempty_str,
    "merchant": _nonempty_str,
    "order_ref": _nonempty_str,
    "version": lambda v: v is None or (_int(v) and v >= 1),
    "reason": lambda v: v in set(Reason),
    "status": lambda v: v is None or _int(v),
    "errors": lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v),
    "attempts": _dicts,
    "enqueued_at": _number,
    "payload": lambda v: True,
    "dead_at": _number,
    "id": lambda v: isinstance(v, str) and (v == "" or ID_PATTERN.match(v) is not None),
    "history": _dicts,
}
#: Fields a letter's dict form may leave out (a letter to import has no id or history yet).
_OPTIONAL = frozenset({"dead_at", "id", "history"})
