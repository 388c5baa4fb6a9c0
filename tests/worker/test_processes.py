"""The worker-process helpers the demo, the tests and the benchmarks share."""

import sys

import pytest

from cartsync.worker.processes import WorkerExited, WorkerProcess, json_events, wait_for


def test_json_events_keep_only_the_named_event_in_order():
    """Plain lines, broken JSON and other events are skipped; the named ones stay in order."""
    text = "\n".join(
        [
            "celery@host ready.",
            '{"event": "order_update", "n": 1}',
            '{"event": "other", "n": 2}',
            '{"event": "order_update", "n": ',
            '{"event": "order_update", "n": 3}',
        ]
    )
    assert [e["n"] for e in json_events(text, "order_update")] == [1, 3]


def test_wait_for_returns_the_first_truthy_value():
    """The condition's value is what the wait returns."""
    values = iter([0, None, "done"])
    assert wait_for(lambda: next(values), timeout=5, interval=0) == "done"


def test_wait_for_times_out_quoting_the_log():
    """A condition that never holds is a TimeoutError naming what was awaited and the log tail."""
    with pytest.raises(TimeoutError, match=r"(?s)the thing.*last words"):
        wait_for(lambda: False, timeout=0.05, what="the thing", on_fail=lambda: "last words")


def test_a_worker_that_exits_at_once_is_reported_with_its_log():
    """A worker app that cannot load ends before it is ready: WorkerExited, not a long wait."""
    worker = WorkerProcess({"PATH": "", "PYTHONPATH": ":".join(sys.path)}, app="no_such_app_x")
    try:
        with pytest.raises(WorkerExited, match="no_such_app_x"):
            worker.start(timeout=30)
    finally:
        worker.stop()
        worker.remove_log()
