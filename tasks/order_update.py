"""The Celery task that delivers a batch of updates, and the decisions around each one.

A task carries the text of one or more update messages (``worker.schedule`` cuts a backlog
into batches) and runs them one after the other. Path of one message: load it, ask the
ledger whether its version is still the newest, take the order's lock, validate and
serialize, send, then act on the outcome (``worker.outcomes``, the README's outcome table).
Every path ends in exactly one structured ``order_update`` event.

Processing that raises unexpectedly (a bug, or a message that breaks the worker) does not
leave the update to come back forever: each failure is counted in Redis, the update is tried
again after a backoff, and after ``CARTSYNC_WORKER_MAX_FAILURES`` failures it is parked as
``invalid`` with the error, where ``cartsync status``, the metrics and the dead-letter CLI
show it (:func:`run_batch`).

A use case: importing this module loads no settings and builds no app. The task is a shared
task that the worker's app registers (``worker.celeryapp``), and it reaches its process's
collaborators through the app's task class (``worker.runtime``), typed here as
:class:`Services`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any, Protocol

import redis
from celery import shared_task
from celery.exceptions import Reject

from cartsync.config.logging import get_logger
from cartsync.config.merchants import MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.tasks.message import TASK_NAME, UpdateMessage
from cartsync.tasks.validation import validate_update
from cartsync.worker import keys
from cartsync.worker.backoff import compute_backoff, exhausted
from cartsync.worker.client import SequraClient
from cartsync.worker.clock import logged_ms_since
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore
from cartsync.worker.errors import InvalidMessage, InvalidUpdate, UnknownMerchant
from cartsync.worker.ledger import Claim, Ledger
from cartsync.worker.metrics import Metrics
from cartsync.worker.outcomes import CallResult, Outcome, Reason, verdict
from cartsync.worker.schedule import Schedule

log = get_logger("cartsync.order_update")

#: Seconds to wait before trying again when another worker holds the order's lock.
LOCK_BUSY_DELAY_S = 1.0

#: Share of the broker's visibility timeout a task may spend on its batch. What it has not
#: started by then goes back to the schedule, so that no task outlives the visibility timeout
#: (which would have the broker hand the same task to a second worker).
BATCH_TIME_SHARE = 0.5

#: Outcomes logged at info level; the others are warnings (something to look at).
QUIET_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.SUPERSEDED, Outcome.DUPLICATE})

#: Seconds an update's count of unexpected failures is kept (``keys.failures``): far longer
#: than the backoff between its tries, so that a worker restart in between loses no count.
FAILURE_MEMORY_S = 24 * 3600

#: Characters of an exception's message a dead letter keeps.
FAILURE_TEXT_LIMIT = 500

#: The folder holding cartsync's packages (``tasks/``, ``worker/``...). A dead letter shows
#: where an exception was raised relative to it: an absolute path would say where cartsync is
#: installed, nothing about the bug.
SOURCE_ROOT = PurePath(__file__).parents[1]


class Services(Protocol):
    """What the task uses of its worker process: ``worker.runtime.Runtime`` provides it, and
    tests build one around their own settings."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def redis(self) -> redis.Redis: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def schedule(self) -> Schedule: ...
    @property
    def dead_letters(self) -> DeadLetterStore: ...
    @property
    def merchants(self) -> MerchantDirectory: ...
    @property
    def client(self) -> SequraClient: ...
    @property
    def metrics(self) -> Metrics: ...


#: Errors that mean Redis is unreachable or restarting right now.
REDIS_DOWN: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


