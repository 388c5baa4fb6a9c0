"""Receipts: what the HTTP API accepted under each update id, for idempotency and lookups.

The ledger remembers an update id atomically with accepting it (``worker/ledger.py``), so two
requests carrying the same id enqueue once. What it does not keep is where the update went:
the receipt adds that (merchant, order-ref) and a fingerprint of the request, so that

- the same idempotency key with a *different* body is refused instead of silently answered
  with the first body's result;
- ``GET /v1/updates/{update_id}`` finds the order to look in.

A receipt is written *before* the ledger accepts (``SET NX``, same lifetime as the ledger's
memory of the update id) and is harmless on its own: a receipt whose update id the ledger does
not remember describes no update (the request failed before acceptance, and its retry with the
same key and body goes on from there).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from cartsync.tasks import codec
from cartsync.worker import keys

#: Prefix of update ids derived from an idempotency key (random ones are plain hex).
KEYED_PREFIX = "k-"


def keyed_update_id(scope: str, key: str) -> str:
    """The update id of idempotency key ``key`` sent by ``scope`` (a producer, a merchant).

    Scoped, so that two producers choosing the same key never collide; hashed, so that the id
    is short, URL-safe and says nothing about the key.
    """
    digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
    return KEYED_PREFIX + digest[:32]


def fingerprint(body: Any, version: int | None) -> str:
    """A digest of what a request asks for: its body and its producer version."""
    text = codec.encode(body) + "\n" + ("" if version is None else str(version))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Opened(StrEnum):
    """What :meth:`Receipts.open` found."""

    NEW = "new"  # no receipt had this update id: this request wrote it
    SAME = "same"  # a receipt for the same request exists (a retry, a concurrent twin)
    CONFLICT = "conflict"  # the update id was used for a different request


@dataclass(frozen=True)
class Receipt:
    """A receipt as stored."""

    merchant: str
    order_ref: str
    fingerprint: str
    accepted_at: float
    #: Set when the ledger refused the update as older than the order's newest version.
    superseded_version: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "merchant": self.merchant,
                "order_ref": self.order_ref,
                "fingerprint": self.fingerprint,
                "accepted_at": self.accepted_at,
                "superseded_version": self.superseded_version,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Receipt:
        data = json.loads(raw)
        return cls(
            merchant=str(data["merchant"]),
            order_ref=str(data["order_ref"]),
            fingerprint=str(data["fingerprint"]),
            accepted_at=float(data["accepted_at"]),
            superseded_version=data.get("superseded_version"),
        )


class Receipts:
    """The receipts in Redis. Redis errors propagate: the caller answers 503."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)

    def open(self, update_id: str, receipt: Receipt) -> Opened:
        """Write ``receipt`` unless one exists; compare with the existing one otherwise."""
        key = keys.receipt(self.prefix, update_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, receipt.to_json(), nx=True, px=self.ttl_ms)
        pipe.get(key)
        written, current = pipe.execute()
        if written:
            return Opened.NEW
        if current is None:  # expired in between: a window this narrow is a retry anyway
            return Opened.SAME
        existing = Receipt.from_json(current)
        same = (
            existing.fingerprint == receipt.fingerprint
            and existing.merchant == receipt.merchant
            and existing.order_ref == receipt.order_ref
        )
        return Opened.SAME if same else Opened.CONFLICT

    def discard(self, update_id: str) -> None:
        """Forget a receipt this request wrote for an update the producer refused."""
        self.client.delete(keys.receipt(self.prefix, update_id))

    def note_superseded(self, update_id: str, receipt: Receipt, version: int) -> None:
        """Record that the ledger refused the update as superseded by ``version``."""
        noted = Receipt(
            receipt.merchant, receipt.order_ref, receipt.fingerprint, receipt.accepted_at, version
        )
        self.client.set(keys.receipt(self.prefix, update_id), noted.to_json(), px=self.ttl_ms)

    def get(self, update_id: str) -> Receipt | None:
        raw = self.client.get(keys.receipt(self.prefix, update_id))
        return None if raw is None else Receipt.from_json(raw)
