"""What happened to an update, or to an order, from what Redis holds.

An update's state comes first from its outcome record (``worker/outcome_records.py``), which
a worker writes whenever it records the update's outcome: delivered (when, seQura's status),
retrying (attempts, next try), superseded (by which version), dead-lettered (the letter).
Before a worker has recorded anything, or for what the record cannot say, it follows from:

- its receipt (``worker/web/receipts.py``), for an update the HTTP API accepted: the order
  it belongs to, and the version that superseded it at the door;
- the ledger's memory of its update id (``keys.update``): the version it was given;
- the dead-letter store's update-id index: parked, with the letter's reason and errors;
- the schedule and the in-flight set (``worker/schedule.py``), whose messages carry their
  order and attempts: waiting (pending), waiting after failed attempts (retrying, with the
  next try's time), or being sent right now (in flight). This is how an update enqueued
  through the Python API or the CLI, which has no receipt, is found before its first outcome;
- the order's ledger (versions enqueued and delivered).

Finding a message in the schedule or the in-flight set is a ``ZSCAN`` matching the start of
its JSON, so such a lookup costs time in proportion to the backlog (about a millisecond per
ten thousand waiting messages); an update with an outcome record costs one round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import redis

from cartsync.tasks.message import UpdateMessage
from cartsync.worker import keys, outcome_records
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore, Filters
from cartsync.worker.errors import DeadLetterNotFound, InvalidMessage
from cartsync.worker.ledger import Ledger, stored_version
from cartsync.worker.outcome_records import OutcomeRecord
from cartsync.worker.redistext import text
from cartsync.worker.web.receipts import Receipt

#: Schedule entries one ZSCAN step looks at.
SCAN_COUNT = 1000
#: Dead letters of one order listed at most.
ORDER_LETTERS_SHOWN = 100
#: Characters of a glob pattern that must be escaped to match themselves.
_GLOB_SPECIAL = "\\*?[]"


class State(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Waiting:
    """A message of the update found in the schedule (``due`` set) or in flight."""

    message: UpdateMessage
    due: float | None
    in_flight: bool


@dataclass(frozen=True)
class Letter:
    """What a lookup shows of a dead letter (never the payload)."""

    id: str
    update_id: str
    version: int | None
    reason: str
    status: int | None
    errors: list[str]
    dead_at: float

    @classmethod
    def of(cls, letter: DeadLetter) -> Letter:
        return cls(
            letter.id, letter.update_id, letter.version, letter.reason, letter.status,
            list(letter.errors), letter.dead_at,
        )  # fmt: skip


@dataclass(frozen=True)
class UpdateView:
    update_id: str
    merchant: str
    order_ref: str
    version: int
    status: State
    accepted_at: float
    attempts: int = 0
    next_try_at: float | None = None
    in_flight: bool = False
    superseded_by: int | None = None
    dead_letter: Letter | None = None
    #: When the worker recorded the outcome (delivered, retrying...), if one has.
    outcome_at: float | None = None
    #: seQura's HTTP status of the update's last call, when one answered.
    sequra_status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    version: int,
    enqueued: int,
    delivered: int,
    *,
    letter: DeadLetter | None,
    waiting: Waiting | None,
) -> tuple[State, int | None]:
    """The state of an update of ``version``, and the version that superseded it (if any)."""
    newest = max(enqueued, delivered)
    if letter is not None:
        return State.DEAD_LETTERED, None
    if version == delivered:
        return State.DELIVERED, None
    if version < newest:
        return State.SUPERSEDED, newest  # a worker will drop a message still waiting
    if waiting is not None and waiting.message.attempts:
        return State.RETRYING, None
    return State.PENDING, None


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


def _json_text(value: str) -> str:
    """``value`` as it appears inside a message's JSON (``worker.schedule.member_of``)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def update_pattern(update_id: str) -> str:
    """A ZSCAN pattern matching the messages of one update (``update_id`` leads the JSON)."""
    return '{"update_id":"' + glob_escape(_json_text(update_id)) + '",*'


def order_pattern(merchant: str, order_ref: str) -> str:
    """A ZSCAN pattern matching the messages of one order."""
    return (
        '{"update_id":"*","merchant":"'
        + glob_escape(_json_text(merchant))
        + '","order_ref":"'
        + glob_escape(_json_text(order_ref))
        + '","version":*'
    )


