"""Losing Redis mid-attempt neither loses the update nor stops the worker (chaos findings)."""

from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import Reject

import cartsync.worker.celeryapp  # noqa: F401  (applies the guard on kombu's Redis channel)
from cartsync.tasks.order_update import run_batch
from cartsync.worker.runtime import Runtime
from cartsync.worker.schedule import member_of
from tests.log_events import captured_events


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
