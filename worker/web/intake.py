"""Intake: updates through the door, the way both APIs take them.

The order of the steps is what gives the guarantees:

1. the body names its merchant and order (else validation names what is missing);
2. the caller may send for that merchant (else 403), and cartsync has an account for it;
3. the body is validated and made into its message, in this process, as the producer does
   (``tasks/producer.py``): nothing has touched Redis yet, so a refused body leaves nothing;
4. one atomic step in Redis per update (``worker/lua/ledger_accept.lua`` with its receipt
   key) checks the idempotency key's receipt, writes it, versions the update and stores its
   message; only then is the answer 202. A batch sends all its items' steps in one pipeline:
   one round trip for the lot, each item still atomic on its own.

Redis unreachable: 503, and no update was half-written (each step is one script). An item
whose step ran before the connection broke is in Redis and will be delivered; sending the
request again with the same idempotency key answers it as a replay.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.tasks.message import UpdateMessage, version_problem
from cartsync.tasks.producer import (
    FULL,
    Receipt,
    logged_receipt,
    order_identity,
    require_identity,
    with_platform_defaults,
)
from cartsync.tasks.schemas.paths import ROOT
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import (
    BrokerUnavailable,
    InvalidUpdate,
    ReplicasUnavailable,
    UnknownMerchant,
)
from cartsync.worker.ledger import Ledger, stored_version
from cartsync.worker.redisconn import execute_confirmed
from cartsync.worker.redistext import text
from cartsync.worker.web.receipts import Receipt as Stored
from cartsync.worker.web.receipts import fingerprint, keyed_update_id

#: Errors that mean Redis did not answer.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError, BrokerUnavailable)

#: The accept script's status when the update id's receipt is another request's.
CONFLICT = "conflict"

NO_ACCOUNT = "No seQura account is configured for this merchant."
NOT_YOURS = "This token may not send updates for this merchant."
KEY_REUSED = "Already used for a different update; use a new key for a new update."
NO_IDENTITY = "The body must name the merchant and the order."
LATE = "The request took longer than its time limit; nothing was enqueued. Retry later."


@dataclass(frozen=True)
class Outcome:
    """The answer to one update: an HTTP status and what goes with it."""

    code: int
    receipt: Receipt | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: True when an earlier request with the same update id had enqueued it already.
    replayed: bool = False
    #: Seconds the enqueue took (validation and the Redis step), when it ran.
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


@dataclass(frozen=True)
class Item:
    """One update of a request, as the HTTP API hands it in."""

    body: Any
    #: The idempotency key's scope (the producer, the merchant) and the key.
    scope: str
    key: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class Ready:
    """An update validated and made into its message, waiting for its Redis step."""

    update_id: str
    merchant: str
    order_ref: str
    version: int | None
    message_prefix: str
    message_suffix: str
    receipt: Stored
    warnings: dict[str, list[str]]
    #: Seconds its validation took.
    checked_s: float


class Intake:
    """Takes updates in; shared by the request threads of one process."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        merchants: MerchantDirectory,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.merchants = merchants
        self.prefix = settings.key_prefix
        self.remember_ms = int(settings.idempotency_ttl_s * 1000)
        self.clock = clock
        self.ledger = Ledger(client, self.prefix)

    def submit(
        self,
        body: Any,
        *,
        scope: str,
        key: str | None = None,
        version: int | None = None,
        may_send_for: Callable[[str], bool] = lambda merchant: True,
        deadline: float | None = None,
    ) -> Outcome:
        """Take one decoded body in. ``scope`` qualifies ``key`` (the producer, the merchant);
        ``deadline`` (``time.monotonic()``): past it, nothing is sent to Redis (503)."""
        return self.submit_many(
            [Item(body, scope, key, version)], may_send_for=may_send_for, deadline=deadline
        )[0]

    def submit_many(
        self,
        items: Sequence[Item],
        *,
        may_send_for: Callable[[str], bool] = lambda merchant: True,
        deadline: float | None = None,
    ) -> list[Outcome]:
        """Take many decoded bodies in, each answered on its own, with one Redis round trip."""
        outcomes: list[Outcome | Ready] = [self.prepare(item, may_send_for) for item in items]
        ready = [(n, r) for n, r in enumerate(outcomes) if isinstance(r, Ready)]
        if ready:
            for (n, _), stored in zip(
                ready, self.store([r for _, r in ready], deadline), strict=True
            ):
                outcomes[n] = stored
        return [o for o in outcomes if isinstance(o, Outcome)]

    def prepare(self, item: Item, may_send_for: Callable[[str], bool]) -> Outcome | Ready:
        """Check and validate one update, as ``Producer.enqueue`` does before its Redis step."""
        started = time.perf_counter()
        body = item.body
        identity = order_identity(body)
        if identity is None:
            return Outcome(422, errors=_identity_errors(body))
        merchant, order_ref = identity
        if not may_send_for(merchant):
            return Outcome(403, errors={"order.merchant.id": [NOT_YOURS]})
        try:
            options = self.merchants.get(merchant).options
        except UnknownMerchant:
            return Outcome(422, errors={"order.merchant.id": [NO_ACCOUNT]})
        problem = None if item.version is None else version_problem(item.version)
        if problem is not None:
            return Outcome(422, errors={"version": [problem]})
        try:
            validated = validate_update(
                with_platform_defaults(body, self.settings),
                options=options,
                strict=self.settings.strict,
            )
            merchant, order_ref = require_identity(validated.body)
        except InvalidUpdate as exc:
            return Outcome(422, errors=exc.errors)
        update_id = keyed_update_id(item.scope, item.key) if item.key else uuid.uuid4().hex
        now = self.clock()
        message = UpdateMessage(
            update_id=update_id,
            merchant=merchant,
            order_ref=order_ref,
            version=item.version or 0,
            body=validated.body,
            enqueued_at=now,
        )
        prefix, suffix = message.split_at_version()
        return Ready(
            update_id, merchant, order_ref, item.version, prefix, suffix,
            Stored(merchant, order_ref, fingerprint(body, item.version), now),
            validated.warnings, time.perf_counter() - started,
        )  # fmt: skip

    def store(self, ready: Sequence[Ready], deadline: float | None) -> list[Outcome]:
        """Run the accept step of every update in one pipeline; 503 for each when Redis does
        not answer or the deadline has passed before anything was sent."""
        if deadline is not None and time.monotonic() >= deadline:
            return [Outcome(503, errors={ROOT: [LATE]}) for _ in ready]
        started = time.perf_counter()
        try:
            try:
                answers = self._run(ready)
            except redis.exceptions.NoScriptError:
                # Redis restarted and forgot the script: no step ran (they are all this one).
                self.ledger.load_accept()
                answers = self._run(ready)
        except ReplicasUnavailable as exc:
            return [Outcome(503, errors={ROOT: [str(exc)]}) for _ in ready]
        except REDIS_DOWN:
            return [Outcome(503, errors={ROOT: [unavailable()]}) for _ in ready]
        took = time.perf_counter() - started
        return [
            self._outcome(r, raw, r.checked_s + took) for r, raw in zip(ready, answers, strict=True)
        ]

    def _run(self, ready: Sequence[Ready]) -> list[Any]:
        """The accept script's reply for each of ``ready``, from one pipeline (with ``WAIT``
        at its end when ``CARTSYNC_REDIS_MIN_REPLICAS`` asks for replicas)."""
        pipe = self.client.pipeline(transaction=False)
        due = self.clock()
        wait = bool(self.settings.redis_min_replicas)
        per_step = 1
        for r in ready:
            step = self.ledger.accept_step(
                r.merchant, r.order_ref, update_id=r.update_id, version=r.version, due=due,
                message_prefix=r.message_prefix, message_suffix=r.message_suffix,
                remember_ms=self.remember_ms, receipt=r.receipt.script_args(),
            )  # fmt: skip
            per_step = self.ledger.queue_accept(pipe, step, before_wait=wait)
        if not wait:
            return list(pipe.execute())
        return execute_confirmed(pipe, self.settings, what="the update")[::per_step]

    def _outcome(self, ready: Ready, raw: Any, seconds: float) -> Outcome:
        status, number = text(raw[0]), stored_version(raw[1])
        if status == CONFLICT:
            return Outcome(422, errors={"Idempotency-Key": [KEY_REUSED]})
        if status == FULL:
            return Outcome(
                422,
                errors={
                    "version": [f"The order is at version {number}, the highest: none follows it."]
                },
            )
        receipt = logged_receipt(
            Receipt(
                update_id=ready.update_id,
                merchant=ready.merchant,
                order_ref=ready.order_ref,
                version=number,
                status=status,
                warnings=ready.warnings,
            )
        )
        return Outcome(202, receipt=receipt, replayed=status == "duplicate", enqueue_s=seconds)


def unavailable() -> str:
    return "Redis, where updates are kept, does not answer; nothing was enqueued. Retry later."


def _identity_errors(body: Any) -> dict[str, list[str]]:
    """What validation says about a body that names no merchant or order."""
    try:
        validate_update(body)
    except InvalidUpdate as exc:
        return exc.errors
    return {ROOT: [NO_IDENTITY]}
