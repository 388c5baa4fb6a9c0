"""Logs are JSON lines or console text, and only allow-listed keys keep their values."""

import io
import json
import logging

import pytest
import structlog

from cartsync.config.logging import REDACTED, configure_logging, get_logger, redact


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
    get_logger("cartsync.t").info("order_update", outcome="delivered", body={"nin": "X"})
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


def _caught() -> ZeroDivisionError:
    """An exception as a handler keeps it, logged later, outside its ``except`` block (as
    Celery logs a failed task's)."""
    try:
        raise ZeroDivisionError("the dividend was zero")
    except ZeroDivisionError as exc:
        return exc


def test_a_traceback_survives_the_redaction(settings):
    """An event logged with exc_info keeps its traceback, formatted into the safe
    ``exception`` key before the allow-list runs (run first, it would redact exc_info away)."""
    out = io.StringIO()
    configure_logging(settings.with_overrides(log_format="json"), stream=out, cache=False)
    get_logger("cartsync.t").error("task_failed", exc_info=_caught())
    record = json.loads(out.getvalue().strip().splitlines()[-1])
    assert "Traceback" in record["exception"]
    assert "ZeroDivisionError" in record["exception"]


def test_a_traceback_of_another_library_survives_the_redaction(settings):
    """Celery's records with a traceback (a task failing unexpectedly) keep it too."""
    out = io.StringIO()
    configure_logging(settings.with_overrides(log_format="json"), stream=out, cache=False)
    exc = _caught()
    logging.getLogger("celery.app.trace").error("Task failed", exc_info=exc)
    record = json.loads(out.getvalue().strip().splitlines()[-1])
    assert record["event"] == "Task failed"
    assert "ZeroDivisionError" in record["exception"]


def test_cartsync_loggers_redact_whatever_handler_writes_them():
    """Without configure_logging (a host application's process), cartsync's events still
    reach the standard library redacted, and a plain formatter shows them as key=value text."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    host = logging.getLogger("cartsync")
    host.addHandler(handler)
    try:
        get_logger("cartsync.producer").warning(
            "enqueue", outcome="enqueued", merchant="shop 1", body={"nin": "X1234567Z"}
        )
    finally:
        host.removeHandler(handler)
    line = out.getvalue().strip()
    assert line == (
        'WARNING cartsync.producer enqueue outcome=enqueued merchant="shop 1" '
        f"body={REDACTED}"
    )


def test_cartsync_loggers_ignore_the_hosts_structlog_configuration():
    """A host that configured structlog for itself neither gets cartsync's events through its
    processors (which would not redact them) nor has its configuration changed."""
    seen = []

    def host_processor(logger, method_name, event_dict):
        seen.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[host_processor])
    before = structlog.get_config()
    get_logger("cartsync.producer").error("enqueue", body={"nin": "X1234567Z"})
    structlog.get_logger("host").error("host_event")
    assert [event["event"] for event in seen] == ["host_event"]
    assert structlog.get_config() == before
