"""What one call to seQura's Order Update API came to, and what that means for the update.

Pure decisions, in two steps: :func:`classify_response` (or :func:`classify_exception`) reads
an HTTP answer into a :class:`CallResult` of one :class:`Kind`; :func:`verdict` turns it into
the update's :class:`Outcome` and, for a dead letter, its :class:`Reason`. Together they are
the README's outcome table ("The outcome decides what happens next"):

=================================  ===============  ==========================
seQura answers                     outcome          reason
=================================  ===============  ==========================
2xx                                delivered
409                                dead_lettered    conflict
403 refusing an upsell             dead_lettered    conflict
400, 404, 422, other 4xx, 3xx      dead_lettered    rejected
401, 403 otherwise                 dead_lettered    unauthorized
408, 429, 5xx                      retrying         unavailable
time-out, connection error         retrying         the exception's class name
either, with retries exhausted     dead_lettered    exhausted
=================================  ===============  ==========================

seQura's own statement of the codes is in docs/SEQURA_API.md. Where it is silent these
functions decide as follows, and say why beside each rule:

- any other 2xx counts as delivered: seQura processed the request, and treating it as a
  failure would resend a state seQura already holds;
- a 403 whose errors (or, when it has none, whose body) mention an upsell (``upsell`` or
  ``upsold``, in any case: "This order cannot be upsold", "Upselling not allowed") is a
  conflict, not a credentials problem: seQura has refused upsells with a 403 as well as with
  the 409 of its documentation. Parked as ``unauthorized``, it would be replayed after a
  credentials fix and fail again; any other 403 stays ``unauthorized``;
- 408 (the server timed out reading the request) is retryable like a client-side timeout;
- 3xx and anything else unexpected is rejected: the client never follows redirects (a
  redirect could carry credentials elsewhere), so a human has to look at it;
- a ``Retry-After`` that is negative, not a number, not finite or not a date is ignored, and an
  HTTP date in the past means "now" (0 seconds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

#: Characters of a response body an outcome keeps (enough for seQura's error texts).
BODY_LIMIT = 2000
#: Characters kept of each entry of seQura's ``errors`` list.
ERROR_TEXT_LIMIT = 1000
#: Entries of seQura's ``errors`` list kept.
ERRORS_LIMIT = 50
#: Bodies longer than this are not parsed for ``errors`` (seQura's are a few hundred bytes).
PARSE_LIMIT = 1_000_000


class Kind(StrEnum):
    """The five ways a call can end, as the task acts on them."""

    DELIVERED = "delivered"
    CONFLICT = "conflict"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    RETRYABLE = "retryable"


class Outcome(StrEnum):
    """How one attempt of one update ended: the ``outcome`` of its ``order_update`` log event
    and of the ``cartsync_updates_total`` metric (the values are those strings)."""

    #: seQura took the update; the ledger records its version.
    DELIVERED = "delivered"
    #: Parked in the dead letters, with a :class:`Reason`.
    DEAD_LETTERED = "dead_lettered"
    #: Scheduled again after a backoff.
    RETRYING = "retrying"
    #: Dropped: the order already has a newer version, enqueued or delivered.
    SUPERSEDED = "superseded"
    #: Another worker is sending for the same order; the message waits a moment.
    DEFERRED = "deferred"
    #: A message delivered again after its update was already delivered or parked.
    DUPLICATE = "duplicate"
    #: Redis went away mid-attempt; the task goes back to the queue.
    INTERRUPTED = "interrupted"
    #: Cut short by an unexpected error (a bug, a message that breaks the worker): tried again
    #: after a backoff, and parked as ``invalid`` after ``CARTSYNC_WORKER_MAX_FAILURES`` such
    #: failures (``tasks.failures.after_failure``). Logged with the exception's type.
    FAILED = "failed"


class Reason(StrEnum):
    """Why an update was parked in the dead letters."""

    CONFLICT = "conflict"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"


#: Dead-letter reason of each kind of call that is final without retrying.
PARK_REASON: Mapping[Kind, Reason] = {
    Kind.CONFLICT: Reason.CONFLICT,
    Kind.REJECTED: Reason.REJECTED,
    Kind.UNAUTHORIZED: Reason.UNAUTHORIZED,
}

#: Words that, in a 403's errors, mean seQura refused an upsell (matched in lower case, as
#: parts of words: "upsell" covers "upselling" and "upsells").
UPSELL_WORDS = ("upsell", "upsold")

#: Reason logged for a retry when the call got an answer (a 429 or 5xx) rather than an
#: exception.
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Verdict:
    """What a call comes to for its update: the outcome, and why."""

    outcome: Outcome
    #: Why the update is parked in the dead letters, when it is.
    parked_as: Reason | None = None
    #: What failed, when the update is retried: the exception's name, or :data:`UNAVAILABLE`.
    retry_reason: str | None = None

    @property
    def reason(self) -> str | None:
        """The reason logged with the outcome (none for a delivery)."""
        return self.parked_as or self.retry_reason


def verdict(call: CallResult, *, out_of_retries: bool) -> Verdict:
    """The outcome table (module docstring): what ``call`` means for its update.

    ``out_of_retries`` says whether the update has had its attempts and its time
    (``worker.backoff.exhausted``); it matters only for a retryable call.
    """
    if call.kind is Kind.DELIVERED:
        return Verdict(Outcome.DELIVERED)
    if refuses_upsell(call):
        return Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.CONFLICT)
    if call.kind in PARK_REASON:
        return Verdict(Outcome.DEAD_LETTERED, parked_as=PARK_REASON[call.kind])
    if out_of_retries:
        return Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.EXHAUSTED)
    return Verdict(Outcome.RETRYING, retry_reason=call.exception or UNAVAILABLE)


def refuses_upsell(call: CallResult) -> bool:
    """Whether ``call`` is a 403 in which seQura says the order cannot be upsold (module
    docstring): its errors mention :data:`UPSELL_WORDS`, or its body does when it had no
    ``errors`` list."""
    if call.status != 403:
        return False
    texts = call.errors or [call.body]
    return any(word in text.lower() for text in texts for word in UPSELL_WORDS)


@dataclass(frozen=True)
class CallResult:
    """One call's result. Holds seQura's answer, never the request or its credentials."""

    kind: Kind
    status: int | None
    errors: list[str] = field(default_factory=list)
    retry_after_s: float | None = None
    latency_ms: float = 0.0
    body: str = ""
    exception: str | None = None

    @property
    def retryable(self) -> bool:
        return self.kind is Kind.RETRYABLE

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for dead letters and attempt histories."""
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


