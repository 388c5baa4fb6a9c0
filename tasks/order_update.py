"""The Celery task that delivers a batch of updates, and the decisions around each one.

A task carries the text of one or more update messages (``worker.schedule`` cuts a backlog
into batches) and runs them one after the other. Path of one message: load it, ask the
ledger whether its version is still the newest, take the order's lock, validate and
serialize, send, then act on the outcome (DESIGN.md's table). Every path ends in exactly one
structured ``order_update`` event.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import redis
import structlog
from celery.exceptions import Reject

from cartsync.config.merchants import MerchantDirectory, load_merchants
from cartsync.config.settings import Settings, load_settings
from cartsync.tasks.message import InvalidMessage, UpdateMessage
from cartsync.tasks.validation import validate_update
from cartsync.worker.backoff import compute_backoff, exhausted
from cartsync.worker.celeryapp import TASK_NAME, app
from cartsync.worker.client import SequraClient
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore, Reason
from cartsync.worker.errors import InvalidUpdate, UnknownMerchant
from cartsync.worker.ledger import Claim, Ledger
from cartsync.worker.metrics import Metrics
from cartsync.worker.outcomes import Kind, Outcome
from cartsync.worker.schedule import Schedule

log = structlog.get_logger("cartsync.order_update")

#: Seconds to wait before trying again when another worker holds the order's lock.
LOCK_BUSY_DELAY_S = 1.0

#: Share of the broker's visibility timeout a task may spend on its batch. What it has not
#: started by then goes back to the schedule, so that no task outlives the visibility timeout
#: (which would have the broker hand the same task to a second worker).
BATCH_TIME_SHARE = 0.5

#: Dead-letter reason for each outcome that is final without retrying.
PARK_REASON = {
    Kind.CONFLICT: Reason.CONFLICT,
    Kind.REJECTED: Reason.REJECTED,
    Kind.UNAUTHORIZED: Reason.UNAUTHORIZED,
}


class Runtime:
    """What a worker process needs to deliver updates, built once and shared by its threads."""

    def __init__(self, settings: Settings, *, clock: Any = time.time) -> None:
        self.settings = settings
        self.clock = clock

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url,
            max_connections=self.settings.worker_concurrency + 8,
            health_check_interval=30,
        )

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.settings.key_prefix)

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule(self.redis, self.settings.key_prefix)

    @cached_property
    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis, self.settings.key_prefix)

    @cached_property
    def merchants(self) -> MerchantDirectory:
        return load_merchants(self.settings)

    @cached_property
    def client(self) -> SequraClient:
        return SequraClient(self.settings)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.redis, self.settings.key_prefix)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(load_settings())
            # Build everything now, under the lock, so threads never race to build twice.
            _ = (
                _runtime.ledger,
                _runtime.schedule,
                _runtime.dead_letters,
                _runtime.client,
                _runtime.metrics,
            )
        return _runtime


#: Errors that mean Redis is unreachable or restarting right now.
REDIS_DOWN: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


@app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def order_updates(members: Any) -> list[str]:
    """Deliver a batch of update messages; returns their outcomes' names."""
    return run_batch(members if isinstance(members, list) else [members], runtime())


def run_batch(members: list[Any], rt: Runtime) -> list[str]:
    """Run each message of a batch to its outcome, in order.

    A message that fails unexpectedly (a bug) does not stop the rest of the batch; the first
    such error is raised at the end, for Celery to log. Its message stays in flight, and the
    schedule brings it back (``worker.schedule``).
    """
    deadline = time.monotonic() + rt.settings.visibility_timeout_s * BATCH_TIME_SHARE
    outcomes: list[str] = []
    failure: Exception | None = None
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
                outcome="interrupted",
                reason="redis_unavailable",
                exception=type(exc).__name__,
                update_id=fields.get("update_id"),
                version=fields.get("version"),
            )
            raise Reject(type(exc).__name__, requeue=True) from None
        except Exception as exc:
            failure = failure or exc
            outcomes.append("failed")
    if failure is not None:
        raise failure
    return outcomes


@dataclass(frozen=True)
class Result:
    """What happened to one attempt, as logged."""

    outcome: str
    reason: str | None = None
    status: int | None = None
    next_retry_s: float | None = None
    letter_id: str | None = None
    #: How long seQura took to answer, when a call was made.
    latency_ms: float | None = None
    #: Already counted for the metrics (with the attempt's last round trip).
    counted: bool = False