@shared_task(
    name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def order_updates(task: Any, members: Any) -> list[Outcome]:
    """Deliver a batch of update messages; returns their outcomes' names.

    ``task.runtime`` is the process's :class:`Services`, from the app's task class
    (``worker.runtime.RuntimeTask``).
    """
    return run_batch(members if isinstance(members, list) else [members], task.runtime)


def run_batch(members: list[Any], rt: Services) -> list[Outcome]:
    """Run each message of a batch to its outcome, in order.

    A message whose processing fails unexpectedly (a bug, a message that breaks the worker)
    does not stop the rest of the batch: :func:`after_failure` counts the failure, and either
    schedules the message again after a backoff or, after ``CARTSYNC_WORKER_MAX_FAILURES``,
    parks it as ``invalid``. Nothing is raised for Celery: an exception's message may quote
    the payload, and Celery would log it with its traceback.
    """
    deadline = time.monotonic() + rt.settings.visibility_timeout_s * BATCH_TIME_SHARE
    outcomes: list[Outcome] = []
    for n, member in enumerate(members):
        if n and time.monotonic() > deadline:
            rest = [m for m in members[n:] if isinstance(m, str)]
            rt.schedule.give_back(rest, rt.clock())
            log.warning("order_updates.handed_back", count=len(rest))
            break
        try:
            outcomes.append(process(member, rt))
        except REDIS_DOWN as exc:
            # Redis went away mid-attempt, so the attempt's outcome may be unrecorded (a
            # retry not scheduled, a delivery not in the ledger). Acknowledging the task
            # would lose its updates (late acks acknowledge failures too): hand it back
            # instead. If Redis is still down, handing back fails as well and the task stays
            # unacknowledged until the visibility timeout returns it. Running the batch
            # again is harmless: the ledger ends the updates already done as duplicates.
            fields = _fields(member)
            log.warning(
                "order_update",
                outcome=Outcome.INTERRUPTED,
                reason="redis_unavailable",
                exception=type(exc).__name__,
                update_id=_text_field(fields, "update_id"),
                version=_version_field(fields),
            )
            raise Reject(type(exc).__name__, requeue=True) from None
        except Exception as exc:
            outcomes.append(after_failure(member, exc, rt))
    return outcomes


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
    fields = _fields(member)
    bound = log.bind(
        merchant=_text_field(fields, "merchant"),
        order_ref=_text_field(fields, "order_ref"),
        update_id=_text_field(fields, "update_id"),
        version=_version_field(fields),
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
        rt.redis.delete(_failure_key(member, fields, rt))
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
        return _park(message, Reason.INVALID, rt, status=None, errors=errors).letter_id or ""
    except Exception:  # whatever breaks, the text still gets parked
        return _park_undecodable(member, errors, rt)


@dataclass(frozen=True)
class Result:
    """What happened to one attempt, as logged."""

    outcome: Outcome
    reason: str | None = None
    status: int | None = None
    next_retry_s: float | None = None
    letter_id: str | None = None
    #: How long seQura took to answer, when a call was made.
    latency_ms: float | None = None
    #: Already counted for the metrics (with the attempt's last round trip).
    counted: bool = False


def process(member: Any, rt: Services) -> Outcome:
    """Run one attempt of one update message (its text form) to its outcome, and log it."""
    started = time.perf_counter()
    try:
        message = UpdateMessage.from_json(member)
    except InvalidMessage as exc:
        letter_id = _park_undecodable(member, [str(exc)], rt)
        if isinstance(member, str):
            rt.schedule.done(member)
        log.error(
            "order_update",
            outcome=Outcome.DEAD_LETTERED,
            reason=Reason.INVALID,
            letter_id=letter_id,
            duration_ms=logged_ms_since(started),
        )
        rt.metrics.observe(Outcome.DEAD_LETTERED, Reason.INVALID, None, None)
        return Outcome.DEAD_LETTERED
    bound = log.bind(
        merchant=message.merchant,
        order_ref=message.order_ref,
        update_id=message.update_id,
        version=message.version,
        attempt=message.attempt,
    )
    result = _attempt(message, member, rt)
    level = "info" if result.outcome in QUIET_OUTCOMES else "warning"
    getattr(bound, level)(
        "order_update",
        outcome=result.outcome,
        reason=result.reason,
        status=result.status,
        next_retry_s=result.next_retry_s,
        letter_id=result.letter_id,
        duration_ms=logged_ms_since(started),
    )
    if not result.counted:
        rt.metrics.observe(result.outcome, result.reason, result.status, result.latency_ms)
    return result.outcome


def _attempt(message: UpdateMessage, member: str, rt: Services) -> Result:
    # ``member`` is the message's entry in the in-flight set, dropped once the attempt's
    # outcome is recorded (with the claim, or with finish): until then a lost message comes
    # back.
    # One round trip decides and, when the update is to be sent, takes the order's lock
    # (the dead-letter check, the ledger's rule of ``decide`` and the lock, as one step).
    claim, token = rt.ledger.claim(
        message.merchant,
        message.order_ref,
        update_id=message.update_id,
        version=message.version,
        parked_index=rt.dead_letters.by_update_key,
        ttl_s=rt.settings.lock_ttl_s,
        member=member,
    )
    if claim is Claim.PARKED:
        # A redelivered message whose update was parked already.
        return Result(Outcome.DUPLICATE, reason="already_dead_lettered")
    if claim is Claim.BUSY:
        deferred = replace(message, deferrals=message.deferrals + 1)
        rt.schedule.add(deferred.to_dict(), rt.clock() + LOCK_BUSY_DELAY_S)
        rt.schedule.done(member)
        return Result(Outcome.DEFERRED, reason="order_busy", next_retry_s=LOCK_BUSY_DELAY_S)
    if claim is not Claim.SEND:
        # SUPERSEDED or DUPLICATE: the ledger's answer is the outcome of the same name.
        return Result(Outcome(claim.value))
    try:
        result = _send(message, rt)
    except BaseException:
        # Cut short before its outcome was recorded: free the order, but leave the message in
        # flight so that it comes back.
        rt.ledger.finish(message.merchant, message.order_ref, token, delivered=None)
        raise
    _finish_and_count(message, result, token, member, rt)
    return replace(result, counted=True)


def _finish_and_count(
    message: UpdateMessage, result: Result, token: str, member: str, rt: Services
) -> None:
    """End a sent attempt (record a delivery, release the lock, drop the in-flight entry) and
    count it for the metrics, in one round trip."""
    delivered = message.version if result.outcome is Outcome.DELIVERED else None
    pipe = rt.redis.pipeline(transaction=False)
    rt.ledger.finish(
        message.merchant, message.order_ref, token, delivered=delivered, member=member, pipe=pipe
    )
    rt.metrics.count_into(pipe, result.outcome, result.reason, result.status, result.latency_ms)
    try:
        pipe.execute()
    except redis.exceptions.NoScriptError:
        # Redis restarted and forgot the script; the counters went through, the finish not.
        rt.ledger.finish(
            message.merchant, message.order_ref, token, delivered=delivered, member=member
        )


def identity_errors(message: UpdateMessage) -> list[str]:
    """Where the body names another merchant or order than the message carrying it: one
    error per mismatch, naming the field (never its value). A body that leaves them out or
    holds no string or number there is validation's to refuse.

    The message's merchant and order-ref choose the URL and the credentials; the body is
    what seQura stores. The producer takes the message's from the body, so a mismatch means
    a message made or changed elsewhere, and sending it would put one order's carts on
    another order.
    """
    order = message.body.get("order")
    if not isinstance(order, dict):
        return []
    errors = []
    for part, field, expected, name in (
        ("merchant", "id", message.merchant, "merchant-ref"),
        ("merchant_reference", "order_ref_1", message.order_ref, "order-ref"),
    ):
        holder = order.get(part)
        value = holder.get(field) if isinstance(holder, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value) != expected:
            errors.append(
                f"order.{part}.{field}: does not match the {name} the update was queued for"
            )
    return errors


def _send(message: UpdateMessage, rt: Services) -> Result:
    mismatches = identity_errors(message)
    if mismatches:
        return _park(message, Reason.INVALID, rt, status=None, errors=mismatches)
    try:
        account = rt.merchants.get(message.merchant)
    except UnknownMerchant as exc:
        return _park(message, Reason.UNAUTHORIZED, rt, status=None, errors=[str(exc)])
    try:
        validated = validate_update(
            message.body, options=account.options, strict=rt.settings.strict
        )
    except InvalidUpdate as exc:
        return _park(message, Reason.INVALID, rt, status=None, errors=exc.lines())
    call = rt.client.update_order(
        account, message.order_ref, validated.body, version=message.version
    )
    return replace(_after_call(message, call, rt), latency_ms=call.latency_ms)


def _after_call(message: UpdateMessage, call: CallResult, rt: Services) -> Result:
    now = rt.clock()
    tried = replace(message, attempts=[*message.attempts, _attempt_record(call, now)])
    s = rt.settings
    decided = verdict(
        call,
        out_of_retries=exhausted(
            len(tried.attempts),
            retrying_for_s=now - tried.attempts[0]["at"],
            max_attempts=s.retry_max_attempts,
            min_window_s=s.retry_min_window_s,
        ),
    )
    if decided.outcome is Outcome.DELIVERED:
        # The ledger records the delivered version as the lock is released (_attempt).
        return Result(Outcome.DELIVERED, status=call.status)
    if decided.parked_as is not None:
        return _park(tried, decided.parked_as, rt, status=call.status, errors=call.errors)
    delay = compute_backoff(
        len(tried.attempts),
        base=s.retry_base_s,
        cap=s.retry_cap_s,
        retry_after=call.retry_after_s,
    )
    tried.attempts[-1]["delay_s"] = round(delay, 3)
    rt.schedule.add(tried.to_dict(), now + delay)
    return Result(
        decided.outcome,
        reason=decided.reason,
        status=call.status,
        next_retry_s=round(delay, 3),
    )


def _park(
    message: UpdateMessage,
    reason: Reason,
    rt: Services,
    *,
    status: int | None,
    errors: list[str],
) -> Result:
    letter_id = rt.dead_letters.park(
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
        )
    )
    return Result(Outcome.DEAD_LETTERED, reason=reason, status=status, letter_id=letter_id)


def _fields(member: Any) -> dict[str, Any]:
    """The fields of a message's text, as far as it is a JSON object; else none."""
    try:
        raw = json.loads(member) if isinstance(member, str) else member
    except (ValueError, RecursionError):  # nested deeper than Python's recursion limit
        return {}
    return raw if isinstance(raw, dict) else {}


def _text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def _version_field(fields: dict[str, Any]) -> int | None:
    value = fields.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _park_undecodable(member: Any, errors: list[str], rt: Services) -> str:
    fields = _fields(member)

    def text(name: str, default: str = "unknown") -> str:
        value = fields.get(name)
        return value if isinstance(value, str) and value else default

    version = fields.get("version")
    enqueued_at = fields.get("enqueued_at")
    return rt.dead_letters.park(
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
        )
    )


def _attempt_record(call: CallResult, now: float) -> dict[str, Any]:
    return {
        "at": now,
        "status": call.status,
        "exception": call.exception,
        "errors": call.errors[:5],
        "latency_ms": round(call.latency_ms, 1),
    }
