"""Intake: one update through the door, the way both APIs take it.

The order of the steps is what gives the guarantees:

1. the body names its merchant and order (else validation names what is missing);
2. the caller may send for that merchant (else 403), and cartsync has an account for it;
3. the receipt is written (idempotency key reused for another request: refused);
4. the producer validates, versions and stores the update in one atomic Redis step
   (``Producer.enqueue``); only then is the answer 202.

Redis unreachable at any step: 503, and nothing was accepted (a receipt alone describes no
update, see ``worker/web/receipts.py``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from cartsync.tasks.producer import Producer, Receipt, order_identity
from cartsync.tasks.schemas.paths import ROOT
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import BrokerUnavailable, InvalidUpdate, UnknownMerchant
from cartsync.worker.web.receipts import Opened, Receipts, fingerprint, keyed_update_id
from cartsync.worker.web.receipts import Receipt as Stored

#: Errors that mean Redis did not answer.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError, BrokerUnavailable)

NO_ACCOUNT = "No seQura account is configured for this merchant."
NOT_YOURS = "This token may not send updates for this merchant."
KEY_REUSED = "Already used for a different update; use a new key for a new update."
NO_IDENTITY = "The body must name the merchant and the order."


@dataclass(frozen=True)
class Outcome:
    """The answer to one update: an HTTP status and what goes with it."""

    code: int
    receipt: Receipt | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: True when an earlier request with the same update id had enqueued it already.
    replayed: bool = False
    #: Seconds the producer's enqueue took (validation and the Redis step), when it ran.
    enqueue_s: float | None = None

    def answer(self) -> dict[str, Any]:
        """The native API's JSON for this outcome."""
        if self.receipt is None:
            return {"errors": self.errors}
        body: dict[str, Any] = {
            "update_id": self.receipt.update_id,
            "version": self.receipt.version,
            # An idempotent replay answers what the first request was answered.
            "status": "enqueued" if self.replayed else self.receipt.status,
        }
        if self.receipt.warnings:
            body["warnings"] = self.receipt.warnings
        return body


class Intake:
    """Takes updates in; shared by the request threads of one process."""

    def __init__(self, producer: Producer, receipts: Receipts) -> None:
        self.producer = producer
        self.receipts = receipts

    def submit(
        self,
        body: Any,
        *,
        scope: str,
        key: str | None = None,
        version: int | None = None,
        may_send_for: Callable[[str], bool] = lambda merchant: True,
    ) -> Outcome:
        """Take one decoded body in. ``scope`` qualifies ``key`` (the producer, the merchant)."""
        identity = order_identity(body)
        if identity is None:
            return Outcome(422, errors=_identity_errors(body))
        merchant, order_ref = identity
        if not may_send_for(merchant):
            return Outcome(403, errors={"order.merchant.id": [NOT_YOURS]})
        try:
            self.producer.merchants.get(merchant)
        except UnknownMerchant:
            return Outcome(422, errors={"order.merchant.id": [NO_ACCOUNT]})
        update_id = keyed_update_id(scope, key) if key else uuid.uuid4().hex
        stored = Stored(merchant, order_ref, fingerprint(body, version), time.time())
        try:
            opened = self.receipts.open(update_id, stored)
        except REDIS_DOWN:
            return Outcome(503, errors={ROOT: [unavailable()]})
        if opened is Opened.CONFLICT:
            return Outcome(422, errors={"Idempotency-Key": [KEY_REUSED]})
        started = time.perf_counter()
        try:
            receipt = self.producer.enqueue(body, version=version, update_id=update_id)
        except InvalidUpdate as exc:
            if opened is Opened.NEW:
                self._forget(update_id)
            return Outcome(422, errors=exc.errors)
        except UnknownMerchant:
            return Outcome(422, errors={"order.merchant.id": [NO_ACCOUNT]})
        except REDIS_DOWN:
            return Outcome(503, errors={ROOT: [unavailable()]})
        elapsed = time.perf_counter() - started
        if receipt.status == "superseded":
            # The answer stands without the note; a lookup then says the update is unknown.
            with contextlib.suppress(*REDIS_DOWN):
                self.receipts.note_superseded(update_id, stored, receipt.version)
        return Outcome(
            202, receipt=receipt, replayed=receipt.status == "duplicate", enqueue_s=elapsed
        )

    def _forget(self, update_id: str) -> None:
        # A receipt left behind without an accepted update describes nothing.
        with contextlib.suppress(*REDIS_DOWN):
            self.receipts.discard(update_id)


def unavailable() -> str:
    return "Redis, where updates are kept, does not answer; nothing was enqueued. Retry later."


def _identity_errors(body: Any) -> dict[str, list[str]]:
    """What validation says about a body that names no merchant or order."""
    try:
        validate_update(body)
    except InvalidUpdate as exc:
        return exc.errors
    return {ROOT: [NO_IDENTITY]}
