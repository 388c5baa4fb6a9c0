"""Running real Celery workers in tests: start, wait until ready, SIGKILL, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


class WorkerProcess:
    """One ``celery -A cartsync.worker worker`` child process and its log file."""

    def __init__(self, env: dict[str, str], concurrency: int = 4, pool: str = "threads") -> None:
        self.env = env
        self.concurrency = concurrency
        self.pool = pool
        self.log_path = Path(tempfile.mkstemp(prefix="cartsync-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        offset = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "cartsync.worker",
                    "worker",
                    "--pool",
                    self.pool,
                    "--concurrency",
                    str(self.concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel",
                    "INFO",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: "ready" in self.log_text()[offset:] and "celery@" in self.log_text(),
            timeout=timeout,
            what="the worker to start",
            on_fail=self.log_text,
        )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, event: str = "order_update") -> list[dict[str, Any]]:
        """The worker's JSON log events named ``event``."""
        return json_events(self.log_text(), event)

    def kill(self) -> None:
        """SIGKILL the worker and everything it started, as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


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


def json_events(text: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``text`` whose ``event`` is ``event``, in the order written."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
    return found


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
    on_fail: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll ``condition`` until it is truthy; TimeoutError after ``timeout`` seconds, with the
    tail of ``on_fail()`` (a log, say) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- log ---\n{on_fail()[-5000:]}" if on_fail else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)
