"""The moving parts of a benchmark or chaos run, each a real process on this machine.

- :class:`SandboxProcess`: ``python -m cartsync.sandbox`` on a free loopback port, with faults;
- :class:`WorkerProcess`: ``celery -A <app> worker`` with an environment, its log in a file,
  its CPU time read with psutil (children included, for the prefork pool); the process
  handling is cartsync's own (worker/processes.py), shared with the demo and the tests;
- :func:`own_redis`: an embedded Redis of the run's own, so that the Redis a developer runs
  (and the test suite uses) is neither disturbed nor measured.

Every process is started in its own session and ended by its process id, never by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs among the dependencies
import redis

from cartsync.sandbox.admin import SandboxAdmin
from cartsync.worker import processes
from cartsync.worker.processes import ChildProcess
from cartsync.worker.redisserver import EmbeddedRedis, free_port

#: Seconds a worker or the sandbox may take to come up.
START_TIMEOUT_S = 30.0

#: Merchant account every benchmark and chaos run uses (the sandbox knows it).
MERCHANT, USERNAME, PASSWORD = "benchshop", "benchshop-api", "bench-pw-1"


@dataclass(kw_only=True)
class CheckedRun:
    """What a run checked (name, passed, detail) and what made it fail outright: the verdict
    part of the chaos and failover reports (``bench/chaos.py``, ``bench/failover.py``)."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks) and not self.failures

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))

    def verdict_lines(self) -> list[str]:
        """One line per check and per failure, then the verdict."""
        lines = [f"  [{'ok' if passed else 'FAILED'}] {name}: {detail}"
                 for name, passed, detail in self.checks]  # fmt: skip
        lines += [f"  [FAILED] {failure}" for failure in self.failures]
        lines.append("all checks passed" if self.ok else "SOME CHECKS FAILED")
        return lines


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


class SandboxProcess(ChildProcess):
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
        self.spawn(args, dict(os.environ))
        self.admin = SandboxAdmin(self.url)
        self.admin.wait_ready(START_TIMEOUT_S)
        return self

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid) if self.running else 0.0


class WorkerProcess(processes.WorkerProcess):
    """``celery -A <app> worker`` (cartsync's ``worker`` app, or the naive one), 32 threads
    unless told otherwise, under a node name of its own at every start."""

    def __init__(self, env: dict[str, str], *, concurrency: int = 32, **options: Any) -> None:
        """``options`` as for cartsync's worker process (``app``, ``pool``, ``name``...)."""
        super().__init__(env, concurrency=concurrency, **options)

    def command(self) -> list[str]:
        node = f"{self.app}-{os.getpid()}-{id(self)}-{self.starts}@%h"
        return [*super().command(), "--hostname", node]

    def cpu_s(self) -> float:
        """CPU seconds of the worker and its pool's processes so far; 0 once it is stopped."""
        return process_cpu_s(self.pid) if self.running else 0.0


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
