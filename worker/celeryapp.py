"""The Celery app: JSON only, late acks, prefetch 1, no result backend.

Backoff never uses Celery countdowns (see ``worker.schedule``), so a task is always short
and the broker's visibility timeout only has to outlast one task's run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from config.logging import configure_logging
from config.settings import Settings, load_settings

#: The task's registered name; producers publish by name.
TASK_NAME = "cartsync.order_update"


def make_app(settings: Settings) -> Celery:
    app = Celery("cartsync", broker=settings.redis_url, include=["tasks.order_update"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_pool=settings.worker_pool,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        # Task events (task-received/started/succeeded, for Flower) cost three Redis
        # publishes per task; off by default as in Celery: `celery control enable_events`
        # turns them on in a running worker when someone watches.
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # Look for tasks of dead workers often enough that they come back soon after the
            # visibility timeout, not up to 100 s later (kombu's default sweep period).
            "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout_s // 10))),
            "unacked_restore_throttle": 1,
            # A Redis that vanishes without closing the connection must not hang a publish.
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
        },
        broker_pool_limit=max(10, settings.worker_concurrency),
    )
    return app


def make_publisher(settings: Settings) -> Callable[[dict[str, Any]], None]:
    """A function that puts one update message on the queue of ``settings``."""
    target = (
        app
        if (settings.redis_url, settings.queue) == (app.conf.broker_url, _queue)
        else (make_app(settings))
    )

    def publish(message: dict[str, Any]) -> None:
        target.send_task(
            TASK_NAME,
            args=[message],
            queue=settings.queue,
            # Celery's logs, events and Flower show argsrepr instead of the arguments,
            # which hold the payload.
            argsrepr=f"(update {message.get('update_id')} v{message.get('version')})",
            kwargsrepr="{}",
        )

    return publish


settings = load_settings()
app = make_app(settings)
_queue = settings.queue
publish = make_publisher(settings)


#: Celery's per-task info lines ("Task ... received", "... succeeded in"): each update
#: already ends in one ``order_update`` event that says more, so these only double the log
#: volume and cost CPU. Failures are still logged by Celery at error level.
QUIET_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


def quiet_task_lines() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings)
    quiet_task_lines()


_pump: Any = None


@signals.worker_ready.connect
def _start_pump(**_: Any) -> None:
    global _pump
    from tasks.order_update import runtime
    from worker.schedule import Pump

    _pump = Pump(
        runtime().schedule,
        publish,
        interval_s=settings.scheduler_interval_s,
        lease_s=settings.scheduler_lease_s,
        clock=time.time,
    )
    _pump.start()


@signals.worker_shutting_down.connect
def _stop_pump(**_: Any) -> None:
    if _pump is not None:
        _pump.stop()
