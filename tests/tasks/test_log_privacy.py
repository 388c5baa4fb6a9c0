"""No payload content, customer data or credential reaches a log line, whatever the outcome."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from cartsync.config.logging import configure_logging
from cartsync.sandbox.server import SandboxServer
from cartsync.tasks.order_update import process
from cartsync.tasks.producer import Producer
from cartsync.worker.runtime import Runtime
from cartsync.worker.schedule import member_of
from tests.support import running_worker, wait_for, worker_env

MERCHANT, USER, PASSWORD = "shop1", "MARKER-api-user", "MARKER-password-9f2"
#: Every marker below must be absent from every log line.
MARKERS = ("MARKER-", "1979-04-03", "X1234567Z", "+34600111222")


def marked_body(order_ref: str) -> dict:
    """A valid body whose personal and product fields all carry marker strings."""
    person = {
        "given_names": "MARKER-given",
        "surnames": "MARKER-surname",
        "company": "MARKER-co",
        "address_line_1": "MARKER-street 1",
        "address_line_2": "MARKER-floor",
        "postal_code": "08013",
        "city": "MARKER-city",
        "country_code": "ES",
        "phone": "+34600111222",
    }
    item = {
        "reference": "MARKER-ref",
        "name": "MARKER-product",
        "price_with_tax": 1000,
        "quantity": 1,
        "total_with_tax": 1000,
        "downloadable": False,
    }
    return {
        "order": {
            "merchant": {"id": MERCHANT},
            "merchant_reference": {"order_ref_1": order_ref},
            "unshipped_cart": {"currency": "EUR", "order_total_with_tax": 0, "items": []},
            "shipped_cart": {"currency": "EUR", "order_total_with_tax": 1000, "items": [item]},
            "delivery_address": person,
            "invoice_address": person,
            "customer": {
                "given_names": "MARKER-given",
                "surnames": "MARKER-surname",
                "email": "MARKER-mail@example.com",
                "date_of_birth": "1979-04-03",
                "nin": "X1234567Z",
                "logged_in": True,
                "language_code": "es",
            },
            "platform": {"name": "MARKER-platform", "version": "1", "uname": "MARKER-host"},
        }
    }


@pytest.fixture
def sandbox():
    with SandboxServer(accounts={MERCHANT: (USER, PASSWORD)}, auto_create=True) as server:
        yield server


@pytest.fixture
def captured():
    """Everything logged, rendered as JSON exactly as production would write it."""
    out = io.StringIO()
    handlers = logging.getLogger().handlers[:]
    yield out
    structlog.reset_defaults()
    logging.getLogger().handlers = handlers


def assert_no_markers(text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"{marker!r} reached the logs"


def test_every_outcome_logs_without_personal_data(settings, sandbox, captured):
    """Delivered, conflict, rejected, unauthorized, retrying, exhausted, invalid, superseded and
    duplicate outcomes all log, and none of their lines holds a marker or the password."""
    configured = settings.with_overrides(
        sequra_url=sandbox.url,
        sequra_username=USER,
        sequra_password=PASSWORD,
        retry_max_attempts=1,
        retry_min_window_s=0.0,
        log_format="json",
    )
    configure_logging(configured, stream=captured, cache=False)
    rt = Runtime(configured)
    producer = Producer(configured, client=rt.redis)
    scripts = {"ok": [], "conflict": [409], "rejected": [422], "denied": [401], "exhausted": [503]}
    for ref, script in scripts.items():
        sandbox.state.script(MERCHANT, ref, script)
        producer.enqueue(marked_body(ref))
    producer.enqueue(marked_body("older"))
    producer.enqueue(marked_body("older"))
    scheduled: list[bytes] = rt.redis.zrange(rt.schedule.key, 0, -1)  # type: ignore[assignment]
    queue = [member.decode() for member in scheduled]
    outcomes = [process(member, rt) for member in queue]
    outcomes.append(process(queue[0], rt))  # a redelivery of a delivered update
    invalid = dict(
        json.loads(queue[0]),
        body={"order": {"customer": {"nin": "X1234567Z"}}},
        update_id="bad",
        version=99,
    )
    outcomes.append(process(member_of(invalid), rt))
    assert outcomes == [
        "delivered",
        "dead_lettered",
        "dead_lettered",
        "dead_lettered",
        "dead_lettered",
        "superseded",
        "delivered",
        "duplicate",
        "dead_lettered",
    ]
    text = captured.getvalue()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert {e.get("reason") for e in events if e["event"] == "order_update"} >= {
        "conflict",
        "rejected",
        "unauthorized",
        "exhausted",
        "invalid",
    }
    assert_no_markers(text)
    rt.client.close()


@pytest.mark.slow
def test_worker_process_logs_hold_no_personal_data(sandbox, redis_client, settings):
    """A real worker's whole output (Celery's own lines included) holds no marker."""
    env = worker_env(
        sandbox.url,
        CARTSYNC_SEQURA_USERNAME=USER,
        CARTSYNC_SEQURA_PASSWORD=PASSWORD,
        CARTSYNC_RETRY_MAX_ATTEMPTS="2",
        CARTSYNC_LOG_LEVEL="debug",
    )
    sandbox.state.script(MERCHANT, "w-conflict", [409])
    sandbox.state.script(MERCHANT, "w-retry", [503, 500])
    producer = Producer(settings.with_overrides(sequra_username=USER, sequra_password=PASSWORD))
    with running_worker(env) as worker:
        for ref in ("w-ok", "w-conflict", "w-retry"):
            producer.enqueue(marked_body(ref))
        wait_for(lambda: len(worker.events()) >= 4, on_fail=worker.log_text)
        wait_for(
            lambda: any(
                e["outcome"] == "dead_lettered" and e["order_ref"] == "w-retry"
                for e in worker.events()
            ),
            on_fail=worker.log_text,
        )
    assert_no_markers(worker.log_text())
