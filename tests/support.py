"""Running real Celery workers in tests: start, wait until ready, SIGKILL, stop.

The worker process itself is cartsync's (worker/processes.py), the one the demo and the
benchmarks run too; this module adds the environment and settings a test gives it, and the
fixtures of the pipeline tests, which send as :data:`~tests.sandbox_fixtures.SHOP`. A test
module takes those by naming them at its top::

    sandbox, env, producer = support.sandbox, support.env, support.producer
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cartsync.config.settings import Settings
from cartsync.sandbox.server import SandboxServer
from cartsync.tasks.producer import Producer
from cartsync.worker.processes import WorkerProcess, json_events, wait_for
from tests.sandbox_fixtures import SHOP

__all__ = [
    "FAST_RETRIES",
    "WorkerProcess",
    "env",
    "json_events",
    "metrics_command",
    "producer",
    "running_worker",
    "sandbox",
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


# The pipeline tests' fixtures: they send as SHOP, and take these under these names (they
# stand in for the camisasonline sandbox of tests/sandbox_fixtures.py).


@pytest.fixture
def sandbox(shop_sandbox: SandboxServer) -> SandboxServer:
    """The sandbox that knows SHOP and creates orders on their first update."""
    return shop_sandbox


@pytest.fixture
def env(sandbox: SandboxServer, redis_client: object) -> dict[str, str]:
    """The environment of a worker sending as SHOP to ``sandbox``, on an emptied test Redis."""
    return worker_env(
        sandbox.url, CARTSYNC_SEQURA_USERNAME=SHOP.username, CARTSYNC_SEQURA_PASSWORD=SHOP.password
    )


@pytest.fixture
def producer(settings: Settings) -> Producer:
    """The producer a shop's back end runs, enqueueing as SHOP on the test Redis."""
    return Producer(
        settings.with_overrides(sequra_username=SHOP.username, sequra_password=SHOP.password)
    )


@contextlib.contextmanager
def metrics_command(redis_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real ``cartsync metrics`` on a free port of loopback: (its /metrics URL, the
    process). Killed on the way out if the test has not stopped it."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from cartsync.worker.cli import main; main()",
         "metrics", "--host", "127.0.0.1", "--port", "0"],
        env=dict(os.environ, CARTSYNC_REDIS_URL=redis_url), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        yield match.group(0), process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
