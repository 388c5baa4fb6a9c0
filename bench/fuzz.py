"""Hostile input, counted: how many bodies were refused, accepted, and how many crashed anything.

    python -m bench.fuzz                  # 1,000 hostile bodies (a few minutes)
    python -m bench.fuzz --examples 5000

The bodies and the checks are those of ``tests/test_hostile_bodies.py``: hypothesis spoils a
valid update (NaN, huge integers, deep nesting, odd unicode, empty and colliding identifiers,
duplicate keys), feeds each through ``cartsync validate`` and ``cartsync enqueue``, and a real
worker then brings every accepted one to the sandbox. This program runs that test with more
examples, as a child process (bench/ does not import the tests), and prints its figures.
The run needs a Redis at ``CARTSYNC_REDIS_URL`` (``make`` starts an embedded one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_hostile_bodies.py"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=1000, help="hostile bodies to try")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "fuzz.json"
        env = dict(
            os.environ,
            CARTSYNC_FUZZ_EXAMPLES=str(args.examples),
            CARTSYNC_FUZZ_REPORT=str(report),
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        seconds = time.monotonic() - started
        if not report.exists():
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            print("fuzz: the run ended before it counted anything")
            return 1
        figures = json.loads(report.read_text(encoding="utf-8"))
    print(
        f"fuzz: {figures['cases']} hostile bodies in {seconds:.0f} s: "
        f"{figures['refused']} refused at the door, {figures['accepted']} accepted, "
        f"{figures['crashes']} crashes, {figures['disagreements']} disagreements between "
        f"validate and enqueue; every accepted one delivered or parked: "
        f"{'yes' if done.returncode == 0 else 'NO'}"
    )
    if done.returncode != 0:
        print(done.stdout[-4000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
