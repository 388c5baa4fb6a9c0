"""What the request handlers share in one process: built by the app factory, read per request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import current_app, g

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.producers import ProducerDirectory
from cartsync.config.settings import Settings
from cartsync.worker.web.intake import Intake
from cartsync.worker.web.lookup import Lookup
from cartsync.worker.web.metrics import HttpMetrics

EXTENSION = "cartsync"


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: redis.Redis
    merchants: MerchantDirectory
    producers: ProducerDirectory
    intake: Intake
    lookup: Lookup
    metrics: HttpMetrics
    batch_max: int


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


@dataclass
class RequestNotes:
    """What a handler tells the access log and the metrics about its request (no payload)."""

    merchant: str | None = None
    order_ref: str | None = None
    update_id: str | None = None
    outcome: str | None = None
    count: int | None = None
    enqueue_s: list[float] = field(default_factory=list)

    def enqueued(self, seconds: float | None) -> None:
        """Count a producer's enqueue that took ``seconds`` (None: it did not run)."""
        if seconds is not None:
            self.enqueue_s.append(seconds)

    def log_fields(self) -> dict[str, Any]:
        shown = {
            "merchant": self.merchant,
            "order_ref": self.order_ref,
            "update_id": self.update_id,
            "outcome": self.outcome,
            "count": self.count,
        }
        return {k: v for k, v in shown.items() if v is not None}


def deadline() -> float | None:
    """When (``time.monotonic()``) this request's time limit runs out; None outside one."""
    found: float | None = g.get("cartsync_deadline")
    return found


def start_clock(limit_s: float) -> None:
    """Start this request's time limit of ``limit_s`` seconds."""
    g.cartsync_started = time.perf_counter()
    g.cartsync_deadline = time.monotonic() + limit_s


def notes() -> RequestNotes:
    if "cartsync_notes" not in g:
        g.cartsync_notes = RequestNotes()
    found: RequestNotes = g.cartsync_notes
    return found
