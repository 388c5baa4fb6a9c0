"""The worker's composition root: what a worker process needs to deliver updates, built once.

An entry point: :class:`Runtime` wires settings to the adapters (Redis, ledger, schedule, dead
letters, merchant accounts, seQura client, metrics), and :class:`RuntimeTask`, the Celery app's
task class (``worker.celeryapp``), hands it to the order-update task. The task itself
(``tasks.order_update``) only names what it uses (``tasks.services.Services``), so that
importing it builds nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cached_property

import redis
from celery import Task

from cartsync.config.merchants import MerchantDirectory, load_merchants
from cartsync.config.settings import Settings, load_settings
from cartsync.worker.client import SequraClient
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.ledger import Ledger
from cartsync.worker.metrics import Metrics
from cartsync.worker.redisconn import connect
from cartsync.worker.schedule import Schedule

#: Redis connections a worker keeps beyond one per thread: the pump's, and a few to spare.
SPARE_CONNECTIONS = 8
#: Seconds between redis-py's checks that an idle pooled connection is still alive.
HEALTH_CHECK_INTERVAL_S = 30


class Runtime:
    """What a worker process needs to deliver updates, built once and shared by its threads."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(
            self.settings,
            max_connections=self.settings.worker_concurrency + SPARE_CONNECTIONS,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
        )

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.settings.key_prefix)

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule(self.redis, self.settings.key_prefix)

    @cached_property
    def dead_letters(self) -> DeadLetterStore:
        return DeadLetterStore(self.redis, self.settings.key_prefix)

    @cached_property
    def merchants(self) -> MerchantDirectory:
        return load_merchants(self.settings)

    @cached_property
    def client(self) -> SequraClient:
        return SequraClient(self.settings)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.redis, self.settings.key_prefix, merchants=self.merchants.refs())


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, built on first use from the environment's settings."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(load_settings())
            # Build everything now, under the lock, so threads never race to build twice.
            # The merchant accounts too: read once, at the start, not at the first update.
            _ = (
                _runtime.ledger,
                _runtime.schedule,
                _runtime.dead_letters,
                _runtime.merchants,
                _runtime.client,
                _runtime.metrics,
            )
        return _runtime


class RuntimeTask(Task):  # type: ignore[misc]  # celery ships no type information
    """The Celery app's task class: a task reaches this process's runtime as ``self.runtime``.

    The order-update task is a shared task bound to its app (``bind=True``): it asks the app's
    task class for the runtime instead of importing this entry point.
    """

    @property
    def runtime(self) -> Runtime:
        return runtime()