class Lookup:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.ledger = Ledger(client, prefix)
        self.letters = DeadLetterStore(client, prefix)

    def waiting(self, pattern: str, deadline: float | None = None) -> Iterator[Waiting]:
        """Messages matching ``pattern`` in the schedule, then in the in-flight set.

        A scan takes time in proportion to the backlog: past ``deadline``
        (``time.monotonic()``), it stops with ``redis.TimeoutError`` (the request's 503).
        """
        for key, in_flight in (
            (keys.schedule(self.prefix), False),
            (keys.inflight(self.prefix), True),
        ):
            cursor = None
            while cursor != 0:
                cursor, found = self.client.zscan(key, cursor or 0, match=pattern, count=SCAN_COUNT)
                if cursor != 0 and deadline is not None and time.monotonic() > deadline:
                    raise redis.TimeoutError("the lookup took longer than the request time limit")
                for member, score in found:
                    try:
                        message = UpdateMessage.from_json(text(member))
                    except InvalidMessage:
                        continue
                    yield Waiting(message, None if in_flight else float(score), in_flight)

    def update(self, update_id: str, deadline: float | None = None) -> UpdateView | None:
        """The state of an update, however it was enqueued; None when unknown."""
        pipe = self.client.pipeline(transaction=False)
        records = outcome_records.read_into(pipe, self.prefix, update_id)
        pipe.hgetall(keys.receipt(self.prefix, update_id))
        pipe.get(keys.update(self.prefix, update_id))
        pipe.hget(self.letters.by_update_key, update_id)
        replies = pipe.execute()
        raw_receipt, remembered, letter_id = replies[records:]
        record = outcome_records.from_replies(replies[:records])
        receipt = Receipt.from_hash(raw_receipt)
        letter = self._letter(letter_id)
        if record is not None:
            return _recorded(update_id, record, receipt, letter)
        if remembered is None:
            if receipt is None or receipt.superseded_version is None:
                return None  # never accepted (the request failed before), or forgotten
            return UpdateView(
                update_id, receipt.merchant, receipt.order_ref, 0, State.SUPERSEDED,
                receipt.accepted_at, superseded_by=receipt.superseded_version,
            )  # fmt: skip
        version = stored_version(remembered)
        waiting = None
        if letter is not None:
            merchant, order_ref, accepted_at = letter.merchant, letter.order_ref, letter.enqueued_at
        elif receipt is not None:
            merchant, order_ref, accepted_at = (
                receipt.merchant,
                receipt.order_ref,
                receipt.accepted_at,
            )
        else:  # no receipt (the Python API, the CLI): its message says which order
            waiting = self._find_waiting(update_id, deadline)
            if waiting is None:
                # A worker may have finished it between the first read and the scans: its
                # record is written no later than its message leaves the in-flight set.
                record = self._record(update_id)
                return None if record is None else _recorded(update_id, record, None, None)
            message = waiting.message
            merchant, order_ref, accepted_at = (
                message.merchant,
                message.order_ref,
                message.enqueued_at,
            )
        enqueued, delivered = self.ledger.versions(merchant, order_ref)
        if waiting is None and letter is None and version >= max(enqueued, delivered):
            waiting = next(self.waiting(update_pattern(update_id), deadline), None)
        state, by = decide(version, enqueued, delivered, letter=letter, waiting=waiting)
        return UpdateView(
            update_id=update_id,
            merchant=merchant,
            order_ref=order_ref,
            version=version,
            status=state,
            accepted_at=accepted_at,
            attempts=len(waiting.message.attempts)
            if waiting
            else len(letter.attempts)
            if letter
            else 0,
            next_try_at=waiting.due if waiting else None,
            in_flight=waiting.in_flight if waiting else False,
            superseded_by=by,
            dead_letter=Letter.of(letter) if letter else None,
        )

    def _record(self, update_id: str) -> OutcomeRecord | None:
        pipe = self.client.pipeline(transaction=False)
        outcome_records.read_into(pipe, self.prefix, update_id)
        return outcome_records.from_replies(pipe.execute())

    def _find_waiting(self, update_id: str, deadline: float | None) -> Waiting | None:
        # A message handed off from the schedule to the in-flight set between the two scans
        # is in neither: a second look finds it.
        for _ in range(2):
            found = next(self.waiting(update_pattern(update_id), deadline), None)
            if found is not None:
                return found
        return None

    def _letter(self, letter_id: bytes | str | None) -> DeadLetter | None:
        if letter_id is None:
            return None
        try:
            return self.letters.get(text(letter_id))
        except DeadLetterNotFound:  # removed in between (replayed, dropped)
            return None

    def order(self, merchant: str, order_ref: str, deadline: float | None = None) -> dict[str, Any]:
        """An order's versions, its waiting updates and its open dead letters."""
        enqueued, delivered = self.ledger.versions(merchant, order_ref)
        pending = []
        for found in self.waiting(order_pattern(merchant, order_ref), deadline):
            message = found.message
            if message.merchant != merchant or message.order_ref != order_ref:
                continue
            state, by = decide(message.version, enqueued, delivered, letter=None, waiting=found)
            pending.append(
                {
                    "update_id": message.update_id,
                    "version": message.version,
                    "status": str(state),
                    "attempts": len(message.attempts),
                    "next_try_at": found.due,
                    "in_flight": found.in_flight,
                    "superseded_by": by,
                }
            )
        pending.sort(key=lambda entry: (entry["version"], entry["update_id"]))
        letters = []
        for stored in self.letters.scan(Filters(merchant=merchant, order_ref=order_ref)):
            letters.append(asdict(Letter.of(stored.letter)))
            if len(letters) >= ORDER_LETTERS_SHOWN:
                break
        return {
            "merchant": merchant,
            "order_ref": order_ref,
            "enqueued_version": enqueued,
            "delivered_version": delivered,
            "pending": pending,
            "dead_letters": letters,
        }


def _recorded(
    update_id: str, record: OutcomeRecord, receipt: Receipt | None, letter: DeadLetter | None
) -> UpdateView:
    """An update's view from its outcome record (and its letter, while that is parked)."""
    shown = None
    if record.outcome == State.DEAD_LETTERED:
        if letter is not None:
            shown = Letter.of(letter)
        else:  # replayed or dropped since: what the record kept of it
            shown = Letter(
                record.letter_id or "", update_id, record.version, record.reason or "",
                record.status, [], record.at,
            )  # fmt: skip
    return UpdateView(
        update_id=update_id,
        merchant=record.merchant,
        order_ref=record.order_ref,
        version=record.version,
        status=State(record.outcome),
        accepted_at=receipt.accepted_at if receipt is not None else record.enqueued_at,
        attempts=record.attempts,
        next_try_at=record.next_try_at if record.outcome == State.RETRYING else None,
        superseded_by=record.superseded_by,
        dead_letter=shown,
        outcome_at=record.at,
        sequra_status=record.status,
    )
