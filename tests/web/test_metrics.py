"""The HTTP service's counters: requests by route and status, and the enqueue latency
histogram, in the service's ``/metrics`` and in ``cartsync metrics``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from tests.sandbox_fixtures import SHOP
from tests.support import wait_for
from tests.web.bodies import shipped

pytestmark = pytest.mark.slow

ACCEPTED = 'cartsync_http_requests_total{method="POST",route="/v1/updates",status="202"}'
REFUSED = 'cartsync_http_requests_total{method="POST",route="/v1/updates",status="401"}'


def counted(text: str, series: str) -> float:
    match = re.search(re.escape(series) + r" (\S+)", text)
    return float(match.group(1)) if match else 0.0


def test_requests_and_enqueue_latency_are_counted_across_processes(web, web_server, redis_url):
    """Requests answered by either gunicorn process are counted by route and status (written
    to Redis by each process's own thread), and each accepted update once in the enqueue
    histogram; ``cartsync metrics`` serves the same series."""
    for n in range(6):
        assert web.post("/v1/updates", shipped(SHOP.ref, f"M{n}")).status_code == 202
    assert web.post("/v1/updates", shipped(SHOP.ref, "M9"), token="nobody").status_code == 401

    def scraped() -> str | None:
        text = web.get("/metrics").text
        return text if counted(text, ACCEPTED) == 6 and counted(text, REFUSED) == 1 else None

    text = wait_for(scraped, what="the counts of both processes")
    assert counted(text, "cartsync_http_enqueue_seconds_count") == 6
    assert counted(text, 'cartsync_http_enqueue_seconds_bucket{le="+Inf"}') == 6
    assert counted(text, "cartsync_http_enqueue_seconds_sum") > 0

    env = dict(os.environ, CARTSYNC_REDIS_URL=redis_url)
    process = subprocess.Popen(
        [sys.executable, "-c", "from cartsync.worker.cli import main; main()",
         "metrics", "--host", "127.0.0.1", "--port", "0"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", process.stderr.readline())
        assert match
        served = requests.get(match.group(0), timeout=5).text
        assert counted(served, ACCEPTED) == 6
        assert counted(served, "cartsync_http_enqueue_seconds_count") == 6
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
