"""The Celery worker refuses to start on a wrong setting: one line naming it, no traceback,
and no attempt to reach a broker that the setting does not describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: A Redis URL nothing answers at, for the cases whose mistake lies elsewhere.
CLOSED = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CARTSYNC_RETRY_CAP_S": "nan"}, "CARTSYNC_RETRY_CAP_S"),
        # Empty, Celery would fall back to AMQP on localhost and retry it a hundred times.
        ({"CARTSYNC_REDIS_URL": ""}, "CARTSYNC_REDIS_URL"),
        ({"CARTSYNC_SEQURA_URL": "http://live.sequrapi.com"}, "CARTSYNC_SEQURA_URL"),
        ({"CARTSYNC_MERCHANTS_FILE": "/nonexistent/merchants.toml"}, "merchants.toml"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_a_wrong_setting_stops_the_worker_in_one_line(env, named, tmp_path):
    """`celery -A cartsync.worker worker` exits non-zero at once, its only output one line
    naming the wrong setting."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("celery")), "-A", "cartsync.worker", "worker",
         "--pool", "solo"],
        env={**base, "CARTSYNC_REDIS_URL": CLOSED, **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cartsync worker: ")
    assert named in line
