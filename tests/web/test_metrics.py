"""The HTTP service's counters: requests by route and status, and the enqueue latency
histogram, in the service's ``/metrics`` and in ``cartsync metrics``."""

from __future__ import annotations

import re
import signal

import pytest
import requests

from tests.sandbox_fixtures import SHOP
from tests.support import metrics_command, wait_for
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

    with metrics_command(redis_url) as (url, process):
        served = requests.get(url, timeout=5).text
        assert counted(served, ACCEPTED) == 6
        assert counted(served, "cartsync_http_enqueue_seconds_count") == 6
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
