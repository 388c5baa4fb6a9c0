"""Benchmark: validation + serialization of one Order Update body.

Run from the repository root::

    .venv/bin/python -m bench.validation [--runs 7] [--seconds 0.3]

For each payload it times ``wire_bytes(validate_update(body, options=...).body)``, the work
the producer does on every enqueue, and, as a yardstick, ``json.dumps(json.loads(raw))``
on the same bytes. Each run repeats the call for about ``--seconds``; the table shows the
median over ``--runs`` runs (at least 5) in microseconds per payload, and the ratio of the
two. Schemas are built before timing starts, as they are in a running producer.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Collection
from importlib.metadata import version
from typing import Any

from cartsync.tasks.examples import OPTIONS_A, OPTIONS_B, full_body_a, full_body_b, two_item_body
from cartsync.tasks.validation import validate_update, wire_bytes

#: Fewest runs whose median is reported.
MIN_RUNS = 5


def payloads() -> list[tuple[str, dict[str, Any], Collection[str]]]:
    """(label, body, contract options) for each benchmarked payload."""
    return [
        ("two items (product + handling)", two_item_body(), frozenset()),
        ("full PHP example, reference a", full_body_a(), OPTIONS_A),
        ("full PHP example, reference b", full_body_b(), OPTIONS_B),
    ]


def per_call_us(call: Callable[[], object], seconds: float) -> float:
    """Mean microseconds per call over a loop lasting about ``seconds``."""
    loops = 1
    while True:  # grow the loop until one pass is long enough to time reliably
        started = time.perf_counter()
        for _ in range(loops):
            call()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds / 10:
            break
        loops *= 2
    loops = max(1, int(loops * seconds / elapsed))
    started = time.perf_counter()
    for _ in range(loops):
        call()
    return (time.perf_counter() - started) / loops * 1e6


def median_us(call: Callable[[], object], runs: int, seconds: float) -> float:
    return statistics.median(per_call_us(call, seconds) for _ in range(runs))


def measure(runs: int, seconds: float) -> list[tuple[str, int, float, float]]:
    """(label, bytes, validate+serialize µs, json round trip µs) per payload."""
    rows = []
    for label, body, options in payloads():
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        validate_update(body, options=options)  # build the schemas before timing

        def ours(body: dict[str, Any] = body, options: Collection[str] = options) -> bytes:
            return wire_bytes(validate_update(body, options=options).body)

        def baseline(raw: bytes = raw) -> str:
            return json.dumps(json.loads(raw))

        rows.append(
            (label, len(raw), median_us(ours, runs, seconds), median_us(baseline, runs, seconds))
        )
    return rows


def table(rows: list[tuple[str, int, float, float]]) -> str:
    header = (
        f"{'payload':<32} {'bytes':>6} {'validate+serialize':>19} {'json loads+dumps':>17} "
        f"{'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for label, size, ours, baseline in rows:
        lines.append(
            f"{label:<32} {size:>6} {ours:>16.1f} µs {baseline:>14.1f} µs {ours / baseline:>5.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="runs per payload (median, >= 5)")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one run")
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}")
    if args.seconds <= 0:
        parser.error("--seconds must be greater than 0")
    print(
        f"Python {platform.python_version()} ({platform.machine()}), marshmallow "
        f"{version('marshmallow')}; median of {args.runs} runs of ~{args.seconds}s each"
    )
    print(table(measure(args.runs, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
