"""A short run of the chaos harness, as a person runs it: ``python -m bench.chaos``.

Each run starts its own Redis, a faulty sandbox and workers, kills workers with SIGKILL while
updates flow, and checks that nothing was lost, reordered or leaked. The harness is a program
of bench/, run here as a child process and read through its JSON report, so the tests never
import bench.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]


def run_chaos(tmp_path: Path, *args: str) -> dict:
    """Run the harness with ``args``; its report, after checking that it passed."""
    report_path = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *args, "--json", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report: dict = json.loads(report_path.read_text(encoding="utf-8"))
    assert not report["failures"], report["failures"]
    assert all(passed for _, passed, _ in report["checks"]), report["checks"]
    return report


def test_workers_killed_under_faults_lose_and_reorder_nothing(tmp_path):
    """30 orders against 20 % 5xx, time-outs, drops, 429s and 409s, a worker SIGKILLed every
    5 s: every update ends delivered, superseded or dead-lettered, final states are the last
    enqueued ones, no history goes backwards, and the logs hold no traceback or personal data."""
    report = run_chaos(
        tmp_path, "--orders", "30", "--duration", "15", "--workers", "3", "--kill-every", "5",
        "--seed", "7",
    )
    assert report["kills"] >= 2
    assert report["accepted"] >= 30


def test_redis_crash_and_restart_midway_loses_nothing(tmp_path):
    """The same with Redis killed (SIGKILL) halfway and restarted on its append-only file."""
    report = run_chaos(
        tmp_path, "--orders", "20", "--duration", "12", "--workers", "2", "--kill-every", "5",
        "--restart-redis", "--seed", "8",
    )
    assert report["redis_restarts"] == 1
