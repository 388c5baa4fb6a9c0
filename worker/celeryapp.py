"""The Celery app: JSON only, late acks, prefetch 1, no result backend.

Backoff never uses Celery countdowns (see ``worker.schedule``), so a task never waits; it
carries a batch of updates and hands back what it has not started by half the visibility
timeout (``tasks.order_update``), so the timeout always outlasts a task's run.

An entry point, and the only module whose import has side effects: it loads the settings,
builds the app (which registers the order-update task, a shared task, through ``include``),
and patches kombu's Redis channel. ``celery -A cartsync.worker worker`` finds the app through
``worker.__init__``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from celery import Celery, signals

from cartsync.config.logging import configure_logging, get_logger
from cartsync.config.merchants import load_merchants
from cartsync.config.settings import Settings, load_settings
from cartsync.tasks.message import TASK_NAME
from cartsync.worker.client import check_base_url
from cartsync.worker.errors import CartsyncError, ConfigurationError
from cartsync.worker.redisconn import SENTINEL_TIMEOUT_S
from cartsync.worker.redisurl import is_sentinel_url, kombu_url, parse_sentinel_url
from cartsync.worker.runtime import RuntimeTask, runtime

log = get_logger("cartsync.broker")

#: The modules whose tasks the worker registers (their shared tasks join the app).
TASK_MODULES = ["cartsync.tasks.order_update"]


def broker_url(redis_url: str) -> str:
    """``redis_url`` as kombu reads it: a unix socket is ``redis+socket://PATH`` there (with
    the database as ``virtual_host``), ``unix://PATH`` for redis-py; Sentinels' addresses
    carry the master's database and credentials on the first (``worker/redisurl.py``)."""
    if is_sentinel_url(redis_url):
        return kombu_url(parse_sentinel_url(redis_url))
    if not redis_url.startswith("unix://"):
        return redis_url
    rest, _, query = redis_url[len("unix://") :].partition("?")
    pairs = [("virtual_host" if k == "db" else k, v) for k, v in parse_qsl(query)]
    return f"redis+socket://{rest}" + (f"?{urlencode(pairs)}" if pairs else "")


def load_checked_settings() -> Settings:
    """The environment's settings, the seQura URL and the merchant accounts checked too; a
    wrong one stops the worker here with one line, before it takes any task."""
    try:
        settings = load_settings()
        check_base_url(settings.sequra_url, settings.sequra_http_hosts.split(","))
        load_merchants(settings)
    except ConfigurationError as exc:
        raise SystemExit(f"cartsync worker: {exc}") from None
    return settings


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """kombu's transport options for a Redis the Sentinels name (none for a plain URL): the
    master's name, and the Sentinels' own password and time-outs (kombu's ``sentinel_kwargs``;
    the URL's password is the master's). A worker follows a failover through kombu's
    ``sentinel://`` transport: on the lost connection Celery reconnects, and the new channel
    asks the Sentinels where the master is now (docs/DEPLOYMENT.md, "Redis Sentinel")."""
    if not is_sentinel_url(settings.redis_url):
        return {}
    sentinels: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if settings.redis_sentinel_password:
        sentinels["password"] = settings.redis_sentinel_password
    return {"master_name": settings.redis_sentinel_master, "sentinel_kwargs": sentinels}


def make_app(settings: Settings) -> Celery:
    """The Celery app for ``settings``. Its task class gives tasks the process's runtime."""
    app = Celery(
        "cartsync",
        broker=broker_url(settings.redis_url),
        include=TASK_MODULES,
        task_cls=RuntimeTask,
    )
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
        # Cancelling the tasks of a lost connection needs processes to kill; the thread pool
        # cannot (Celery logs a traceback per task trying). Threads run on, and what they
        # cannot acknowledge comes back after the visibility timeout (the ledger makes the
        # second run harmless).
        worker_cancel_long_running_tasks_on_connection_loss=settings.worker_pool != "threads",
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
            **sentinel_options(settings),
        },
        broker_pool_limit=max(10, settings.worker_concurrency),
    )
    return app


