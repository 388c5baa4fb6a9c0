"""The producer: validate an update, give it a version, and queue it, or refuse it at once.

    from cartsync.tasks.producer import enqueue_order_update
    receipt = enqueue_order_update(body)      # body is the API body {"order": {...}}
    receipt.update_id, receipt.version

Accepting is one atomic step in Redis (``Ledger.accept_step``): the version is recorded, the
message is put in the schedule, due now, and a waiting worker is woken. That is all the
producer does: the workers' pump moves the message to the Celery queue (in a batch when a
backlog has built up) and watches it in flight until a worker has recorded its attempt
(``worker.schedule``). Once ``enqueue`` returns, the update is in Redis and is never lost.
"""

from __future__ import annotations

import platform
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis

from cartsync.config.logging import get_logger
from cartsync.config.merchants import MerchantDirectory, load_merchants
from cartsync.config.settings import REDIS_TIMEOUT_S, Settings, load_settings
from cartsync.tasks.message import UpdateMessage, version_problem
from cartsync.tasks.schemas.fields import identifier_text
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import BrokerUnavailable, InvalidUpdate
from cartsync.worker.ledger import Ledger, Step, accepted
from cartsync.worker.redisconn import connect, execute_confirmed
from cartsync.worker.urls import safe_url

log = get_logger("cartsync.producer")

#: The paths of the two identifiers that name an order.
MERCHANT_PATH, ORDER_REF_PATH = "order.merchant.id", "order.merchant_reference.order_ref_1"

#: Status of an update the ledger could not give a version: the order has reached
#: :data:`tasks.message.MAX_VERSION`, and only a replay of that version can still be enqueued.
FULL = "full"


@dataclass(frozen=True)
class Receipt:
    """What happened to an enqueue call."""

    update_id: str
    merchant: str
    order_ref: str
    version: int
    #: ``enqueued``; ``duplicate`` (this update id was enqueued before: nothing done); or
    #: ``superseded`` (the order already has this or a newer version: nothing enqueued).
    status: str
    warnings: dict[str, list[str]] = field(default_factory=dict)


def order_identity(body: Any) -> tuple[str, str] | None:
    """(merchant-ref, order-ref) of a body, or None when the body does not name both.

    Neither part is ever empty or blank: each is taken by the rule validation applies to
    these fields (``tasks/schemas/fields.identifier_text``), so a body that validates has an
    identity, and one without an identity does not validate.
    """
    order = body.get("order") if isinstance(body, Mapping) else None
    if not isinstance(order, Mapping):
        return None
    merchant = order.get("merchant")
    reference = order.get("merchant_reference")
    if not isinstance(merchant, Mapping) or not isinstance(reference, Mapping):
        return None
    merchant_id = identifier_text(merchant.get("id"))
    order_ref = identifier_text(reference.get("order_ref_1"))
    if merchant_id is None or order_ref is None:
        return None
    return merchant_id, order_ref


def require_identity(body: Any) -> tuple[str, str]:
    """:func:`order_identity`, or InvalidUpdate naming both paths when the body lacks it."""
    identity = order_identity(body)
    if identity is None:
        message = "Must name the order: order.merchant.id and its order_ref_1 are required."
        raise InvalidUpdate({MERCHANT_PATH: [message], ORDER_REF_PATH: [message]})
    return identity


def with_platform_defaults(body: Any, settings: Settings) -> Any:
    """The body with ``order.platform``'s name, version and uname filled in where absent.

    Returns the body itself when nothing is missing, else a copy: the caller's dict is never
    changed.
    """
    order = body.get("order") if isinstance(body, Mapping) else None
    if not isinstance(order, Mapping):
        return body
    given = order.get("platform")
    if given is not None and not isinstance(given, Mapping):
        return body  # let validation name the problem
    current = dict(given or {})
    defaults = {
        "name": settings.platform_name,
        "version": settings.platform_version,
        "uname": _uname(),
    }
    missing = {k: v for k, v in defaults.items() if k not in current}
    if not missing:
        return body
    return {**body, "order": {**order, "platform": {**current, **missing}}}


def _uname() -> str:
    u = platform.uname()
    return f"{u.system} {u.node} {u.release} {u.version} {u.machine}"


