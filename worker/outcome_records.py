"""Outcome records: what a worker last recorded about an update, for lookups.

The ledger keeps only an order's newest versions, so an update delivered and then overtaken
would read as superseded, and an update enqueued through the Python API or the CLI leaves no
trace of its order once its message is gone. Whenever a worker records an update's outcome,
it also writes a small record (``keys.outcome``) in the same step it takes anyway (the
ledger's step script, the park path), kept as long as the update id itself
(``CARTSYNC_IDEMPOTENCY_TTL_S``): ``GET /v1/updates/{update_id}`` answers from it first.

A record is one JSON object written whole with one ``SET ... PX`` (a hash would take an
``HSET`` and a ``PEXPIRE``), so a later outcome never shows an earlier one's leftovers.
Releases before this one wrote a hash (``keys.outcome_hash``); :func:`read_into` and
:func:`from_replies` read it too until the last of those expires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.redistext import text

#: The states a record holds (those of ``GET /v1/updates/{update_id}``).
DELIVERED, RETRYING, SUPERSEDED, DEAD_LETTERED = (
    "delivered", "retrying", "superseded", "dead_lettered",
)  # fmt: skip

#: The record's fields (``superseded_by`` last: ``worker/lua/ledger_step.lua`` appends it).
FIELDS = (
    "outcome", "at", "merchant", "order_ref", "version", "enqueued_at", "attempts",
    "status", "next_try_at", "letter_id", "reason", "superseded_by",
)  # fmt: skip


@dataclass(frozen=True)
class OutcomeRecord:
    outcome: str
    #: When the worker recorded it (epoch seconds).
    at: float
    merchant: str
    order_ref: str
    version: int
    enqueued_at: float
    #: Calls made to seQura for the update so far.
    attempts: int = 0
    #: seQura's HTTP status of the last call, when one answered.
    status: int | None = None
    next_try_at: float | None = None
    letter_id: str | None = None
    reason: str | None = None
    superseded_by: int | None = None

    def to_json(self) -> str:
        """The record as stored: a JSON object of every field (null for none)."""
        return json.dumps({name: getattr(self, name) for name in FIELDS}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> OutcomeRecord | None:
        """A record from its stored text; None when there is none (or it is not whole)."""
        if raw is None:
            return None
        try:
            values = json.loads(raw)
            return cls(**{name: values[name] for name in FIELDS}) if values["outcome"] else None
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> OutcomeRecord | None:
        """A record from its hash; None when there is none (or it is not whole)."""
        values = {text(k): text(v) for k, v in raw.items()}
        if not values.get("outcome"):
            return None
        try:
            return cls(
                outcome=values["outcome"],
                at=float(values["at"]),
                merchant=values["merchant"],
                order_ref=values["order_ref"],
                version=int(values["version"]),
                enqueued_at=float(values["enqueued_at"]),
                attempts=int(values.get("attempts") or 0),
                status=_int(values.get("status")),
                next_try_at=_float(values.get("next_try_at")),
                letter_id=values.get("letter_id") or None,
                reason=values.get("reason") or None,
                superseded_by=_int(values.get("superseded_by")),
            )
        except (KeyError, ValueError):
            return None


def write_into(
    pipe: redis.client.Pipeline, prefix: str, update_id: str, record: OutcomeRecord, ttl_s: float
) -> None:
    """Add the record's writing to ``pipe`` (executed by the caller, with its own steps)."""
    pipe.set(keys.outcome(prefix, update_id), record.to_json(), px=ttl_ms(ttl_s))


def read_into(pipe: redis.client.Pipeline, prefix: str, update_id: str) -> int:
    """Add the reading of an update's record to ``pipe``; returns how many replies that adds,
    for :func:`from_replies`."""
    pipe.get(keys.outcome(prefix, update_id))
    pipe.hgetall(keys.outcome_hash(prefix, update_id))
    return 2


def from_replies(replies: list[Any]) -> OutcomeRecord | None:
    """The record from :func:`read_into`'s replies: the JSON text or an older release's hash,
    the later of the two when both are there (while workers of both releases run)."""
    stored, older = replies
    found = [r for r in (OutcomeRecord.from_json(stored), OutcomeRecord.from_hash(older)) if r]
    return max(found, key=lambda record: record.at, default=None)


def ttl_ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def after_attempt(
    outcome: str,
    *,
    at: float,
    merchant: str,
    order_ref: str,
    version: int,
    enqueued_at: float,
    attempts: int,
    status: int | None = None,
    next_retry_s: float | None = None,
    letter_id: str | None = None,
    reason: str | None = None,
) -> OutcomeRecord | None:
    """The record of an attempt that ended in ``outcome`` (a ``worker.outcomes.Outcome``
    value); None for outcomes that record nothing about the update (deferred, duplicate...)."""
    if outcome not in (DELIVERED, RETRYING, DEAD_LETTERED):
        return None
    return OutcomeRecord(
        outcome=outcome,
        at=at,
        merchant=merchant,
        order_ref=order_ref,
        version=version,
        enqueued_at=enqueued_at,
        attempts=attempts,
        status=status,
        next_try_at=None if next_retry_s is None else at + next_retry_s,
        letter_id=letter_id,
        reason=reason,
    )


def superseded_head(
    *,
    at: float,
    merchant: str,
    order_ref: str,
    version: int,
    enqueued_at: float,
    attempts: int,
) -> str:
    """The record of an update the claim finds superseded, as JSON without ``superseded_by``
    and the closing brace: the claim script appends the newest version it found
    (``worker/lua/ledger_step.lua``)."""
    record = OutcomeRecord(
        SUPERSEDED, at, merchant, order_ref, version, enqueued_at, attempts=attempts
    )
    values = {name: getattr(record, name) for name in FIELDS if name != "superseded_by"}
    return json.dumps(values, separators=(",", ":"))[:-1]
