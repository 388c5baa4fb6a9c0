"""A loopback TCP proxy to Redis that can stop passing anything on: a Redis that stops
answering, for this service's tests alone (pausing the shared Redis would stall everyone)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from cartsync.worker.redisserver import free_port

#: Seconds between two looks at whether a stalled proxy may go on.
STALL_POLL_S = 0.01


class StallingProxy:
    """Forwards every connection to ``host:port``; while stalled, holds what either side
    sends (and passes it on once resumed), as a Redis hanging in a long command would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.stalled = threading.Event()
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                while self.stalled.is_set() and not self._closing.is_set():
                    time.sleep(STALL_POLL_S)
                if not data:
                    break
                sink.sendall(data)
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        for each in self._sockets:
            with contextlib.suppress(OSError):
                each.close()