def process(member: Any, rt: Runtime) -> str:
    """Run one attempt of one update message (its text form) to its outcome, and log it."""
    started = time.perf_counter()
    try:
        message = UpdateMessage.from_json(member)
    except InvalidMessage as exc:
        letter_id = _park_undecodable(member, str(exc), rt)
        if isinstance(member, str):
            rt.schedule.done(member)
        log.error(
            "order_update",
            outcome="dead_lettered",
            reason=Reason.INVALID.value,
            letter_id=letter_id,
            duration_ms=_ms_since(started),
        )
        rt.metrics.observe("dead_lettered", Reason.INVALID.value, None, None)
        return "dead_lettered"
    bound = log.bind(
        merchant=message.merchant,
        order_ref=message.order_ref,
        update_id=message.update_id,
        version=message.version,
        attempt=message.attempt,
    )
    result = _attempt(message, member, rt)
    level = "info" if result.outcome in {"delivered", "superseded", "duplicate"} else "warning"
    getattr(bound, level)(
        "order_update",
        outcome=result.outcome,
        reason=result.reason,
        status=result.status,
        next_retry_s=result.next_retry_s,
        letter_id=result.letter_id,
        duration_ms=_ms_since(started),
    )
    if not result.counted:
        rt.metrics.observe(result.outcome, result.reason, result.status, result.latency_ms)
    return result.outcome


def _attempt(message: UpdateMessage, member: str, rt: Runtime) -> Result:
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
        return Result("duplicate", reason="already_dead_lettered")
    if claim is Claim.BUSY:
        deferred = replace(message, deferrals=message.deferrals + 1)
        rt.schedule.add(deferred.to_dict(), rt.clock() + LOCK_BUSY_DELAY_S)
        rt.schedule.done(member)
        return Result("deferred", reason="order_busy", next_retry_s=LOCK_BUSY_DELAY_S)
    if claim is not Claim.SEND:
        return Result(claim.value)
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
    message: UpdateMessage, result: Result, token: str, member: str, rt: Runtime
) -> None:
    """End a sent attempt (record a delivery, release the lock, drop the in-flight entry) and
    count it for the metrics, in one round trip."""
    delivered = message.version if result.outcome == "delivered" else None
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


def _send(message: UpdateMessage, rt: Runtime) -> Result:
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
    outcome = rt.client.update_order(
        account, message.order_ref, validated.body, version=message.version
    )
    return replace(_after_call(message, outcome, rt), latency_ms=outcome.latency_ms)


def _after_call(message: UpdateMessage, outcome: Outcome, rt: Runtime) -> Result:
    if outcome.kind is Kind.DELIVERED:
        # The ledger records the delivered version as the lock is released (_attempt).
        return Result("delivered", status=outcome.status)
    attempts = [*message.attempts, _attempt_record(outcome, rt.clock())]
    if outcome.kind in PARK_REASON:
        return _park(
            replace(message, attempts=attempts),
            PARK_REASON[outcome.kind],
            rt,
            status=outcome.status,
            errors=outcome.errors,
        )
    return _retry(replace(message, attempts=attempts), outcome, rt)


def _retry(message: UpdateMessage, outcome: Outcome, rt: Runtime) -> Result:
    now = rt.clock()
    s = rt.settings
    if exhausted(
        len(message.attempts),
        retrying_for_s=now - message.attempts[0]["at"],
        max_attempts=s.retry_max_attempts,
        min_window_s=s.retry_min_window_s,
    ):
        return _park(message, Reason.EXHAUSTED, rt, status=outcome.status, errors=outcome.errors)
    delay = compute_backoff(
        len(message.attempts),
        base=s.retry_base_s,
        cap=s.retry_cap_s,
        retry_after=outcome.retry_after_s,
    )
    message.attempts[-1]["delay_s"] = round(delay, 3)
    rt.schedule.add(message.to_dict(), now + delay)
    return Result(
        "retrying",
        reason=outcome.exception or "unavailable",
        status=outcome.status,
        next_retry_s=round(delay, 3),
    )


def _park(
    message: UpdateMessage,
    reason: Reason,
    rt: Runtime,
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
    return Result("dead_lettered", reason=reason.value, status=status, letter_id=letter_id)


def _fields(member: Any) -> dict[str, Any]:
    """The fields of a message's text, as far as it is a JSON object; else none."""
    try:
        raw = json.loads(member) if isinstance(member, str) else member
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


def _park_undecodable(member: Any, error: str, rt: Runtime) -> str:
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
            errors=[error],
            attempts=[],
            enqueued_at=float(enqueued_at) if isinstance(enqueued_at, int | float) else rt.clock(),
            payload=fields.get("body", fields or member),
        )
    )


def _attempt_record(outcome: Outcome, now: float) -> dict[str, Any]:
    return {
        "at": now,
        "status": outcome.status,
        "exception": outcome.exception,
        "errors": outcome.errors[:5],
        "latency_ms": round(outcome.latency_ms, 1),
    }


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