def make_publisher(settings: Settings) -> Callable[[list[str]], None]:
    """A function that puts one task, carrying these update messages, on the queue of
    ``settings``."""
    target = (
        app
        if (broker_url(settings.redis_url), settings.queue) == (app.conf.broker_url, _queue)
        else (make_app(settings))
    )

    def publish(members: list[str]) -> None:
        target.send_task(
            TASK_NAME,
            args=[members],
            queue=settings.queue,
            # Celery's logs, events and Flower show argsrepr instead of the arguments,
            # which hold the payloads.
            argsrepr=f"({len(members)} update{'' if len(members) == 1 else 's'})",
            kwargsrepr="{}",
        )

    return publish


settings = load_checked_settings()
app = make_app(settings)
_queue = settings.queue
publish = make_publisher(settings)


#: Celery's per-task lines and the level each logger keeps. "Task ... received" and
#: "... succeeded in" (info): each update already ends in one ``order_update`` event that says
#: more, so these only double the log volume and cost CPU. "Task ... rejected" (a warning,
#: with a traceback): the task rejects a message only when Redis went away mid-attempt, and
#: says so itself in one line (``tasks.order_update``). An update whose processing fails
#: unexpectedly is logged by the task (``order_update``, outcome ``failed``), not raised; a
#: task that fails anyway (a bug outside an update's processing) is still logged by Celery,
#: at error level, with its traceback.
QUIET_LOGGERS = {"celery.app.trace": logging.ERROR, "celery.worker.strategy": logging.WARNING}


def quiet_task_lines() -> None:
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


#: The loggers through which Celery reports a message it could not acknowledge or reject
#: (kombu's ``Message.ack_log_error`` / ``reject_log_error``, called with the caller's logger).
UNSETTLED_LOGGERS = ("celery.worker.request", "celery.worker.consumer.consumer")


