"""``cartsync demo`` run as a user runs it: end to end, and interrupted, leaving nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cartsync.worker.redisserver import answers, free_port

pytestmark = pytest.mark.slow

DEMO = [sys.executable, "-c", "from cartsync.worker.cli import main; main()", "demo"]


def demo_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env["CARTSYNC_REDIS_URL"] = redis_url
    # A production-looking setting in the shell must not leak into the demo.
    env["CARTSYNC_SEQURA_URL"] = "https://live.sequrapi.com"
    return env


def alive(pid: int) -> bool:
    """True while a process with this id runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return True


def group_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def started(output: str) -> tuple[int, int]:
    """(worker pid, sandbox port) as the demo announces them."""
    pid = re.search(r"celery -A cartsync.worker worker, pid (\d+)", output)
    port = re.search(r"the local sandbox at http://127\.0\.0\.1:(\d+)", output)
    assert pid, output
    assert port, output
    return int(pid.group(1)), int(port.group(1))


def assert_nothing_left(pid: int, sandbox_port: int) -> None:
    deadline = time.monotonic() + 5
    while (alive(pid) or not group_empty(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), f"the demo's worker (pid {pid}) still runs"
    assert group_empty(pid), "a process of the worker's group still runs"
    assert not port_open(sandbox_port), "the sandbox still listens"


def test_demo_runs_end_to_end_in_a_users_redis(redis_url, redis_client):
    """The demo delivers, dead-letters the 409, fixes and replays it, and cleans up after itself."""
    redis_client.set("cartsync:keep-me", "user data")
    result = subprocess.run(
        DEMO, env=demo_env(redis_url), capture_output=True, text=True, timeout=90, check=False
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for line in (
        "DEMO-1001 v1: delivered (HTTP 200",
        "DEMO-1003 v2: delivered (HTTP 200",
        "DEMO-1004  shipped nothing; unshipped nothing; cancelled (customer_cancel)",
        "DEMO-1006 v1: dead_lettered (HTTP 409, conflict",
        "exceeds the original total 8350 by more than 15%",
        "$ cartsync dlq replay",
        "1 replayed, 0 refused, 0 failed.",
        "seQura now holds for DEMO-1006: shipped nothing; unshipped [shirt XL + jacket]",
        "Nothing the demo started is running.",
    ):
        assert line in output, f"missing {line!r} in:\n{output}"
    assert output.count("v1: delivered") >= 5
    pid, port = started(output)
    assert_nothing_left(pid, port)
    assert redis_client.get("cartsync:keep-me") == b"user data"
    assert list(redis_client.scan_iter(match="cartsync-demo*")) == []


def test_demo_starts_an_embedded_redis_when_none_answers():
    """With no Redis at CARTSYNC_REDIS_URL the demo runs on an embedded one and stops it."""
    missing = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        DEMO, env=demo_env(missing), capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    embedded = re.search(r"started an embedded one at (redis://127\.0\.0\.1:\d+/0)", result.stdout)
    assert embedded, result.stdout
    assert "1 replayed" in result.stdout
    assert not answers(embedded.group(1))
    assert_nothing_left(*started(result.stdout))


@pytest.mark.parametrize(
    ("after", "statuses"),
    [
        # While the worker starts: always in time to interrupt.
        ("celery -A cartsync.worker worker, pid", {130}),
        # While updates are delivered: the demo may just manage to finish first.
        ("The worker delivers", {0, 130}),
    ],
)
def test_ctrl_c_stops_everything(redis_url, redis_client, after, statuses):
    """Ctrl-C at any point stops the worker and the sandbox and removes the demo's keys."""
    process = subprocess.Popen(
        DEMO, env=demo_env(redis_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = ""
        while after not in seen:
            line = process.stdout.readline()
            assert line, f"the demo ended before {after!r}:\n{seen}"
            seen += line
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = seen + rest
    assert process.returncode in statuses, output
    if process.returncode == 130:
        assert "interrupted: stopping everything the demo started" in output
    assert "Nothing the demo started is running." in output
    assert_nothing_left(*started(output))
    assert list(redis_client.scan_iter(match="cartsync-demo*")) == []
