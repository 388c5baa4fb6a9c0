"""What the order-update task uses of its worker process, as a protocol.

``worker.runtime.Runtime`` provides it, and tests build one around their own settings; the
task (``tasks/order_update.py``) and its failure handling (``tasks/failures.py``) only name
it, so that importing them builds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import redis

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.worker.client import SequraClient
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.ledger import Ledger
from cartsync.worker.metrics import Metrics
from cartsync.worker.schedule import Schedule


class Services(Protocol):
    """What the task uses of its worker process: ``worker.runtime.Runtime`` provides it, and
    tests build one around their own settings."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def redis(self) -> redis.Redis: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def schedule(self) -> Schedule: ...
    @property
    def dead_letters(self) -> DeadLetterStore: ...
    @property
    def merchants(self) -> MerchantDirectory: ...
    @property
    def client(self) -> SequraClient: ...
    @property
    def metrics(self) -> Metrics: ...
