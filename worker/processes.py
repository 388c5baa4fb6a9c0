"""Child processes cartsync starts and must always stop, ``celery -A cartsync.worker worker``
above all: the demo runs one, the tests and the benchmarks run many.

Decisions:

- A child starts in a session (so a process group) of its own: stopping it stops whatever it
  started too (the prefork pool's children), and a Ctrl-C meant for the parent's terminal
  does not reach it behind the parent's back. It is ended by its process group id, never by
  name.
- Its output goes to a log file, which is how the parent learns that a worker is ready and
  what it did (its JSON log events). The file outlives the process, for a post-mortem, until
  :meth:`ChildProcess.remove_log`.
- Stopping is SIGTERM to the group (Celery's warm shutdown), SIGKILL after a timeout, then
  SIGKILL to whatever is left in the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from cartsync.worker.errors import CartsyncError

#: Seconds a worker may take to say it is ready.
START_TIMEOUT_S = 30.0
#: Seconds a warm shutdown may take before the process group is killed.
STOP_TIMEOUT_S = 15.0
#: What Celery logs (``celery@host ready.``) once a worker consumes its queue.
READY_MARK = " ready."
#: Characters of a worker's log quoted when it fails to start.
LOG_TAIL = 3000
#: Linux's prctl option that signals a child when its parent dies (PR_SET_PDEATHSIG).
_PR_SET_PDEATHSIG = 1


class WorkerExited(CartsyncError):
    """A worker process ended before it was ready; the message quotes its log."""


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
    on_fail: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll ``condition`` until it is truthy and return its value; TimeoutError after
    ``timeout`` seconds, with the tail of ``on_fail()`` (a log, say) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- log ---\n{on_fail()[-5000:]}" if on_fail else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def json_events(text: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``text`` whose ``event`` is ``event``, in the order written."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
    return found


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies (even by
    SIGKILL), so that a killed demo leaves no worker behind."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """A child process in a process group of its own, its output in a log file."""

    def __init__(self, name: str, *, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        handle, path = tempfile.mkstemp(prefix=f"cartsync-{name}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(
        self, args: list[str], env: Mapping[str, str], *, die_with_parent: bool = False
    ) -> int:
        """Start ``args``, appending to the log; returns the process id (and group id)."""
        linux = sys.platform.startswith("linux")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent and linux else None,
            )
        return self.process.pid

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def kill(self) -> None:
        """SIGKILL the process group, as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the process group; SIGKILL it if the process has not ended within
        ``timeout`` seconds (the constructor's by default), and whatever is left of the
        group once it has."""
        if self.process is None:
            return
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout_s if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.process = None

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


class WorkerProcess(ChildProcess):
    """``celery -A APP worker`` (cartsync's ``cartsync.worker`` app unless told otherwise)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        app: str = "cartsync.worker",
        pool: str = "threads",
        concurrency: int = 4,
        queue: str | None = None,
        loglevel: str = "INFO",
        hostname: str | None = None,
        name: str = "worker",
        die_with_parent: bool = False,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(name, stop_timeout_s=stop_timeout_s)
        self.env = dict(env)
        self.app, self.pool, self.concurrency = app, pool, concurrency
        self.queue, self.loglevel, self.hostname = queue, loglevel, hostname
        self.die_with_parent = die_with_parent
        #: Times started so far (a killed worker may be started again).
        self.starts = 0
        self._started_at = 0
        self._events_read = 0

    def command(self) -> list[str]:
        """The command line of the next start."""
        args = [sys.executable, "-m", "celery", "-A", self.app, "worker"]
        args += ["--pool", self.pool, "--concurrency", str(self.concurrency)]
        args += ["--without-gossip", "--without-mingle", "--loglevel", self.loglevel]
        if self.hostname:
            args += ["--hostname", self.hostname]
        if self.queue:
            args += ["--queues", self.queue]
        return args

    def start(self, *, wait: bool = True, timeout: float = START_TIMEOUT_S) -> Self:
        """Start the worker; with ``wait``, return once it is ready.

        Raises WorkerExited if it ends first, TimeoutError (quoting the log) if it is not
        ready within ``timeout`` seconds.
        """
        self._started_at = self.log_size()
        command = self.command()
        self.starts += 1
        self.spawn(command, self.env, die_with_parent=self.die_with_parent)
        if wait:
            wait_for(
                lambda: self.ready() or not self.running,
                timeout=timeout,
                what=f"the {self.app} worker to start",
                on_fail=self.log_text,
            )
            if not self.running:
                raise WorkerExited(f"the {self.app} worker exited:\n{self.log_text()[-LOG_TAIL:]}")
        return self

    def ready(self) -> bool:
        """Whether the worker said it is ready since it was last started."""
        with open(self.log_path, "rb") as log:
            log.seek(self._started_at)
            return READY_MARK in log.read().decode("utf-8", errors="replace")

    def events(self, event: str = "order_update") -> list[dict[str, Any]]:
        """The worker's JSON log events named ``event``, in the order written."""
        return json_events(self.log_text(), event)

    def new_events(self, event: str = "order_update") -> list[dict[str, Any]]:
        """:meth:`events` logged since the last call (complete lines only)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._events_read)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._events_read += len(complete)
        return json_events(complete.decode("utf-8", errors="replace"), event)
