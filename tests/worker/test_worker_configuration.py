"""A worker whose configuration is wrong does not start, and says why in one line."""

from __future__ import annotations

import os

import pytest

from cartsync.worker.processes import WorkerExited, WorkerProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "CARTSYNC_MERCHANTS_FILE",
            "/nonexistent/merchants.toml",
            "cartsync worker: merchants file /nonexistent/merchants.toml does not exist",
        ),
        (
            "CARTSYNC_RETRY_BASE_S",
            "soon",
            "cartsync worker: CARTSYNC_RETRY_BASE_S='soon' is not valid: expected a number",
        ),
    ],
)
def test_a_worker_with_a_configuration_mistake_stops_with_one_line(
    redis_url: str, variable: str, value: str, said: str
) -> None:
    """A broken merchants file or setting stops ``celery -A cartsync.worker worker`` before it
    takes any update (each of which would otherwise fail, one after the other), with one line
    naming the file or the variable and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update({"CARTSYNC_REDIS_URL": redis_url, "CARTSYNC_QUEUE": "never-consumed"})
    env[variable] = value
    worker = WorkerProcess(env)
    try:
        with pytest.raises(WorkerExited):
            worker.start(timeout=60)
        log = worker.log_text()
    finally:
        worker.stop()
        worker.remove_log()
    assert [line for line in log.splitlines() if line.strip()] == [said]