class UnsettledMessageFilter(logging.Filter):
    """Turns Celery's "Couldn't reject/ack ..." into one warning line without a traceback.

    When Redis goes away mid-task, the task cannot record its outcome and rejects its message
    for requeueing (``tasks.order_update``), and rejecting (or acknowledging) on the dead
    connection fails as well: kombu logs that at CRITICAL with a traceback, once per
    interrupted task, which reads like data loss. It is not: the message stays in kombu's
    unacknowledged set and the broker hands it out again after the visibility timeout; the
    ledger makes the second run harmless. Only these records change (kombu catches nothing
    but connection errors there); every other record passes as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.msg if isinstance(record.msg, str) else ""
        if record.levelno < logging.CRITICAL or not text.startswith(
            ("Couldn't reject", "Couldn't ack")
        ):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        error = record.exc_info[1] if record.exc_info else (args[1] if len(args) > 1 else None)
        record.msg = (
            "Couldn't %s message %r: the connection to Redis was lost (%s); the broker hands "
            "it out again after the visibility timeout"
        )
        record.args = (
            "reject" if text.startswith("Couldn't reject") else "ack",
            args[0] if args else None,
            type(error).__name__ if error is not None else "unknown error",
        )
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info, record.exc_text = None, None
        return True


def quiet_unsettled_messages() -> None:
    for name in UNSETTLED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UnsettledMessageFilter) for f in logger.filters):
            logger.addFilter(UnsettledMessageFilter())


def _stale_channel_raises_connection_error() -> None:
    """Keep a worker alive when Redis restarts while it holds unacknowledged messages.

    After a lost connection, Celery releases the connection and then still uses the old
    channel: closing it hands unacknowledged messages back, and tasks that finish afterwards
    acknowledge (or reject) their messages on it. kombu's Redis transport then fails with
    ``AttributeError`` (the channel's connection is gone), which nobody expects: the worker
    stops with "Unrecoverable error". Found by the chaos harness (``python -m bench.chaos
    --restart-redis``). Here the stale channel raises a connection error instead, which
    Celery and kombu handle (they log it and carry on): the messages stay in kombu's unacked
    hash, and the visibility timeout brings them back, as for a worker killed outright.
    """
    import redis
    from kombu.transport import redis as kombu_redis

    channel: Any = kombu_redis.Channel
    original: Any = channel._connparams
    if getattr(original, "_cartsync_guarded", False):
        return

    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the channel's connection to Redis was lost")
        return original(self, *args, **kwargs)

    _connparams._cartsync_guarded = True  # type: ignore[attr-defined]
    channel._connparams = _connparams


_stale_channel_raises_connection_error()


def _reuse_channel_client() -> None:
    """Let kombu's Redis channel reuse one client object instead of building one per command.

    kombu builds a new ``redis.Redis`` around the channel's connection pool for every publish,
    every unacknowledged-message record and every ack; redis-py 8 fills ~170 response
    callbacks into a fresh case-insensitive dict each time, which cost about 7 % of a
    worker's and a producer's CPU per update (profiled while benchmarking). A client object
    is a thin, thread-safe wrapper over the pool, so one per pool does the same work. A new
    pool (after a reconnect) gets a new client.
    """
    from kombu.transport import redis as kombu_redis

    channel: Any = kombu_redis.Channel
    original: Any = channel._create_client
    if getattr(original, "_cartsync_reuse", False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous)
        pool = self.pool
        cached = self.__dict__.get("_cartsync_client")
        if cached is None or cached.connection_pool is not pool:
            cached = original(self)
            self.__dict__["_cartsync_client"] = cached
        return cached

    _create_client._cartsync_reuse = True  # type: ignore[attr-defined]
    channel._create_client = _create_client


_reuse_channel_client()


def _unacked_records_without_transaction() -> None:
    """Record and drop kombu's unacknowledged messages in plain pipelines, not MULTI/EXEC.

    For every task kombu's Redis transport writes two records when a worker takes the message
    (ZADD to the unacked index, HSET of the message) and deletes them on the ack (ZREM, HDEL),
    each pair in a transaction: MULTI and EXEC are four more Redis commands per task, 40 % of
    what the broker costs a task (``python -m bench.redis_cost``). The pair still goes in one
    round trip, and nothing needs it atomic: the restore of unacknowledged messages only takes
    index entries older than the visibility timeout (never one being written), reads the
    message under WATCH (a concurrent HDEL makes it start again), and skips an index entry
    whose message is gone. The one difference is a connection cut in the middle of a pair:
    an index entry without its message (skipped and removed by the restore) or, on an ack,
    the message's record left without its index entry (never read again; the task is done)
    instead of the whole pair left and the task run a second time.
    """
    from kombu.transport import redis as kombu_redis

    qos: Any = kombu_redis.QoS
    original: Any = qos.pipe_or_acquire
    if getattr(original, "_cartsync_plain", False):
        return

    @contextlib.contextmanager
    def pipe_or_acquire(self: Any, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        if pipe:  # kombu's restore passes its own transaction: kept as it is
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as conn:
                yield conn.pipeline(transaction=False)

    pipe_or_acquire._cartsync_plain = True  # type: ignore[attr-defined]
    qos.pipe_or_acquire = pipe_or_acquire


_unacked_records_without_transaction()


class UndecodableMessage(CartsyncError, ValueError):
    """kombu could not read a message it popped from a queue: not JSON, a body that does not
    decode, or JSON that is no message. A ``ValueError``, as the errors it stands for are, so
    that kombu code catching those still catches it."""

    def __init__(self, error: BaseException) -> None:
        kind = type(error)
        builtin = kind.__module__ == "builtins"
        #: The error's type, with its module unless a builtin (``binascii.Error``).
        self.error = kind.__name__ if builtin else f"{kind.__module__}.{kind.__name__}"
        super().__init__(f"the message does not decode ({self.error})")


#: What reading a message can raise when its text is not a message.
NOT_A_MESSAGE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _drop_undecodable_messages(on_drop: Callable[[str, str], None]) -> None:
    """Keep a worker alive when its queue holds a message that does not decode.

    kombu's Redis transport pops a message (BRPOP) and decodes it inside the worker's event
    loop (``Channel._brpop_read``): the JSON envelope, then the body (base64). Text that is not
    JSON, a body that is not base64, or JSON that is not a message envelope raised out of the
    event loop, and Celery stopped the worker ("Unrecoverable error: JSONDecodeError"): one
    ``LPUSH`` of garbage took every worker of a queue down, one after the other. Here the
    decoding steps raise :class:`UndecodableMessage` instead, and reading the queue turns it
    into "nothing popped" after calling ``on_drop(queue, error type)``: the message is dropped.

    Dropping loses nothing cartsync accepted: every accepted update is in the schedule's
    in-flight set from before its task is published until a worker has recorded its outcome
    (``worker.schedule``), and the sweep publishes again what never finished. A message that
    does not decode was never one of cartsync's tasks as published, so nothing else could be
    done with it either: there is no update to park.
    """
    from queue import Empty

    from kombu.transport import redis as kombu_redis

    transport: Any = kombu_redis
    channel: Any = transport.Channel
    original_read: Any = channel._brpop_read
    if getattr(original_read, "_cartsync_guarded", False):
        return
    original_loads: Any = transport.loads

    def loads(*args: Any, **kwargs: Any) -> Any:
        try:
            return original_loads(*args, **kwargs)
        except (ValueError, RecursionError) as exc:
            raise UndecodableMessage(exc) from None

    class Message(channel.Message):  # type: ignore[misc]
        def __init__(self, payload: Any, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(payload, *args, **kwargs)
            except NOT_A_MESSAGE as exc:
                raise UndecodableMessage(exc) from None

    def _brpop_read(self: Any, **options: Any) -> Any:
        try:
            return original_read(self, **options)
        except UndecodableMessage as exc:
            # Which of the channel's queues the message came from is kombu's local; a
            # cartsync worker reads one.
            on_drop(",".join(sorted(self.active_queues)), exc.error)
            raise Empty() from None

    _brpop_read._cartsync_guarded = True  # type: ignore[attr-defined]
    transport.loads = loads
    channel.Message = Message
    channel._brpop_read = _brpop_read


def _message_dropped(queue: str, error: str) -> None:
    """Say once that a message was dropped (never its content: it may be anything), and
    count it (``cartsync_broker_messages_dropped_total``)."""
    log.error("broker.message_dropped", queue=queue, exception=error)
    with contextlib.suppress(Exception):  # counting is best effort; the log line is the record
        runtime().metrics.count_dropped(queue)


_drop_undecodable_messages(_message_dropped)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings)
    quiet_task_lines()
    quiet_unsettled_messages()


_pump: Any = None


@signals.worker_ready.connect
def _start_pump(sender: Any = None, **_: Any) -> None:
    global _pump
    from cartsync.worker.schedule import Pump, watch_s

    # The pump keeps one task waiting per thread of this worker: its concurrency as started,
    # which ``--concurrency`` may have set apart from the settings.
    controller = getattr(sender, "controller", None)
    slots = getattr(controller, "concurrency", None) or settings.worker_concurrency
    _pump = Pump(
        runtime().schedule,
        publish,
        queue=settings.queue,
        slots=int(slots),
        batch=settings.worker_batch,
        interval_s=settings.scheduler_interval_s,
        lease_s=settings.scheduler_lease_s,
        clock=time.time,
        watch_s=watch_s(settings.visibility_timeout_s),
        # Host and pid: unique among running workers, and a restarted worker is a new one.
        worker=f"{getattr(sender, 'hostname', None) or socket.gethostname()}:{os.getpid()}",
    )
    _pump.start()
    _start_notifier()
    _flag_parked_orders()


def _flag_parked_orders() -> None:
    """Orders with letters parked by an earlier release get the flag the claim looks for,
    once no worker of such a release is alive (``DeadLetterStore.flag_parked_orders``): a
    thread that looks every scheduler interval until it is done, here or in another worker.
    Until then claims look among the dead letters for every update, as before the flag."""
    from cartsync.worker.health import alive_window_s

    store, schedule = runtime().dead_letters, runtime().schedule

    def look() -> None:
        while not _stopping.wait(settings.scheduler_interval_s):
            try:
                now = time.time()
                if store.orders_flagged(now):
                    return
                since = now - alive_window_s(settings.scheduler_interval_s)
                if schedule.earlier_workers_alive(since) == 0:
                    store.flag_parked_orders()
                    return
            except (redis.RedisError, OSError) as exc:
                log.warning("dead_letters.flag_orders_failed", exception=type(exc).__name__)

    threading.Thread(target=look, name="cartsync-flag-parked-orders", daemon=True).start()


_stopping = threading.Event()


_notifier: Any = None


def _start_notifier() -> None:
    """Dead-letter notifications, when configured: a thread in every worker, one of which
    sends each interval's message (``worker/notify.py`` says why here)."""
    global _notifier
    from cartsync.worker.notify import Notifier, NotifierThread

    if settings.notify_webhook_url:
        _notifier = NotifierThread(Notifier(runtime().redis, settings))
        _notifier.start()


@signals.worker_shutting_down.connect
def _stop_pump(**_: Any) -> None:
    _stopping.set()
    if _pump is not None:
        _pump.stop()
    if _notifier is not None:
        _notifier.stop()
