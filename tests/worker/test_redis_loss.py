"""Losing Redis mid-attempt neither loses the update nor stops the worker (chaos findings)."""

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import Reject

from cartsync.config.settings import load_settings
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.order_update import run_batch
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.celeryapp import UnsettledMessageFilter  # also guards kombu's channel
from cartsync.worker.redisserver import EmbeddedRedis
from cartsync.worker.runtime import Runtime
from cartsync.worker.schedule import member_of
from tests.log_events import captured_events
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env


def test_stale_kombu_channel_raises_a_connection_error():
    """A kombu Redis channel whose connection is gone raises redis.ConnectionError, which
    Celery handles, instead of AttributeError, which stopped the worker."""
    from kombu.transport import redis as kombu_redis

    for connection in (None, SimpleNamespace(client=None)):
        stale: Any = SimpleNamespace(connection=connection)
        with pytest.raises(redis.ConnectionError):
            kombu_redis.Channel._connparams(stale)


def test_task_hands_its_message_back_when_redis_is_down(settings):
    """With Redis unreachable the task rejects its message for requeueing (never acks it, which
    would lose the updates it carries) and logs one line without a payload."""
    down = settings.with_overrides(
        redis_url="redis://127.0.0.1:1/0", sequra_username="u", sequra_password="p"
    )
    message = {
        "update_id": "u-1",
        "merchant": "shop1",
        "order_ref": "A1",
        "version": 2,
        "body": {"order": {"customer": {"nin": "12345678Z"}}},
        "enqueued_at": 1.0,
    }
    with captured_events() as logs, pytest.raises(Reject) as rejected:
        run_batch([member_of(message)], Runtime(down))
    assert rejected.value.requeue is True
    [event] = [e for e in logs if e.get("outcome") == "interrupted"]
    assert event["reason"] == "redis_unavailable"
    assert event["update_id"] == "u-1"
    assert "12345678Z" not in repr(logs)


@pytest.mark.slow
def test_redis_lost_mid_task_is_one_warning_not_a_critical_traceback(shop_sandbox):
    """Redis dies while a worker waits for seQura's answer: the task cannot record its outcome
    nor reject its message on the dead connection. Celery's "Couldn't reject" comes out as one
    warning line without a traceback, and the update is delivered once Redis is back."""
    server = EmbeddedRedis(persistent=True).start()
    try:
        env = worker_env(
            shop_sandbox.url,
            CARTSYNC_REDIS_URL=server.url,
            CARTSYNC_SEQURA_USERNAME=SHOP.username,
            CARTSYNC_SEQURA_PASSWORD=SHOP.password,
        )
        settings = load_settings(env)
        producer = Producer(settings)
        body = fully_shipped(merchant=SHOP.ref, order_ref="L1", items=[Item("s", "shirt", 1250)])
        lock = keys.lock(settings.key_prefix, SHOP.ref, "L1")
        shop_sandbox.state.set_faults({"latency_ms": 1500})
        with running_worker(env) as worker:
            producer.enqueue(body)
            # The worker holds the order's lock while its call to seQura is on its way.
            wait_for(lambda: producer.client.exists(lock), on_fail=worker.log_text)
            producer.client.close()
            server.kill()
            wait_for(
                lambda: any(e["outcome"] == "interrupted" for e in worker.events()),
                on_fail=worker.log_text,
            )
            shop_sandbox.state.set_faults({"latency_ms": 0})
            server.start()
            # Back on line, Celery settles the task's message on the channel Redis dropped.
            wait_for(
                lambda: "Couldn't reject" in worker.log_text(),
                timeout=30,
                what="the task to give its message back",
                on_fail=worker.log_text,
            )
            wait_for(
                lambda: any(e["outcome"] == "delivered" for e in worker.events()),
                timeout=40,
                on_fail=worker.log_text,
            )
            log = worker.log_text()
    finally:
        server.stop()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    unsettled = [r for r in records if "Couldn't reject" in r["event"]]
    assert [r["level"] for r in unsettled] == ["warning"]
    assert "exception" not in unsettled[0]
    assert not [r for r in records if r["level"] == "critical"]


def test_unsettled_message_records_become_one_warning_line():
    """kombu's CRITICAL "Couldn't reject/ack" with a traceback, as Celery logs it on a dead
    connection, reaches the handlers as one warning without the traceback; other records
    pass unchanged."""
    logger = logging.getLogger("cartsync-test.unsettled")
    logger.propagate = False
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.addFilter(UnsettledMessageFilter())
    try:
        for action in ("reject", "ack"):
            try:
                raise redis.ConnectionError("Connection closed by server.")
            except redis.ConnectionError as exc:
                logger.critical(f"Couldn't {action} %r, reason: %r", "tag-1", exc, exc_info=True)
        logger.critical("Something else entirely")
    finally:
        logger.removeHandler(handler)
    rejected, acked, other = seen
    for record, action in ((rejected, "reject"), (acked, "ack")):
        assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")
        assert record.exc_info is None
        assert record.getMessage() == (
            f"Couldn't {action} message 'tag-1': the connection to Redis was lost "
            "(ConnectionError); the broker hands it out again after the visibility timeout"
        )
    assert (other.levelno, other.getMessage()) == (logging.CRITICAL, "Something else entirely")
