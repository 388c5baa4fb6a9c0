"""The Celery worker refuses to start on a wrong setting: one line naming it, no traceback,
and no attempt to reach a broker that the setting does not describe."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def test_a_unix_socket_redis_url_reaches_kombu_in_its_own_form():
    """redis-py reads ``unix://PATH?db=N``, kombu ``redis+socket://PATH?virtual_host=N``."""
    from cartsync.worker.celeryapp import broker_url

    assert broker_url("unix:///run/r.sock?db=2") == "redis+socket:///run/r.sock?virtual_host=2"
    assert broker_url("unix:///run/r.sock") == "redis+socket:///run/r.sock"
    assert broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_worker_publishes_through_a_unix_socket(tmp_path, settings):
    """With CARTSYNC_REDIS_URL a unix:// URL, a task published by the pump lands in the
    queue of that Redis, in that database."""
    import redis

    from cartsync.worker.celeryapp import make_publisher
    from cartsync.worker.redisserver import server_binary

    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [server_binary(), "--port", "0", "--unixsocket", str(socket_path), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"unix://{socket_path}?db=2"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        publish = make_publisher(settings.with_overrides(redis_url=url, queue="unix-test"))
        publish(['{"update_id": "u"}'])
        assert client.llen("unix-test") == 1
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
