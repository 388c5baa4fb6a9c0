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
show it (:func:`run_batch`, with ``tasks/failures.py``).

A use case: importing this module loads no settings and builds no app. The task is a shared
task that the worker's app registers (``worker.celeryapp``), and it reaches its process's
collaborators through the app's task class (``worker.runtime``), typed as
:class:`Services` (``tasks/services.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import redis
from celery import shared_task
from celery.exceptions import Reject

from cartsync.config.logging import get_logger
from cartsync.tasks.failures import (
    after_failure,
    fields_of,
    park_letter,
    park_undecodable,
    text_field,
    version_field,
)
from cartsync.tasks.message import TASK_NAME, UpdateMessage
from cartsync.tasks.services import Services
from cartsync.tasks.validation import validate_update
from cartsync.worker.backoff import compute_backoff, exhausted
from cartsync.worker.clock import logged_ms_since
from cartsync.worker.errors import InvalidMessage, InvalidUpdate, UnknownMerchant
from cartsync.worker.ledger import Claim, ClaimRequest, Finish
from cartsync.worker.metrics import log_entry
from cartsync.worker.outcome_records import after_attempt, superseded_head, ttl_ms
from cartsync.worker.outcomes import CallResult, Outcome, Reason, verdict

log = get_logger("cartsync.order_update")

#: Seconds to wait before trying again when another worker holds the order's lock.
LOCK_BUSY_DELAY_S = 1.0

#: Share of the broker's visibility timeout a task may spend on its batch. What it has not
#: started by then goes back to the schedule, so that no task outlives the visibility timeout
#: (which would have the broker hand the same task to a second worker).
BATCH_TIME_SHARE = 0.5

#: Outcomes logged at info level; the others are warnings (something to look at).
QUIET_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.SUPERSEDED, Outcome.DUPLICATE})


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
    steps = Steps(rt)
    for n, member in enumerate(members):
        if n and time.monotonic() > deadline:
            rest = [m for m in members[n:] if isinstance(m, str)]
            rt.schedule.give_back(rest, rt.clock())
            log.warning("order_updates.handed_back", count=len(rest))
            break
        try:
            outcomes.append(process(member, rt, steps))
        except REDIS_DOWN as exc:
            # Redis went away mid-attempt, so the attempt's outcome may be unrecorded (a
            # retry not scheduled, a delivery not in the ledger). Acknowledging the task
            # would lose its updates (late acks acknowledge failures too): hand it back
            # instead. If Redis is still down, handing back fails as well and the task stays
            # unacknowledged until the visibility timeout returns it. Running the batch
            # again is harmless: the ledger ends the updates already done as duplicates.
            fields = fields_of(member)
            log.warning(
                "order_update",
                outcome=Outcome.INTERRUPTED,
                reason="redis_unavailable",
                exception=type(exc).__name__,
                update_id=text_field(fields, "update_id"),
                version=version_field(fields),
            )
            raise Reject(type(exc).__name__, requeue=True) from None
        except Exception as exc:
            outcomes.append(after_failure(member, exc, rt))
    try:
        steps.close()
    except REDIS_DOWN as exc:
        # The last update's finish is unrecorded: the same as Redis going away mid-attempt.
        log.warning("order_update", outcome=Outcome.INTERRUPTED, reason="redis_unavailable",
                    exception=type(exc).__name__)  # fmt: skip
        raise Reject(type(exc).__name__, requeue=True) from None
    except Exception as exc:
        # Unrecorded, the finished messages stay in flight and come back; their claims end
        # them (duplicates) or send them again. Nothing goes to Celery (run_batch says why).
        log.error("order_updates.unrecorded", exception=type(exc).__name__)
    return outcomes


@dataclass
class Sent:
    """An attempt that was sent, whose finish waits for the task's next step."""

    message: UpdateMessage
    member: str
    token: str
    result: Result
    #: The attempt's event logger and start, to log it once its finish is recorded.
    bound: Any = None
    started: float = 0.0


