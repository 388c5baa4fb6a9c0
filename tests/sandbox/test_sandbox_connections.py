"""The sandbox drops connections that send nothing, or stop half way through a request, and
keeps answering meanwhile: each such connection would otherwise hold a thread for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from cartsync.sandbox.server import SandboxServer
from tests.half_open import closed_by_server, open_connections

#: Connections of each kind a test opens.
MANY = 100


def test_idle_and_half_sent_connections_are_closed_and_the_server_keeps_answering():
    """Connections that never send a byte, stop in the middle of the request line or of the
    headers, or send a body shorter than their Content-Length, are all closed after the
    time-outs, their threads end, and the sandbox answers other clients all along."""
    baseline = threading.active_count()
    with SandboxServer(idle_timeout_s=1.0, request_timeout_s=0.5) as server:
        held = (
            open_connections(server.port, MANY, b"")
            + open_connections(server.port, MANY, b"PUT /merchants/m/ord")
            + open_connections(server.port, MANY, b"GET /_admin/health HTTP/1.1\r\nHost: x\r\n")
            + open_connections(
                server.port,
                MANY,
                b"POST /_admin/reset HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
            )
        )
        try:
            answer = requests.get(f"{server.url}/_admin/health", timeout=5)
            assert answer.json() == {"ok": True}
            started = time.monotonic()
            still_open = [sock for sock in held if not closed_by_server(sock, 5.0)]
            assert still_open == []
            assert time.monotonic() - started < 10
            deadline = time.monotonic() + 5
            while threading.active_count() > baseline + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert threading.active_count() <= baseline + 2  # the server's own thread, at most
            answer = requests.get(f"{server.url}/_admin/health", timeout=5)
            assert answer.json() == {"ok": True}
        finally:
            for sock in held:
                sock.close()


def test_a_kept_alive_connection_serves_requests_within_the_idle_time():
    """A pooled connection that pauses less than the idle time-out between requests is kept."""
    with (
        SandboxServer(idle_timeout_s=2.0, request_timeout_s=0.5) as server,
        requests.Session() as session,
    ):
        for _ in range(3):
            answer = session.get(f"{server.url}/_admin/health", timeout=5)
            assert answer.json() == {"ok": True}
            time.sleep(0.7)  # longer than the request time-out, shorter than the idle one
        assert server.state.stats()["connections"] == 1


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])  # noqa: S104
def test_listening_beyond_loopback_warns_that_the_admin_endpoints_are_open(host, warned):
    """`cartsync sandbox --host 0.0.0.0` says on stderr that anyone reaching the port can use
    the unauthenticated admin endpoints; on loopback it says nothing of the kind."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cartsync.sandbox", "--port", "0", "--host", host],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert "sandbox listening on" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    assert ("admin endpoints (/_admin/...) are unauthenticated" in errors) is warned
    assert "Traceback" not in errors
