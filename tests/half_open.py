"""Connections that a client opens and then leaves silent or half sent, as a slow or hostile
client would: for the tests of the servers cartsync runs (the sandbox, the metrics endpoint)."""

from __future__ import annotations

import socket


def open_connections(port: int, count: int, send: bytes) -> list[socket.socket]:
    """``count`` connections to ``port`` on loopback, each having sent ``send`` and no more."""
    made = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if send:
            sock.sendall(send)
        made.append(sock)
    return made


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes ``sock`` (an end of file, or a reset) within the time;
    whatever the server answers first is read and ignored."""
    sock.settimeout(within_s)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
