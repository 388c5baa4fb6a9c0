"""Outcome records: what a worker last recorded about an update, for lookups.

The ledger keeps only an order's newest versions, so an update delivered and then overtaken
would read as superseded, and an update enqueued through the Python API or the CLI leaves no
trace of its order once its message is gone. Whenever a worker records an update's outcome,
it also writes a small hash (``keys.outcome``) in the same round trip it makes anyway (the
finish pipeline, the claim script, the park path), kept as long as the update id itself
(``CARTSYNC_IDEMPOTENCY_TTL_S``): ``GET /v1/updates/{update_id}`` answers from it first.

Every field is written each time (empty when it does not apply), so a later outcome never
shows an earlier one's leftovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from cartsync.worker import keys
from cartsync.worker.redistext import text

#: The states a record holds (those of ``GET /v1/updates/{update_id}``).
DELIVERED, RETRYING, SUPERSEDED, DEAD_LETTERED = (
    "delivered", "retrying", "superseded", "dead_lettered",
)  # fmt: skip

#: The record's fields, in the order ``worker/lua/ledger_claim.lua`` is handed them.
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

    def fields(self) -> dict[str, str]:
        """The hash's fields, every one ('' for none)."""
        return {name: _field(getattr(self, name)) for name in FIELDS}

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
    key = keys.outcome(prefix, update_id)
    mapping: dict[FieldT, EncodableT] = {k: v for k, v in record.fields().items()}
    pipe.hset(key, mapping=mapping)
    pipe.pexpire(key, ttl_ms(ttl_s))


def ttl_ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))


def _field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


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


def claim_args(
    prefix: str,
    update_id: str,
    ttl_s: float,
    *,
    at: float,
    merchant: str,
    order_ref: str,
    enqueued_at: float,
    attempts: int,
) -> tuple[str, list[str]]:
    """The record's key and arguments for ``Ledger.claim`` (written if it supersedes)."""
    return keys.outcome(prefix, update_id), [
        str(ttl_ms(ttl_s)), repr(at), merchant, order_ref, repr(enqueued_at), str(attempts),
    ]  # fmt: skip
