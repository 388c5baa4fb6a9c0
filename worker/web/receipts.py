"""Receipts: what the HTTP API accepted under each update id, for idempotency and lookups.

The ledger remembers an update id atomically with accepting it (``worker/ledger.py``), so two
requests carrying the same id enqueue once. What it does not keep is where the update went:
the receipt adds that (merchant, order-ref) and a fingerprint of the request, so that

- the same idempotency key with a *different* body is refused instead of silently answered
  with the first body's result;
- ``GET /v1/updates/{update_id}`` finds the order to look in.

A receipt is a hash written by the ledger's accept script itself (``worker/lua/
ledger_accept.lua``, its optional receipt key), in the same atomic step that accepts the
update, with the same lifetime as the ledger's memory of the update id: one round trip per
update, and no request can slip between the check of the key and the acceptance. A receipt
whose update id the ledger does not remember describes no update (refused as superseded, or
forgotten).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import redis

from cartsync.tasks import codec
from cartsync.worker import keys
from cartsync.worker.redistext import text

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
    return fingerprint_text(codec.encode(body), version)


def fingerprint_text(encoded: str, version: int | None) -> str:
    """:func:`fingerprint` of a body already encoded by the codec."""
    text_ = encoded + "\n" + ("" if version is None else str(version))
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Receipt:
    """A receipt as stored."""

    merchant: str
    order_ref: str
    fingerprint: str
    accepted_at: float
    #: Set when the ledger refused the update as older than the order's newest version.
    superseded_version: int | None = None

    def script_args(self) -> list[str]:
        """The accept script's receipt arguments (ARGV[7] to ARGV[10])."""
        return [self.fingerprint, self.merchant, self.order_ref, repr(self.accepted_at)]

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Receipt | None:
        """A receipt from its hash; None when the hash is not a whole receipt."""
        fields = {text(k): text(v) for k, v in raw.items()}
        try:
            superseded = fields.get("superseded_version")
            return cls(
                merchant=fields["merchant"],
                order_ref=fields["order_ref"],
                fingerprint=fields["fingerprint"],
                accepted_at=float(fields["accepted_at"]),
                superseded_version=int(superseded) if superseded else None,
            )
        except (KeyError, ValueError):
            return None


class Receipts:
    """Reading receipts. Redis errors propagate: the caller answers 503."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, update_id: str) -> str:
        return keys.receipt(self.prefix, update_id)

    def get(self, update_id: str) -> Receipt | None:
        return Receipt.from_hash(self.client.hgetall(self.key(update_id)))