def kind_for_status(status: int) -> Kind:
    """The outcome kind of an HTTP status code (see the module docstring for edge cases)."""
    if 200 <= status <= 299:
        return Kind.DELIVERED
    if status == 409:
        return Kind.CONFLICT
    if status in (401, 403):
        return Kind.UNAUTHORIZED
    if status in (408, 429) or 500 <= status <= 599:
        return Kind.RETRYABLE
    return Kind.REJECTED


def classify_response(
    status: int,
    headers: Mapping[str, str],
    body: str,
    latency_ms: float,
    now: datetime | None = None,
) -> CallResult:
    """Decide what an HTTP answer means. ``now`` is for reading an HTTP-date ``Retry-After``."""
    return CallResult(
        kind=kind_for_status(status),
        status=status,
        errors=error_texts(body),
        retry_after_s=parse_retry_after(_header(headers, "Retry-After"), now),
        latency_ms=latency_ms,
        body=body[:BODY_LIMIT],
    )


def classify_exception(exc: BaseException, latency_ms: float) -> CallResult:
    """A call that got no answer (timeout, refused or dropped connection) is retryable.

    Only the exception's class name is kept: its message can carry the URL and its host.
    """
    return CallResult(
        kind=Kind.RETRYABLE,
        status=None,
        latency_ms=latency_ms,
        exception=type(exc).__name__,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


def error_texts(body: str) -> list[str]:
    """seQura's ``errors`` list as strings; objects are reduced to their ``title``.

    Anything that is not the documented ``{"errors": [...]}`` shape gives an empty list (the
    raw body is kept on the outcome for a human to read).
    """
    if not body or len(body) > PARSE_LIMIT:
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    raw = data.get("errors")
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list):
        items = raw
    elif isinstance(raw, dict):  # {"field": ["message", ...]}, as some APIs answer
        items = [
            f"{key}: {message}"
            for key, messages in raw.items()
            for message in (messages if isinstance(messages, list) else [messages])
        ]
    else:
        return []
    return [_text(item)[:ERROR_TEXT_LIMIT] for item in items[:ERRORS_LIMIT]]


def _text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "title" in item:
        return str(item["title"])
    return json.dumps(item, ensure_ascii=False, sort_keys=True)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # requests' headers are case-insensitive already; a plain dict is not.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
