"""The Python API in a host application's process: cartsync's log follows the host's logging
configuration, never prints to the host's standard output on its own, and stays redacted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ENQUEUE = """
from cartsync.tasks.examples import two_item_body
from cartsync.tasks.producer import enqueue_order_update

body = two_item_body()
body["order"]["gift_message"] = "MARKER for Ana"
enqueue_order_update(body)
"""


def run_host(redis_url: str, program: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update(
        CARTSYNC_REDIS_URL=redis_url,
        CARTSYNC_SEQURA_USERNAME="u",
        CARTSYNC_SEQURA_PASSWORD="p",
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_an_unconfigured_host_gets_nothing_on_its_output(redis_url, redis_client):
    """A host that configured no logging sees no line from a successful enqueue, on standard
    output or standard error (the standard library drops info lines)."""
    done = run_host(redis_url, ENQUEUE)
    assert (done.stdout, done.stderr) == ("", "")


def test_a_host_that_configures_logging_gets_cartsyncs_lines_its_way(redis_url, redis_client):
    """With the host's own logging set-up (here basicConfig at info on stdout), the enqueue
    line arrives through logger cartsync.producer in the host's format, without payload
    values."""
    configure = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, "
        'format="%(name)s|%(message)s")\n'
    )
    done = run_host(redis_url, configure + ENQUEUE)
    [line] = done.stdout.splitlines()
    assert line.startswith("cartsync.producer|enqueue outcome=enqueued merchant=s1 ")
    assert "MARKER" not in done.stdout + done.stderr
