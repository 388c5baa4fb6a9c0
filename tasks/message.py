"""The Celery message of one update, as it travels through the queue and the schedule.

JSON only. It carries the payload (which is why messages live in Redis and never in logs)
and never a credential: the worker looks those up by merchant-ref.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from cartsync.tasks import codec
from cartsync.tasks.schemas.fields import kind
from cartsync.worker.errors import InvalidMessage

#: The Celery task's registered name. It lives with the message the task carries, so that the
#: app that publishes by name (``worker.celeryapp``) and the task that registers under it
#: (``tasks.order_update``) share it without importing each other. A task carries a batch of
#: update messages (``worker.schedule``).
TASK_NAME = "cartsync.order_updates"

#: The highest version an update may have: versions are signed 64-bit integers, like every
#: integer cartsync accepts (``tasks/codec.py``). A producer's own version may be a
#: microsecond timestamp, past the 2**53 up to which a double (a Lua number) is exact: the
#: ledger keeps versions as decimal text in Redis (``worker/lua/ledger_*.lua``).
MAX_VERSION = codec.MAX_INT
#: The message for a version that is no whole number in range.
VERSION_RANGE = f"Must be a whole number from 1 to {MAX_VERSION}"


def version_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an update's version, or None when it can: an int (not a bool,
    not a float, however whole) from 1 to :data:`MAX_VERSION`."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{VERSION_RANGE}, not {kind(value)}."
    if not 1 <= value <= MAX_VERSION:
        return f"{VERSION_RANGE}."
    return None


@dataclass(frozen=True)
class UpdateMessage:
    update_id: str
    merchant: str
    order_ref: str
    version: int
    body: dict[str, Any]
    enqueued_at: float
    #: One entry per failed attempt: at, status, exception, errors, latency_ms, delay_s.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: The dead letter this update was replayed from, if any.
    replay_of: str | None = None
    #: Times this message waited because another worker was sending for the same order. It
    #: also keeps each re-scheduled copy distinct from the one being removed from the schedule.
    deferrals: int = 0

    @property
    def attempt(self) -> int:
        """The number of the attempt this message is for (1-based)."""
        return len(self.attempts) + 1

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict. The body is shared, not copied: a deep copy
        (``dataclasses.asdict``) of a 2 KB cart cost more than validating it, on every enqueue;
        every caller serializes the dict at once and none changes the body."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["attempts"] = [dict(entry) for entry in self.attempts]
        return data

    def split_at_version(self) -> tuple[str, str]:
        """The message's JSON as (prefix, suffix) around the version number.

        The ledger assigns the version inside Redis, atomically with recording it, and joins
        ``prefix + str(version) + suffix`` there; JSON is built here, never in Lua. The joined
        text is exactly ``json.dumps`` of :meth:`to_dict` with that version (the schedule's
        one text form, ``worker.schedule.member_of``), which a worker rebuilds from the
        message it receives. The version follows the three string fields, and JSON escapes
        every quote inside a string, so the first ``,"version":0,`` is the field itself.
        """
        text = codec.encode({**self.to_dict(), "version": 0})
        marker = ',"version":0,'
        at = text.index(marker)
        return text[:at] + ',"version":', "," + text[at + len(marker) :]

    @classmethod
    def from_json(cls, text: Any) -> UpdateMessage:
        """The message from its text form (``worker.schedule.member_of``)."""
        if not isinstance(text, str):
            raise InvalidMessage("the message is not JSON text")
        try:
            raw = json.loads(text)
        except ValueError:
            raise InvalidMessage("the message is not valid JSON") from None
        except RecursionError:
            raise InvalidMessage("the message nests too deeply to be read") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> UpdateMessage:
        if not isinstance(raw, dict):
            raise InvalidMessage("the message is not a JSON object")
        try:
            message = cls(**raw)
        except TypeError as exc:
            raise InvalidMessage(f"the message has the wrong fields: {exc}") from None
        checks = {
            "update_id": isinstance(message.update_id, str) and message.update_id,
            "merchant": isinstance(message.merchant, str) and message.merchant,
            "order_ref": isinstance(message.order_ref, str) and message.order_ref,
            "version": version_problem(message.version) is None,
            "body": isinstance(message.body, dict),
            "enqueued_at": isinstance(message.enqueued_at, int | float),
            "attempts": isinstance(message.attempts, list),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidMessage("the message has invalid fields: " + ", ".join(bad))
        return message