class Steps:
    """A task's ledger steps (``Ledger.step``): the finish of an update sent rides with the
    claim of the task's next update, and the in-flight entries of the messages the task has
    finished all go with its last step.

    Until then an update's outcome is decided but not recorded, as it was between sending
    and finishing: a worker killed there leaves the order locked until the lock's TTL and the
    message in flight, and the update is tried again (a send of the same version). A finished
    message whose in-flight entry is still there when the worker dies comes back as well, and
    its claim ends it as a duplicate.
    """

    def __init__(self, rt: Services) -> None:
        self.rt = rt
        self.sent: Sent | None = None
        self.finished: list[str] = []

    def claim(self, message: UpdateMessage) -> tuple[Claim, str]:
        """Claim ``message``'s update, with the finish waiting (if any)."""
        rt = self.rt
        request = ClaimRequest(
            message.merchant, message.order_ref, message.update_id, message.version,
            parked_index=rt.dead_letters.by_update_key, ttl_s=rt.settings.lock_ttl_s,
            superseded_record=superseded_head(
                at=rt.clock(), merchant=message.merchant, order_ref=message.order_ref,
                version=message.version, enqueued_at=message.enqueued_at,
                attempts=len(message.attempts),
            ),
            record_ttl_ms=ttl_ms(rt.settings.idempotency_ttl_s), count=True,
            orders_flagged=rt.dead_letters.orders_flagged(rt.clock()),
        )  # fmt: skip
        found = rt.ledger.step(self._finish(), request)
        self._recorded()
        return found

    def send_later(self, sent: Sent) -> None:
        """Keep ``sent``'s finish for the next step (there is none waiting: a claim took it)."""
        self.sent = sent

    def close(self) -> None:
        """The task's last step: the finish waiting, and every finished message's in-flight
        entry."""
        finish = self._finish()
        if finish is None and not self.finished:
            return
        drop = [*self.finished, *([self.sent.member] if self.sent else [])]
        self.rt.ledger.step(finish, drop=drop)
        self._recorded()
        self.finished = []

    def _finish(self) -> Finish | None:
        """The finish waiting, if any. It stays waiting until a step has recorded it
        (:meth:`_recorded`): a step that fails leaves it for the next."""
        sent = self.sent
        if sent is None:
            return None
        rt, message, result = self.rt, sent.message, sent.result
        record = after_attempt(
            result.outcome, at=rt.clock(), merchant=message.merchant, order_ref=message.order_ref,
            version=message.version, enqueued_at=message.enqueued_at,
            attempts=len(message.attempts) + (result.latency_ms is not None),
            status=result.status, next_retry_s=result.next_retry_s, letter_id=result.letter_id,
            reason=result.reason,
        )  # fmt: skip
        count = log_entry(rt.metrics.increments(
            result.outcome, result.reason, result.status, result.latency_ms,
            merchant=message.merchant, enqueued_at=message.enqueued_at,
        ))  # fmt: skip
        return Finish(
            message.merchant, message.order_ref, message.update_id, sent.token,
            delivered=message.version if result.outcome is Outcome.DELIVERED else None,
            record="" if record is None else record.to_json(),
            record_ttl_ms=ttl_ms(rt.settings.idempotency_ttl_s), count=count,
        )  # fmt: skip

    def _recorded(self) -> None:
        sent, self.sent = self.sent, None
        if sent is not None:
            self.finished.append(sent.member)
            _log_result(sent.bound, sent.result, sent.started)


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


def process(member: Any, rt: Services, steps: Steps | None = None) -> Outcome:
    """Run one attempt of one update message (its text form) to its outcome, and log it (an
    attempt sent: once its finish is recorded, with ``steps``' next step; without ``steps``,
    before this returns)."""
    if steps is None:
        own = Steps(rt)
        outcome = process(member, rt, own)
        own.close()
        return outcome
    started = time.perf_counter()
    try:
        message = UpdateMessage.from_json(member)
    except InvalidMessage as exc:
        letter_id = park_undecodable(member, [str(exc)], rt)
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
    result = _attempt(message, member, rt, steps)
    if isinstance(result, Sent):
        steps.send_later(replace(result, bound=bound, started=started))
        return result.result.outcome
    _log_result(bound, result, started)
    if not result.counted:
        rt.metrics.observe(result.outcome, result.reason, result.status, result.latency_ms)
    return result.outcome


def _log_result(bound: Any, result: Result, started: float) -> None:
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


def _attempt(message: UpdateMessage, member: str, rt: Services, steps: Steps) -> Result | Sent:
    # ``member`` is the message's entry in the in-flight set, dropped once the attempt's
    # outcome is recorded (with the task's last step, ``Steps``): until then a lost message
    # comes back. One round trip finishes the update sent before (if any) and claims this one:
    # the dead-letter check, the ledger's rule of ``decide`` and the order's lock, as one
    # step. Superseded here, the claim writes the update's outcome record in the same step,
    # and counts what it decides.
    claim, token = steps.claim(message)
    if claim is Claim.PARKED:
        # A redelivered message whose update was parked already.
        steps.finished.append(member)
        return Result(Outcome.DUPLICATE, reason="already_dead_lettered", counted=True)
    if claim is Claim.BUSY:
        deferred = replace(message, deferrals=message.deferrals + 1)
        rt.schedule.add(deferred.to_dict(), rt.clock() + LOCK_BUSY_DELAY_S)
        steps.finished.append(member)
        return Result(Outcome.DEFERRED, reason="order_busy", next_retry_s=LOCK_BUSY_DELAY_S)
    if claim is not Claim.SEND:
        # SUPERSEDED or DUPLICATE: the ledger's answer is the outcome of the same name.
        steps.finished.append(member)
        return Result(Outcome(claim.value), counted=True)
    try:
        result = _send(message, rt)
    except BaseException:
        # Cut short before its outcome was recorded: free the order, but leave the message in
        # flight so that it comes back.
        rt.ledger.finish(message.merchant, message.order_ref, token, delivered=None)
        raise
    return Sent(message, member, token, replace(result, counted=True))


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
    letter_id = park_letter(message, reason, rt, status=status, errors=errors)
    return Result(Outcome.DEAD_LETTERED, reason=reason, status=status, letter_id=letter_id)


def _attempt_record(call: CallResult, now: float) -> dict[str, Any]:
    return {
        "at": now,
        "status": call.status,
        "exception": call.exception,
        "errors": call.errors[:5],
        "latency_ms": round(call.latency_ms, 1),
    }
