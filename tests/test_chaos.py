"""A short run of the chaos harness (``python -m bench.chaos`` runs the long one on demand).

Each run starts its own Redis, a faulty sandbox and three workers, kills workers with SIGKILL
while updates flow, and checks that nothing was lost, reordered or leaked.
"""

import pytest

from bench.chaos import ChaosConfig, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_workers_killed_under_faults_lose_and_reorder_nothing():
    """30 orders against 20 % 5xx, time-outs, drops, 429s and 409s, a worker SIGKILLed every
    5 s: every update ends delivered, superseded or dead-lettered, final states are the last
    enqueued ones, no history goes backwards, and the logs hold no traceback or personal data."""
    report = run_chaos(ChaosConfig(orders=30, duration_s=15, workers=3, kill_every_s=5, seed=7))
    assert report.ok, report.text()
    assert report.kills >= 2
    assert report.accepted >= 30


def test_redis_crash_and_restart_midway_loses_nothing():
    """The same with Redis killed (SIGKILL) halfway and restarted on its append-only file."""
    config = ChaosConfig(
        orders=20, duration_s=12, workers=2, kill_every_s=5, restart_redis=True, seed=8
    )
    report = run_chaos(config)
    assert report.ok, report.text()
    assert report.redis_restarts == 1
