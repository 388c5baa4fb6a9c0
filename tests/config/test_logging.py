"""Logs are JSON lines or console text, and only allow-listed keys keep their values."""

import io
import json
import logging

import pytest
import structlog

from cartsync.config.logging import REDACTED, configure_logging, redact


@pytest.fixture(autouse=True)
def _restore_logging():
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers = handlers


def test_unknown_keys_are_redacted():
    """A key outside the allow-list never shows its value."""
    event = redact(None, "info", {"event": "x", "merchant": "m1", "customer_email": "a@b.c"})
    assert event == {"event": "x", "merchant": "m1", "customer_email": REDACTED}


def test_json_format_writes_one_object_per_line(settings):
    """With log_format json, each event is one JSON object with a timestamp and level."""
    out = io.StringIO()
    configure_logging(settings.with_overrides(log_format="json"), stream=out, cache=False)
    structlog.get_logger("t").info("order_update", outcome="delivered", body={"nin": "X"})
    record = json.loads(out.getvalue().strip().splitlines()[-1])
    assert record["outcome"] == "delivered"
    assert record["body"] == REDACTED
    assert record["level"] == "info"
    assert "timestamp" in record


def test_standard_library_logs_are_rendered_the_same_way(settings):
    """Celery's and kombu's log records come out as JSON too."""
    out = io.StringIO()
    configure_logging(settings.with_overrides(log_format="json"), stream=out, cache=False)
    logging.getLogger("celery.worker").warning("connection lost")
    record = json.loads(out.getvalue().strip().splitlines()[-1])
    assert record["event"] == "connection lost"
    assert record["logger"] == "celery.worker"
