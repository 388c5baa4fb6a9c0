"""Redis key names, built in one place so that every module agrees on them."""

from __future__ import annotations


def order(prefix: str, merchant: str, order_ref: str) -> str:
    """Hash holding an order's ledger: versions enqueued and delivered."""
    return f"{prefix}:order:{merchant}:{order_ref}"


def lock(prefix: str, merchant: str, order_ref: str) -> str:
    """The per-order send lock."""
    return f"{prefix}:lock:{merchant}:{order_ref}"


def schedule(prefix: str) -> str:
    """Sorted set of messages waiting to be queued, scored by when they are due."""
    return f"{prefix}:schedule"


def update(prefix: str, update_id: str) -> str:
    """Remembers an update id so that enqueueing it again does nothing."""
    return f"{prefix}:update:{update_id}"


def dead_letters(prefix: str) -> str:
    """Prefix of every dead-letter key."""
    return f"{prefix}:dlq"


def inflight(prefix: str) -> str:
    """Sorted set of messages handed to the Celery queue and not yet finished by a worker,
    scored by when they are presumed lost (see ``worker.schedule``)."""
    return f"{prefix}:inflight"


def wake(prefix: str) -> str:
    """List a producer pushes to when it schedules an update due now, so that a worker's
    pump waiting for work (``BLPOP``) moves it to the queue at once."""
    return f"{prefix}:wake"


def receipt(prefix: str, update_id: str) -> str:
    """What the HTTP API accepted under an update id (merchant, order-ref, a fingerprint of
    the request), kept as long as the update id itself (``worker/web/receipts.py``)."""
    return f"{prefix}:receipt:{update_id}"
