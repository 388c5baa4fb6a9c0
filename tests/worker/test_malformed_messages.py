"""Whatever lands in the Celery queue, the worker neither dies nor stalls.

kombu's Redis transport decodes a popped message inside the worker's event loop, where an
exception used to stop the worker ("Unrecoverable error: JSONDecodeError"); the guard in
worker/celeryapp.py drops such a message with one error line instead. These tests push
garbage into the queue of a real ``celery -A cartsync.worker worker`` and then check that the
same process still delivers an update.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from tests.sandbox_fixtures import SHOP
from tests.support import json_events, running_worker, wait_for, worker_env

pytestmark = pytest.mark.slow

#: What lands in the queue, and the error each one used to stop the worker with.
GARBAGE: dict[str, str] = {
    "not json at all": "json.decoder.JSONDecodeError",
    json.dumps(
        {
            "body": "this is not base64!",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": "cartsync.order_updates", "id": "t-1"},
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": "t-1",
                "delivery_info": {"exchange": "", "routing_key": "cartsync"},
                "priority": 0,
            },
        }
    ): "binascii.Error",
    json.dumps("a JSON string"): "TypeError",
    json.dumps({"body": "e30="}): "KeyError",
}


def test_messages_that_do_not_decode_are_dropped_and_the_worker_carries_on(
    shop_sandbox: Any, redis_client: redis.Redis, settings: Any
) -> None:
    """Text that is not JSON, a body that is not base64, JSON that is no message: each is
    logged once (queue and error type, never its content), counted and dropped, and the same
    worker process then delivers an update."""
    env = worker_env(
        shop_sandbox.url,
        CARTSYNC_SEQURA_USERNAME=SHOP.username,
        CARTSYNC_SEQURA_PASSWORD=SHOP.password,
    )
    producer = Producer(
        settings.with_overrides(sequra_username=SHOP.username, sequra_password=SHOP.password)
    )
    body = fully_shipped(merchant=SHOP.ref, order_ref="G1", items=[Item("s", "shirt", 1250)])
    with running_worker(env) as worker:
        pid = worker.pid
        for garbage in GARBAGE:
            redis_client.lpush(settings.queue, garbage)
        wait_for(
            lambda: len(worker.events("broker.message_dropped")) == len(GARBAGE),
            what="the garbage to be dropped",
            on_fail=worker.log_text,
        )
        producer.enqueue(body)
        wait_for(
            lambda: [e["outcome"] for e in worker.events()] == ["delivered"],
            what="the update to be delivered",
            on_fail=worker.log_text,
        )
        assert worker.running
        assert worker.pid == pid
        log = worker.log_text()
    dropped = json_events(log, "broker.message_dropped")
    assert sorted(e["exception"] for e in dropped) == sorted(GARBAGE.values())
    assert {(e["level"], e["queue"]) for e in dropped} == {("error", settings.queue)}
    assert "Unrecoverable error" not in log
    assert "not json at all" not in log
    assert "this is not base64" not in log
    counted = redis_client.hget(keys.metrics_dropped(settings.key_prefix), settings.queue)
    assert counted == str(len(GARBAGE)).encode()
    assert shop_sandbox.state.order(SHOP.ref, "G1") is not None
