"""What the task does with an update it cannot deliver: park it as a dead letter, and deal
with processing that raised unexpectedly.

Processing that raises unexpectedly (a bug, or a message that breaks the worker) does not
leave the update to come back forever: each failure is counted in Redis, the update is tried
again after a backoff, and after ``CARTSYNC_WORKER_MAX_FAILURES`` failures it is parked as
``invalid`` with the error (:func:`after_failure`, called by
``tasks.order_update.run_batch``). Its events are the task's ``order_update`` events, on the
task's logger.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from pathlib import PurePath
from typing import Any

import redis

from cartsync.config.logging import get_logger
from cartsync.tasks.message import UpdateMessage
from cartsync.tasks.services import Services
from cartsync.worker import keys
from cartsync.worker.backoff import compute_backoff
from cartsync.worker.deadletters import DeadLetter
from cartsync.worker.outcome_records import after_attempt, write_into
from cartsync.worker.outcomes import Outcome, Reason
from cartsync.worker.redisconn import execute_confirmed

log = get_logger("cartsync.order_update")

#: Seconds an update's count of unexpected failures is kept (``keys.failures``): far longer
#: than the backoff between its tries, so that a worker restart in between loses no count.
FAILURE_MEMORY_S = 24 * 3600

#: Characters of an exception's message a dead letter keeps.
FAILURE_TEXT_LIMIT = 500

#: The folder holding cartsync's packages (``tasks/``, ``worker/``...). A dead letter shows
#: where an exception was raised relative to it: an absolute path would say where cartsync is
#: installed, nothing about the bug.
SOURCE_ROOT = PurePath(__file__).parents[1]


def after_failure(member: Any, exc: Exception, rt: Services) -> Outcome:
    """Deal with an update whose processing raised ``exc`` unexpectedly.

    The failure is counted per update in Redis (``keys.failures``, so the count survives
    worker restarts). Below ``CARTSYNC_WORKER_MAX_FAILURES`` the message leaves the in-flight
    set for the schedule, due after a backoff (``worker.backoff``): a passing cause gets its
    chance. At the limit the update is parked as ``invalid``, its letter naming the
    exception's type, message and where it was raised. The log names the exception's type
    only: its message may quote the payload. If recording the failure fails as well (Redis
    gone), the message stays in flight and the schedule's sweep brings it back.
    """
    fields = fields_of(member)
    bound = log.bind(
        merchant=text_field(fields, "merchant"),
        order_ref=text_field(fields, "order_ref"),
        update_id=text_field(fields, "update_id"),
        version=version_field(fields),
        exception=type(exc).__name__,
    )
    s = rt.settings
    try:
        failures = _count_failure(member, fields, rt)
        if failures < s.worker_max_failures and isinstance(member, str):
            delay = compute_backoff(failures, base=s.retry_base_s, cap=s.retry_cap_s)
            rt.schedule.put_back([member], rt.clock() + delay)
            bound.error(
                "order_update",
                outcome=Outcome.FAILED,
                reason=type(exc).__name__,
                next_retry_s=round(delay, 3),
            )
            rt.metrics.observe(Outcome.FAILED, type(exc).__name__, None, None)
            return Outcome.FAILED
        errors = [
            f"processing failed unexpectedly {failures} time(s), the last with {failure_text(exc)}"
        ]
        letter_id = _park_failed(member, errors, rt)
        if isinstance(member, str):
            rt.schedule.done(member)
        pipe = rt.redis.pipeline(transaction=False)
        pipe.delete(_failure_key(member, fields, rt))
        _record_parked(pipe, fields, letter_id, rt)
        pipe.execute()
    except Exception as handling:
        bound.error(
            "order_update",
            outcome=Outcome.FAILED,
            reason="unrecorded",
            exception=f"{type(exc).__name__}, then {type(handling).__name__}",
        )
        return Outcome.FAILED
    bound.error(
        "order_update", outcome=Outcome.DEAD_LETTERED, reason=Reason.INVALID, letter_id=letter_id
    )
    rt.metrics.observe(Outcome.DEAD_LETTERED, Reason.INVALID, None, None)
    return Outcome.DEAD_LETTERED


def _record_parked(
    pipe: redis.client.Pipeline, fields: dict[str, Any], letter_id: str, rt: Services
) -> None:
    """Add the update's outcome record (parked) to ``pipe``, when its message names it."""
    update_id, version = text_field(fields, "update_id"), version_field(fields)
    merchant, order_ref = text_field(fields, "merchant"), text_field(fields, "order_ref")
    enqueued_at, attempts = fields.get("enqueued_at"), fields.get("attempts")
    if not (update_id and merchant and order_ref and version is not None):
        return
    record = after_attempt(
        Outcome.DEAD_LETTERED, at=rt.clock(), merchant=merchant, order_ref=order_ref,
        version=version, letter_id=letter_id, reason=Reason.INVALID,
        enqueued_at=float(enqueued_at) if isinstance(enqueued_at, int | float) else rt.clock(),
        attempts=len(attempts) if isinstance(attempts, list) else 0,
    )  # fmt: skip
    if record is not None:
        write_into(pipe, rt.settings.key_prefix, update_id, record, rt.settings.idempotency_ttl_s)


