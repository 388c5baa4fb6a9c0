"""The dead-letter store: updates that could not be delivered, kept for people to act on.

Minimal first version (park, look up); the on-call tooling grows it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import redis

from worker import keys
from worker.errors import DeadLetterNotFound


class Reason(StrEnum):
    CONFLICT = "conflict"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"


@dataclass
class DeadLetter:
    """One parked update and everything known about why it is here."""

    update_id: str
    merchant: str
    order_ref: str
    version: int | None
    reason: str
    status: int | None
    errors: list[str]
    attempts: list[dict[str, Any]]
    enqueued_at: float
    payload: Any
    dead_at: float = field(default_factory=time.time)
    id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        return cls(**json.loads(raw))


class DeadLetterStore:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.base = keys.dead_letters(prefix)

    def park(self, letter: DeadLetter) -> str:
        """Store ``letter``; parking the same update again keeps the first letter."""
        letter_id = letter.id or f"{int(letter.dead_at * 1000):013d}-{uuid.uuid4().hex[:8]}"
        letter.id = letter_id
        by_update = f"{self.base}:by-update"
        if not self.client.hsetnx(by_update, letter.update_id, letter_id):
            existing = self.client.hget(by_update, letter.update_id)
            return existing.decode() if isinstance(existing, bytes) else str(existing)
        self.client.set(f"{self.base}:letter:{letter_id}", letter.to_json())
        return letter_id

    def holds_update(self, update_id: str) -> bool:
        return bool(self.client.hexists(f"{self.base}:by-update", update_id))

    def get(self, letter_id: str) -> DeadLetter:
        raw = self.client.get(f"{self.base}:letter:{letter_id}")
        if raw is None:
            raise DeadLetterNotFound(letter_id)
        return DeadLetter.from_json(raw)  # type: ignore[arg-type]
