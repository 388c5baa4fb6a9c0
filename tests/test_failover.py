"""A Redis failover under load, as a person runs it: ``python -m bench.failover``.

A master, two replicas and three Sentinels on loopback, the sandbox with faults, two producer
processes and two workers, all pointed at the Sentinels; the replication link is cut, then
the master is killed with SIGKILL and Sentinel promotes a replica. The harness is a program of
bench/, run here as a child process and read through its JSON report, so the tests never
import bench.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[1]


def test_with_replica_confirmation_a_failover_loses_and_reorders_nothing(tmp_path):
    """With CARTSYNC_REDIS_MIN_REPLICAS=1, every update a producer was told was accepted is
    known to the new master and ends delivered, parked or superseded; no order's history at
    the sandbox goes backwards; the producers and the workers carry on by themselves."""
    report_path = tmp_path / "failover.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.failover", "--min-replicas", "1", "--orders", "30",
         "--duration", "14", "--kill-at", "5", "--json", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=230, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (report,) = json.loads(report_path.read_text(encoding="utf-8"))
    assert not report["failures"], report["failures"]
    assert all(passed for _, passed, _ in report["checks"]), report["checks"]
    assert report["failover_s"] is not None
    assert report["forgotten"] == 0
    assert report["lost"] == []
    # The cut link made the replicas miss confirmations: some enqueues were answered
    # "unavailable" rather than accepted, and producers sent them again.
    assert report["unavailable_by"].get("ReplicasUnavailable", 0) >= 1
    # Both producers carried on by themselves: each had updates accepted by the new master.
    assert len(report["accepted_after_failover"]) == 2
    assert all(count > 0 for count in report["accepted_after_failover"]), report
