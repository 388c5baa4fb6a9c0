"""The dead-letter audit log: a Redis stream of every replay, edit, drop, purge and import.

An entry is written in the same Lua script as the change it describes (as a JSON list of
field/value pairs, :func:`audit_arg`), so a change is never without its entry. The log is
never trimmed. This module holds what an entry is; the store writes and walks the stream
(``DeadLetterStore.record`` in worker/deadletters/store.py, ``audit_entries`` in reading.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cartsync.worker.redistext import text

#: Entries read per round trip while walking the log.
AUDIT_BATCH = 500
#: Entry times at or after this (seconds since the epoch: the year 9999) read as 0, so that
#: every time read can be printed.
MAX_ENTRY_TIME = 253_402_300_800.0


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

    def about(self, letter: Any, result: str, **detail: Any) -> AuditNote:
        """:meth:`with_result` naming the letter's merchant, order-ref, reason and version,
        which every entry about one letter carries (so the audit can be searched by them)."""
        about = {
            "merchant": letter.merchant,
            "order_ref": letter.order_ref,
            "reason": letter.reason,
            "version": letter.version,
        }
        return self.with_result(result, **{**about, **detail})

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


#: Results of an action on a letter that the metrics count under their own name; any other
#: (an edit's "saved revision 3") counts as ``done``, so that the label stays bounded.
COUNTED_RESULTS = frozenset({"replayed", "refused", "failed", "dropped", "purged", "imported"})


def counted_as(note: AuditNote | None, letter_id: str) -> str:
    """The field of the metrics' dead-letter actions hash (``keys.metrics_dlq_actions``) an
    entry counts under, ``{action}|{result}``; '' for no entry, or one about no single letter
    (a run's summary, which would count its letters twice)."""
    if note is None or not letter_id:
        return ""
    return f"{note.action}|{note.result if note.result in COUNTED_RESULTS else 'done'}"


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
        at=_time(fields.get("at")),
        by=fields.get("by", ""),
        action=fields.get("action", ""),
        run=fields.get("run", ""),
        letter=fields.get("letter", ""),
        result=fields.get("result", ""),
        detail=detail if isinstance(detail, dict) else {},
    )


def _time(raw: str | None) -> float:
    """An entry's time, or 0 (shown as the epoch) when it is not one: the log is read by
    people after the fact, and one bad entry must not hide the others."""
    try:
        at = float(raw or 0)
    except ValueError:
        return 0.0
    return at if math.isfinite(at) and 0 <= at < MAX_ENTRY_TIME else 0.0
