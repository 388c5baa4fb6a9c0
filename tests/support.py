"""Running real Celery workers in tests: start, wait until ready, SIGKILL, stop.

The worker process itself is cartsync's (worker/processes.py), the one the demo and the
benchmarks run too; this module adds the environment and settings a test gives it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from cartsync.worker.processes import WorkerProcess, json_events, wait_for

__all__ = [
    "FAST_RETRIES",
    "WorkerProcess",
    "json_events",
    "running_worker",
    "wait_for",
    "worker_env",
]

#: Settings that make retries and the schedule fast enough for a test.
FAST_RETRIES = {
    "CARTSYNC_RETRY_BASE_S": "0.05",
    "CARTSYNC_RETRY_CAP_S": "0.5",
    "CARTSYNC_RETRY_MAX_ATTEMPTS": "6",
    "CARTSYNC_RETRY_MIN_WINDOW_S": "0",
    "CARTSYNC_SCHEDULER_INTERVAL_S": "0.05",
    "CARTSYNC_SCHEDULER_LEASE_S": "3",
    "CARTSYNC_CONNECT_TIMEOUT_S": "1",
    "CARTSYNC_READ_TIMEOUT_S": "2",
    "CARTSYNC_LOCK_TTL_S": "4",
    "CARTSYNC_VISIBILITY_TIMEOUT_S": "5",
    "CARTSYNC_LOG_FORMAT": "json",
}


def worker_env(sandbox_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker talking to the test Redis and a sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env["CARTSYNC_REDIS_URL"] = os.environ["CARTSYNC_REDIS_URL"]
    env["CARTSYNC_SEQURA_URL"] = sandbox_url
    env.update(FAST_RETRIES)
    env.update(extra)
    return env


@contextlib.contextmanager
def running_worker(env: dict[str, str], concurrency: int = 4) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, concurrency=concurrency).start()
    try:
        yield worker
    finally:
        worker.stop()
