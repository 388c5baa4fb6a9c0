"""What the console's handlers share in one process: built once by :func:`install_console`
(``worker/web/console/__init__.py``), read per request."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.web.console.jobstore import JobStore
from cartsync.worker.web.console.throttle import LoginThrottle
from cartsync.worker.web.console.users import ConsoleUser

EXTENSION = "cartsync.console"


@dataclass(frozen=True)
class Console:
    settings: Settings
    client: redis.Redis
    store: DeadLetterStore
    producer: Producer
    merchants: MerchantDirectory
    users: dict[str, ConsoleUser]
    jobs: JobStore
    throttle: LoginThrottle


def console() -> Console:
    found: Console = current_app.extensions[EXTENSION]
    return found