class Producer:
    """Enqueues updates. Thread-safe; keep one per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        merchants: MerchantDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client or connect(
            settings,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self._merchants = merchants
        self.clock = clock
        self.ledger = Ledger(self.client, settings.key_prefix)

    @cached_property
    def merchants(self) -> MerchantDirectory:
        return self._merchants or load_merchants(self.settings)

    def enqueue(
        self,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
        update_id: str | None = None,
        replay: bool = False,
        replay_of: str | None = None,
    ) -> Receipt:
        """Validate and enqueue one update; see :class:`Receipt` for the outcomes.

        Raises InvalidUpdate (naming every bad field), UnknownMerchant, or BrokerUnavailable.
        ``version``: the producer's own increasing version (its row version, say); None lets
        the ledger assign the next one. ``update_id``: an idempotency key; None makes a new one.
        ``replay``: allow a version equal to the newest enqueued (a dead letter's own).
        """
        problem = None if version is None else version_problem(version)
        if problem is not None:
            raise InvalidUpdate({"version": [problem]})
        body = with_platform_defaults(body, self.settings)
        identity = order_identity(body)
        options: frozenset[str] = frozenset()
        if identity is not None:
            options = self.merchants.get(identity[0]).options
        validated = validate_update(body, options=options, strict=self.settings.strict)
        merchant, order_ref = require_identity(validated.body)
        message = UpdateMessage(
            update_id=update_id or uuid.uuid4().hex,
            merchant=merchant,
            order_ref=order_ref,
            version=version or 0,
            body=validated.body,
            enqueued_at=self.clock(),
            replay_of=replay_of,
        )
        prefix, suffix = message.split_at_version()
        try:
            step = self.ledger.accept_step(
                merchant,
                order_ref,
                update_id=message.update_id,
                version=version,
                due=self.clock(),
                message_prefix=prefix,
                message_suffix=suffix,
                remember_ms=int(self.settings.idempotency_ttl_s * 1000),
                allow_equal=replay,
            )
            status, number = self._accept(step)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise BrokerUnavailable(
                f"Redis at {_safe_url(self.settings.redis_url)} is unreachable "
                f"({type(exc).__name__}); nothing was enqueued"
            ) from None
        if status == FULL:
            raise InvalidUpdate(
                {"version": [f"The order is at version {number}, the highest: none follows it."]}
            )
        return logged_receipt(
            Receipt(
                update_id=message.update_id,
                merchant=merchant,
                order_ref=order_ref,
                version=number,
                status=status,
                warnings=validated.warnings,
            )
        )

    def _accept(self, step: Step) -> tuple[str, int]:
        """Run the ledger's accept step, then Redis's ``WAIT`` in the same round trip when
        ``CARTSYNC_REDIS_MIN_REPLICAS`` asks for replicas (``worker/redisconn.py``).

        Raises ReplicasUnavailable (a BrokerUnavailable: the HTTP API answers 503) when they
        do not confirm in time: the update is on the master and may yet be delivered, but a
        failover could lose it, so it is not answered as accepted. Sending it again with the
        same update id is safe (``duplicate`` when it survived).
        """
        if not self.settings.redis_min_replicas:
            return self.ledger.run_accept(step)
        pipe = self.client.pipeline(transaction=False)
        self.ledger.queue_accept(pipe, step)
        try:
            reply, _ = execute_confirmed(pipe, self.settings, what="the update")
        except redis.exceptions.NoScriptError:
            # A new master (after a failover) or a restarted Redis forgot the script: load
            # it, then wait for the replicas on their own.
            found = self.ledger.run_accept(step)
            execute_confirmed(
                self.client.pipeline(transaction=False), self.settings, what="the update"
            )
            return found
        return accepted(reply)


def logged_receipt(receipt: Receipt) -> Receipt:
    """Log the ``enqueue`` event of an update the ledger answered (every way in logs the
    same one), and return its receipt."""
    log.info(
        "enqueue",
        outcome=receipt.status,
        merchant=receipt.merchant,
        order_ref=receipt.order_ref,
        update_id=receipt.update_id,
        version=receipt.version,
        warning_count=sum(len(w) for w in receipt.warnings.values()),
    )
    return receipt


def _safe_url(url: str) -> str:
    """The Redis URL (or the Sentinels' addresses) without a password."""
    return safe_url(url)


_default: Producer | None = None


def enqueue_order_update(body: Mapping[str, Any], **options: Any) -> Receipt:
    """Enqueue with a process-wide producer configured from the environment."""
    global _default
    if _default is None:
        _default = Producer(load_settings())
    return _default.enqueue(body, **options)
