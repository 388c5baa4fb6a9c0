"""Letters for the dead-letter tests, parked through the store API (or planted in Redis by
hand, as damaged letters come to be)."""

from __future__ import annotations

import base64
import itertools
import json
import time
import zlib
from typing import Any

from cartsync.tasks.examples import two_item_body
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetter

_counter = itertools.count()

#: seQura's 409 text for bad totals, as the spec quotes it.
TOTALS_409 = (
    "Invalid data: In shipped_cart, items' total_with_tax add up to 5055 (200+295+-1500+6060) "
    "but order_total_with_tax is 5097. The diff is 42."
)


def make_letter(
    *,
    merchant: str = "shop1",
    order_ref: str | None = None,
    version: int | None = 1,
    reason: str = "conflict",
    status: int | None = 409,
    errors: list[str] | None = None,
    dead_at: float | None = None,
    payload: Any = None,
    update_id: str | None = None,
) -> DeadLetter:
    """A letter as the worker would park it; every call makes a distinct update."""
    n = next(_counter)
    order_ref = order_ref or f"ORDER-{n}"
    now = time.time() if dead_at is None else dead_at
    return DeadLetter(
        update_id=update_id or f"update-{n}",
        merchant=merchant,
        order_ref=order_ref,
        version=version,
        reason=reason,
        status=status,
        errors=[TOTALS_409] if errors is None else errors,
        attempts=[
            {"at": now - 1, "status": status, "exception": None, "errors": [], "latency_ms": 12.5}
        ],
        enqueued_at=now - 2,
        payload=two_item_body(merchant, order_ref) if payload is None else payload,
        dead_at=now,
    )


def queued_messages(redis_client: Any, settings: Any) -> list[dict[str, Any]]:
    """The update messages waiting to be sent: in the Celery queue, then in the schedule
    (where a replay leaves them for the workers' pump to publish)."""
    found = []
    for raw in redis_client.lrange(settings.queue, 0, -1):
        envelope = json.loads(raw)
        found.append(json.loads(base64.b64decode(envelope["body"]))[0][0])
    for member in redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1):
        found.append(json.loads(member))
    return found


def queued_update_ids(redis_client: Any, settings: Any) -> list[str]:
    """Update ids of :func:`queued_messages`, in the same order."""
    return [message["update_id"] for message in queued_messages(redis_client, settings)]


def scheduled_update_ids(redis_client: Any, settings: Any) -> list[str]:
    """Update ids of the messages waiting in cartsync's schedule."""
    return [
        json.loads(member)["update_id"]
        for member in redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1)
    ]


def producer_for(settings: Any, client: Any) -> Any:
    """A producer on the test Redis that knows one merchant account (any merchant-ref)."""
    from cartsync.config.merchants import MerchantAccount, MerchantDirectory
    from cartsync.tasks.producer import Producer

    account = MerchantAccount(ref="", username="user", password="secret-pw")
    return Producer(settings, client=client, merchants=MerchantDirectory(single=account))


def plant(
    client: Any,
    prefix: str,
    letter_id: str,
    stored: bytes | dict[str, Any],
    *,
    merchant: str = "shop1",
    order_ref: str = "PLANTED-1",
    reason: str = "conflict",
    status: str = "409",
    update_id: str = "planted-update",
) -> None:
    """Write a letter into Redis by hand, listed, indexed and counted as the park script of
    worker/lua/dlq_park.lua lists it: ``stored`` is the stored bytes as they are, or a dict to
    store as a letter's compressed JSON (whatever it holds). How a damaged letter comes to
    be: written by hand, or by an import before the store made every id."""
    body = stored if isinstance(stored, bytes) else zlib.compress(json.dumps(stored).encode())
    pipe = client.pipeline()
    pipe.hset(keys.dlq_letters(prefix), letter_id, body)
    pipe.hset(keys.dlq_by_update(prefix), update_id, letter_id)
    pipe.zadd(keys.dlq_by_order(prefix), {f"{order_ref}\0{merchant}\0{letter_id}": 0})
    for r in (reason, None):
        for s in (status, None):
            for m in (merchant, None):
                pipe.zadd(keys.dlq_index(prefix, r, s, m), {letter_id: 0})
    for field in ("total", f"r:{reason}", f"s:{status}", f"m:{merchant}"):
        pipe.hincrby(keys.dlq_counts(prefix), field, 1)
    pipe.execute()
