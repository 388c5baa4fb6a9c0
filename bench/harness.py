"""The moving parts of a benchmark or chaos run, each a real process on this machine.

- :class:`SandboxProcess`: ``python -m cartsync.sandbox`` on a free loopback port, with faults;
- :class:`WorkerProcess`: ``celery -A <app> worker`` with an environment, its log in a file,
  its CPU time read with psutil (children included, for the prefork pool);
- :func:`own_redis`: an embedded Redis of the run's own, so that the Redis a developer runs
  (and the test suite uses) is neither disturbed nor measured.

Every process is started in its own session and ended by its process id, never by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs among the dependencies
import redis

from cartsync.sandbox.admin import SandboxAdmin
from cartsync.worker.redisserver import EmbeddedRedis, free_port

# The same polling and log parsing as the tests (bench already borrows their example bodies).
from tests.support import json_events, wait_for

#: Seconds a worker or the sandbox may take to come up.
START_TIMEOUT_S = 30.0

#: Merchant account every benchmark and chaos run uses (the sandbox knows it).
MERCHANT, USERNAME, PASSWORD = "benchshop", "benchshop-api", "bench-pw-1"


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cores: int
    cpu: str
    python: str
    system: str

    def line(self) -> str:
        return f"{self.cores} cores ({self.cpu}), Python {self.python}, {self.system}"


def machine() -> Machine:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return Machine(
        cores=os.cpu_count() or 1,
        cpu=cpu,
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
    )


@contextlib.contextmanager
def own_redis(*, persistent: bool = True, fsync: str = "everysec") -> Iterator[EmbeddedRedis]:
    """An embedded Redis for one run, append-only file on unless told otherwise."""
    server = EmbeddedRedis(persistent=persistent, fsync=fsync).start()
    try:
        yield server
    finally:
        server.stop()


def commands_processed(client: redis.Redis) -> int:
    """Commands the Redis server has run since it started (INFO ``total_commands_processed``)."""
    return int(client.info("stats")["total_commands_processed"])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live children; 0 when it is gone."""
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return float(total)
    except psutil.Error:
        return 0.0


class _Child:
    """A child process in its own session, its output in a log file."""

    def __init__(self, name: str) -> None:
        fd, path = tempfile.mkstemp(prefix=f"cartsync-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid) if self.running else 0.0

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL the process group, as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


class SandboxProcess(_Child):
    """``python -m cartsync.sandbox`` with one merchant account, auto-creating orders."""

    def __init__(self, **faults: Any) -> None:
        """``faults``: the sandbox's command-line options without dashes (``latency_ms=100``)."""
        super().__init__("sandbox")
        self.port = free_port()
        self.faults = faults

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SandboxProcess:
        args = [sys.executable, "-m", "cartsync.sandbox", "--port", str(self.port), "--auto-create"]
        args += ["--account", f"{MERCHANT}:{USERNAME}:{PASSWORD}"]
        for name, value in self.faults.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self._spawn(args, dict(os.environ))
        self.admin = SandboxAdmin(self.url)
        self.admin.wait_ready(START_TIMEOUT_S)
        return self


class WorkerProcess(_Child):
    """``celery -A <app> worker`` (cartsync's ``worker`` app, or the naive one)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str = "cartsync.worker",
        pool: str = "threads",
        concurrency: int = 32,
        queue: str | None = None,
        loglevel: str = "INFO",
        name: str = "worker",
    ) -> None:
        super().__init__(name)
        self.env = env
        self.app, self.pool, self.concurrency = app, pool, concurrency
        self.queue, self.loglevel = queue, loglevel
        self.starts = 0

    def start(self, *, wait: bool = True) -> WorkerProcess:
        offset = self.log_path.stat().st_size
        args = [sys.executable, "-m", "celery", "-A", self.app, "worker"]
        args += ["--pool", self.pool, "--concurrency", str(self.concurrency)]
        args += ["--without-gossip", "--without-mingle", "--loglevel", self.loglevel]
        args += ["--hostname", f"{self.app}-{os.getpid()}-{id(self)}-{self.starts}@%h"]
        if self.queue:
            args += ["--queues", self.queue]
        self.starts += 1
        self._spawn(args, self.env)
        if wait:
            wait_for(
                lambda: " ready." in self.log_text()[offset:] or not self.running,
                timeout=START_TIMEOUT_S,
                what=f"{self.app} worker to start",
            )
            if not self.running:
                raise RuntimeError(f"the {self.app} worker exited:\n{self.log_text()[-3000:]}")
        return self

    def events(self, event: str = "order_update") -> list[dict[str, Any]]:
        """The JSON log events named ``event``, in the order written."""
        return json_events(self.log_text(), event)


def cartsync_env(redis_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """A worker's or producer's environment: this run's Redis and sandbox, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update(
        CARTSYNC_REDIS_URL=redis_url,
        CARTSYNC_SEQURA_URL=sandbox_url,
        CARTSYNC_SEQURA_USERNAME=USERNAME,
        CARTSYNC_SEQURA_PASSWORD=PASSWORD,
        CARTSYNC_LOG_FORMAT="json",
    )
    env.update(extra)
    return env