def failure_text(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` of an exception, for a dead letter. The
    place is the innermost frame in cartsync's own code (else the innermost frame), where a
    developer starts looking."""
    message = str(exc)[:FAILURE_TEXT_LIMIT]
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if PurePath(f.filename).is_relative_to(SOURCE_ROOT)]
    if own or frames:
        frame = (own or frames)[-1]
        path = PurePath(frame.filename)
        shown = path.relative_to(SOURCE_ROOT).as_posix() if own else path.name
        text += f" (at {shown}:{frame.lineno} in {frame.name})"
    return text


def _failure_key(member: Any, fields: dict[str, Any], rt: Services) -> str:
    """The failure counter of an update: by its id, or by its text when that does not say."""
    update_id = fields.get("update_id")
    if not isinstance(update_id, str) or not update_id:
        raw = member if isinstance(member, str) else repr(member)
        update_id = "text-" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:32]
    return keys.failures(rt.settings.key_prefix, update_id)


def _count_failure(member: Any, fields: dict[str, Any], rt: Services) -> int:
    """Count one more failure of the update; returns its failures so far."""
    key = _failure_key(member, fields, rt)
    pipe = rt.redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, FAILURE_MEMORY_S)
    count, _ = pipe.execute()
    return int(count)


def _park_failed(member: Any, errors: list[str], rt: Services) -> str:
    """Park an update that kept failing: as its message when that decodes and parks, else as
    the text it came as (the message's own fields may be what breaks)."""
    try:
        message = UpdateMessage.from_json(member)
        return park_letter(message, Reason.INVALID, rt, status=None, errors=errors) or ""
    except Exception:  # whatever breaks, the text still gets parked
        return park_undecodable(member, errors, rt)


def park_letter(
    message: UpdateMessage,
    reason: Reason,
    rt: Services,
    *,
    status: int | None,
    errors: list[str],
) -> str:
    """Park an update message as a dead letter; returns the letter's id."""
    return _parked(
        rt,
        DeadLetter(
            update_id=message.update_id,
            merchant=message.merchant,
            order_ref=message.order_ref,
            version=message.version,
            reason=reason.value,
            status=status,
            errors=list(errors),
            attempts=message.attempts,
            enqueued_at=message.enqueued_at,
            payload=message.body,
            history=[{"at": rt.clock(), "action": "replayed_from", "letter": message.replay_of}]
            if message.replay_of
            else [],
        ),
    )


def _parked(rt: Services, letter: DeadLetter) -> str:
    """Park ``letter``; with ``CARTSYNC_REDIS_MIN_REPLICAS``, also wait for the replicas to
    confirm it (``worker/redisconn.py``). When they do not, ReplicasUnavailable: the attempt
    ends unrecorded, its message stays in flight and comes back (then found parked, once the
    letter has survived), so a failover cannot lose a letter that was logged as parked. The
    wait is one more round trip, for a parked update only."""
    letter_id = rt.dead_letters.park(letter)
    execute_confirmed(rt.redis.pipeline(transaction=False), rt.settings, what="the dead letter")
    return letter_id


def fields_of(member: Any) -> dict[str, Any]:
    """The fields of a message's text, as far as it is a JSON object; else none."""
    try:
        raw = json.loads(member) if isinstance(member, str) else member
    except (ValueError, RecursionError):  # nested deeper than Python's recursion limit
        return {}
    return raw if isinstance(raw, dict) else {}


def text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def version_field(fields: dict[str, Any]) -> int | None:
    value = fields.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def park_undecodable(member: Any, errors: list[str], rt: Services) -> str:
    fields = fields_of(member)

    def text(name: str, default: str = "unknown") -> str:
        value = fields.get(name)
        return value if isinstance(value, str) and value else default

    version = fields.get("version")
    enqueued_at = fields.get("enqueued_at")
    return _parked(
        rt,
        DeadLetter(
            update_id=text("update_id", f"invalid-{time.time_ns()}"),
            merchant=text("merchant"),
            order_ref=text("order_ref"),
            version=version if isinstance(version, int) and not isinstance(version, bool) else None,
            reason=Reason.INVALID.value,
            status=None,
            errors=list(errors),
            attempts=[],
            enqueued_at=float(enqueued_at)
            if isinstance(enqueued_at, int | float) and math.isfinite(enqueued_at)
            else rt.clock(),
            payload=fields.get("body", fields or member),
        ),
    )
