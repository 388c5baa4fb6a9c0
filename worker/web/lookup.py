"""What happened to an update, or to an order, derived from what Redis already holds.

Nothing extra is recorded by the workers. An update's state follows from:

- its receipt (``worker/web/receipts.py``): the order it belongs to;
- the ledger's memory of its update id (``keys.update``): the version it was given;
- the dead-letter store's update-id index: parked, with the letter's reason and errors;
- the schedule and the in-flight set (``worker/schedule.py``), whose messages carry their
  attempts: waiting (pending), waiting after failed attempts (retrying, with the next try's
  time), or being sent right now (in flight);
- the order's ledger (versions enqueued and delivered): delivered, or superseded.

Finding a message in the schedule or the in-flight set is a ``ZSCAN`` matching the start of
its JSON, so a lookup costs time in proportion to the backlog (about a millisecond per ten
thousand waiting messages). The one thing this cannot tell apart: an update whose version
was delivered and then overtaken by a newer delivered version shows as ``superseded``
(the ledger keeps only the newest delivered version).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import redis

from cartsync.tasks.message import UpdateMessage
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore, Filters
from cartsync.worker.errors import DeadLetterNotFound, InvalidMessage
from cartsync.worker.ledger import Ledger, stored_version
from cartsync.worker.redistext import text
from cartsync.worker.web.receipts import Receipt, Receipts

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
    def __init__(self, client: redis.Redis, prefix: str, receipts: Receipts) -> None:
        self.client = client
        self.prefix = prefix
        self.receipts = receipts
        self.ledger = Ledger(client, prefix)
        self.letters = DeadLetterStore(client, prefix)

    def waiting(self, pattern: str) -> Iterator[Waiting]:
        """Messages matching ``pattern`` in the schedule, then in the in-flight set."""
        for key, in_flight in (
            (keys.schedule(self.prefix), False),
            (keys.inflight(self.prefix), True),
        ):
            for member, score in self.client.zscan_iter(key, match=pattern, count=SCAN_COUNT):
                try:
                    message = UpdateMessage.from_json(text(member))
                except InvalidMessage:
                    continue
                yield Waiting(message, None if in_flight else float(score), in_flight)

    def update(self, update_id: str) -> tuple[Receipt, UpdateView] | None:
        """The receipt and state of an update the HTTP API accepted; None when unknown."""
        receipt = self.receipts.get(update_id)
        if receipt is None:
            return None
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.update(self.prefix, update_id))
        pipe.hmget(
            keys.order(self.prefix, receipt.merchant, receipt.order_ref), ["enqueued", "delivered"]
        )
        pipe.hget(self.letters.by_update_key, update_id)
        remembered, (enqueued, delivered), letter_id = pipe.execute()
        enqueued, delivered = stored_version(enqueued), stored_version(delivered)
        if remembered is None:
            if receipt.superseded_version is None:
                return None  # never accepted (the request failed before), or forgotten
            return receipt, UpdateView(
                update_id, receipt.merchant, receipt.order_ref, 0, State.SUPERSEDED,
                receipt.accepted_at, superseded_by=receipt.superseded_version,
            )  # fmt: skip
        version = stored_version(remembered)
        letter = None
        if letter_id is not None:
            try:
                letter = self.letters.get(text(letter_id))
            except DeadLetterNotFound:  # removed in between (replayed, dropped)
                letter = None
        waiting = None
        if letter is None and version >= max(enqueued, delivered) and version != delivered:
            waiting = next(self.waiting(update_pattern(update_id)), None)
        state, by = decide(version, enqueued, delivered, letter=letter, waiting=waiting)
        return receipt, UpdateView(
            update_id=update_id,
            merchant=receipt.merchant,
            order_ref=receipt.order_ref,
            version=version,
            status=state,
            accepted_at=receipt.accepted_at,
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

    def order(self, merchant: str, order_ref: str) -> dict[str, Any]:
        """An order's versions, its waiting updates and its open dead letters."""
        enqueued, delivered = self.ledger.versions(merchant, order_ref)
        pending = []
        for found in self.waiting(order_pattern(merchant, order_ref)):
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
