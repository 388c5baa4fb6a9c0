"""The dead-letter audit log: a Redis stream of every replay, edit, drop, purge and import.

An entry is written in the same Lua script as the change it describes (as a JSON list of
field/value pairs, :func:`audit_arg`), so a change is never without its entry. The log is
never trimmed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from cartsync.worker.redistext import text

#: Entries read per round trip while walking the log.
AUDIT_BATCH = 500


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


def audit_arg(note: AuditNote | None, letter_id: str) -> str:
    """The audit entry as a store script takes it: a JSON list, or '' for none."""
    return "" if note is None else json.dumps(note.flat(letter_id), ensure_ascii=False)


def pairs(flat: list[str]) -> dict[str, str]:
    """A field/value list as the mapping XADD takes."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def parse_entry(entry_id: str, values: Mapping[Any, Any] | None) -> AuditEntry:
    """An entry as read from the stream; missing or malformed fields read as empty."""
    fields = {text(k): text(v) for k, v in (values or {}).items()}
    try:
        detail = json.loads(fields.get("detail") or "{}")
    except ValueError:
        detail = {}
    return AuditEntry(
        id=entry_id,
        at=float(fields.get("at") or 0),
        by=fields.get("by", ""),
        action=fields.get("action", ""),
        run=fields.get("run", ""),
        letter=fields.get("letter", ""),
        result=fields.get("result", ""),
        detail=detail if isinstance(detail, dict) else {},
    )


def read_entries(
    client: redis.Redis,
    key: str,
    *,
    limit: int,
    before: str | None = None,
    action: str | None = None,
    letter_id: str | None = None,
) -> list[AuditEntry]:
    """Entries of the stream ``key`` newest first, older than the entry id ``before`` if given.

    ``action`` and ``letter_id`` filter while walking the log (it has no index).
    """
    found: list[AuditEntry] = []
    high = "(" + before if before else "+"
    while len(found) < limit:
        rows = client.xrevrange(key, high, "-", count=AUDIT_BATCH)
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
