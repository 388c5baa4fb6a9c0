"""A Redis master, its replicas and three Sentinels, each a ``redis-server`` child process on
loopback: the failover test and benchmark (``python -m bench.failover``) run cartsync against
it and SIGKILL the master.

Each server runs in a directory of its own, without persistence (``--save ''``, no
append-only file): what survives a failover here is what replication carried, which is what
is measured. Replicas sync diskless and at once (Redis 7 waits 5 s by default). The Sentinels
declare a master down after ``down_after_ms`` and may fail over again after
``failover_timeout_ms``; they agree with a quorum of two.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from cartsync.worker.errors import BrokerUnavailable
from cartsync.worker.redisserver import (
    STARTUP_TIMEOUT_S,
    answers,
    free_port,
    server_binary,
    stop_server,
)

#: The name the Sentinels know the master by.
MASTER_NAME = "cartsync"
#: Sentinels that must agree that the master is down.
QUORUM = 2


class Relay:
    """A TCP relay on loopback between the replicas and the master: the replication link,
    which :meth:`cut` breaks as a network partition would.

    Once cut, what the master sends (the writes it has acknowledged) is dropped instead of
    forwarded, while the replicas' acknowledgements still reach the master; nothing is ever
    forwarded again on a connection that was cut. Without it, on loopback, a replica is never
    more than microseconds behind and a kill loses nothing: the kernel has already handed it
    everything the master wrote.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.severed = threading.Event()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def cut(self) -> None:
        self.severed.set()

    def close(self) -> None:
        self.severed.set()
        with contextlib.suppress(OSError):
            self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            for src, dst, forward in ((up, down, True), (down, up, False)):
                threading.Thread(
                    target=self._pipe, args=(src, dst, forward), name="relay", daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_master: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_master and self.severed.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                with contextlib.suppress(OSError):
                    end.close()


class RedisNode:
    """One ``redis-server`` (a data node, or a Sentinel) on a free loopback port."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"cartsync-{role}-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> RedisNode:
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 (the child holds it)
        with log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not answers(self.url, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_text()[-2000:]
                self.stop()
                raise BrokerUnavailable(f"the {self.role} did not start:\n{tail}")
            time.sleep(0.05)
        return self

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text(encoding="utf-8", errors="replace")
        return ""

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        stop_server(self.process)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class DataNode(RedisNode):
    """A master, or a replica of ``master_port``."""

    def __init__(self, master_port: int | None = None) -> None:
        super().__init__("replica" if master_port else "master")
        self.master_port = master_port

    def command(self) -> list[str]:
        args = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", "", "--appendonly", "no"]
        args += ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        args += ["--daemonize", "no", "--loglevel", "notice"]
        if self.master_port:
            args += ["--replicaof", "127.0.0.1", str(self.master_port)]
        return args


class SentinelNode(RedisNode):
    """A Sentinel watching the master at ``master_port`` as :data:`MASTER_NAME`."""

    def __init__(self, master_port: int, *, down_after_ms: int, failover_timeout_ms: int) -> None:
        super().__init__("sentinel")
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 2",
                    "",
                ]
            ),
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        return [server_binary(), str(self.dir / "sentinel.conf"), "--sentinel"]


class SentinelGroup:
    """A master, ``replicas`` replicas and three Sentinels, started and watched together."""

    def __init__(
        self,
        *,
        replicas: int = 2,
        relayed: bool = True,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 60000,
    ) -> None:
        """``relayed``: the replicas replicate through :attr:`relay`, which can be cut, else
        straight from the master. ``failover_timeout_ms`` is long because it is also how soon
        a Sentinel points a relayed replica at the master directly."""
        self.master = DataNode()
        self.relay = Relay(self.master.port)
        upstream = self.relay.port if relayed else self.master.port
        self.replicas = [DataNode(upstream) for _ in range(replicas)]
        self.sentinels = [
            SentinelNode(
                self.master.port,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
            )
            for _ in range(3)
        ]

    @property
    def url(self) -> str:
        """``CARTSYNC_REDIS_URL`` for this group (with ``CARTSYNC_REDIS_SENTINEL_MASTER``)."""
        return ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)

    @property
    def data_nodes(self) -> list[DataNode]:
        return [self.master, *self.replicas]

    def start(self, timeout_s: float = 30.0) -> SentinelGroup:
        """Start every server; return once the replicas are in sync and every Sentinel knows
        the replicas and the other Sentinels (else a failover could not be agreed)."""
        try:
            for node in [*self.data_nodes, *self.sentinels]:
                node.start()
            deadline = time.monotonic() + timeout_s
            while not self.ready():
                if time.monotonic() > deadline:
                    raise BrokerUnavailable("the Sentinel group did not settle")
                time.sleep(0.2)
        except BaseException:
            self.remove()
            raise
        return self

    def ready(self) -> bool:
        try:
            info = self.master.client().info("replication")
            online = sum(
                1
                for key, value in info.items()
                if key.startswith("slave")
                and isinstance(value, dict)
                and value.get("state") == "online"
            )
            if online < len(self.replicas):
                return False
            for sentinel in self.sentinels:
                client = sentinel.client()
                known = _sentinel(client, "REPLICAS")
                others = _sentinel(client, "SENTINELS")
                if len(known) < len(self.replicas) or len(others) < len(self.sentinels) - 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def master_port(self) -> int | None:
        """The port of the master the Sentinels name now (None when none answers)."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                found = _sentinel(sentinel.client(), "GET-MASTER-ADDR-BY-NAME")
                if found:
                    return int(found[1])
        return None

    def node_at(self, port: int) -> DataNode:
        return next(node for node in self.data_nodes if node.port == port)

    def remove(self) -> None:
        self.relay.close()
        for node in [*self.sentinels, *self.data_nodes]:
            node.remove()


def _sentinel(client: redis.Redis, subcommand: str) -> Any:
    """``SENTINEL subcommand MASTER_NAME``'s raw reply (redis-py's sentinel_* methods answer
    True instead, unless asked otherwise, and carry no annotations)."""
    command: Any = client.execute_command
    return command("SENTINEL", subcommand, MASTER_NAME)
