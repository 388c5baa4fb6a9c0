"""The metrics endpoint drops silent and half-sent connections, and answers scrapes meanwhile:
each connection holds a thread, and prometheus_client's own server never lets one go."""

from __future__ import annotations

import threading
import time

import requests
from prometheus_client import CollectorRegistry, Counter

from cartsync.worker.cli.metrics import start_metrics_server
from tests.half_open import closed_by_server, open_connections

#: Connections of each kind the test opens.
MANY = 100


def test_idle_and_half_sent_scrapes_are_dropped_and_the_endpoint_keeps_answering():
    """Connections that send nothing, or stop in the request line or the headers, are closed
    after the request time-out, their threads end, and scrapes are answered all along."""
    registry = CollectorRegistry()
    Counter("cartsync_test", "A counter.", registry=registry).inc()
    baseline = threading.active_count()
    server, thread = start_metrics_server("127.0.0.1", 0, registry, request_timeout_s=0.5)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    held = (
        open_connections(server.server_port, MANY, b"")
        + open_connections(server.server_port, MANY, b"GET /metr")
        + open_connections(server.server_port, MANY, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    )
    try:
        assert "cartsync_test_total 1.0" in requests.get(url, timeout=5).text
        assert [sock for sock in held if not closed_by_server(sock, 5.0)] == []
        deadline = time.monotonic() + 5
        while threading.active_count() > baseline + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= baseline + 1  # the server's own thread
        assert "cartsync_test_total 1.0" in requests.get(url, timeout=5).text
    finally:
        for sock in held:
            sock.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
