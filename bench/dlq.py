"""The dead-letter store at a million letters: how fast on-call commands answer, how fast a
bulk replay goes, and how much memory a letter costs.

    python -m bench.dlq                    # 1,000,000 letters: ~10 minutes, ~3 GB of memory
    python -m bench.dlq --letters 50000    # a quick look

It starts an embedded Redis of its own (never the one at CARTSYNC_REDIS_URL), fills it with
synthetic letters of about 2 KB of payload each (``bench.letters``) through the store's own
park script, then times each command ``--runs`` times and reports the median. Commands run
in-process through click's test runner: the figures are the command's own work, Redis round
trips included, without Python's start-up (the same ~0.3 s for every command). The replay
goes through the real producer (validation, ledger, schedule) into that Redis.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from click.testing import CliRunner

from bench.harness import machine, process_cpu_s
from bench.letters import letter
from cartsync.worker.deadletters import DeadLetterStore, Filters, Reason
from cartsync.worker.redisserver import EmbeddedRedis

#: Letters parked per pipeline while filling.
FILL_BATCH = 1000
#: Days the synthetic letters' deaths are spread over.
SPREAD_DAYS = 90
#: Targets from the issue, in milliseconds (commands) and letters per second (replay).
TARGET_MS = {"stats": 100.0}
DEFAULT_TARGET_MS = 50.0
TARGET_REPLAY_RATE = 1000.0
TARGET_MEMORY_RATIO = 1.5
PREFIX = "cartsync"


def fill_range(url: str, start: int, stop: int, total: int, now: float, merchants: int) -> int:
    """Park letters ``start`` to ``stop``; returns the bytes of their payloads' JSON."""
    client = redis.Redis.from_url(url)
    store = DeadLetterStore(client, PREFIX)
    payload_bytes = 0
    spread = SPREAD_DAYS * 86400.0
    for offset in range(start, stop, FILL_BATCH):
        batch = []
        for index in range(offset, min(stop, offset + FILL_BATCH)):
            rng = random.Random(index)
            made = letter(rng, index, total=total, now=now, spread_s=spread, merchants=merchants)
            payload_bytes += len(
                json.dumps(made.payload, ensure_ascii=False, separators=(",", ":")).encode()
            )
            batch.append(made)
        store.park_many(batch)
    client.close()
    return payload_bytes


def fill(url: str, total: int, merchants: int, processes: int) -> tuple[float, float]:
    """Fill the store; returns (seconds taken, mean payload JSON bytes)."""
    now = time.time()
    bounds = [total * n // processes for n in range(processes + 1)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        sizes = pool.starmap(
            fill_range,
            [(url, bounds[n], bounds[n + 1], total, now, merchants) for n in range(processes)],
        )
    return time.perf_counter() - started, sum(sizes) / total


def median_ms(action: Callable[[], Any], runs: int) -> tuple[float, float, float]:
    """(median, min, max) milliseconds of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def cli_call(env: dict[str, str], *args: str) -> Callable[[], str]:
    from cartsync.worker.cli import cli

    runner = CliRunner(env=env)

    def call() -> str:
        result = runner.invoke(cli, ["dlq", *args], catch_exceptions=False)
        if result.exit_code != 0:
            raise RuntimeError(f"dlq {' '.join(args)} failed: {result.output[-500:]}")
        return result.output

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dlq", description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=1_000_000, help="letters to park")
    parser.add_argument("--merchants", type=int, default=50, help="distinct merchants")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (>= 5)")
    parser.add_argument("--fill-processes", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5 (figures are medians)")

    server = EmbeddedRedis().start()
    try:
        return run(server, args)
    finally:
        server.stop()


def cpu_seconds(redis_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by this process and its finished children, and by Redis."""
    mine = os.times()
    return (
        mine.user + mine.system + mine.children_user + mine.children_system,
        process_cpu_s(redis_pid),
    )


def run(server: EmbeddedRedis, args: argparse.Namespace) -> int:
    url = server.url
    assert server.process is not None
    redis_pid = server.process.pid
    client = redis.Redis.from_url(url)
    store = DeadLetterStore(client, PREFIX)
    baseline = int(client.info("memory")["used_memory"])
    print(f"Filling {args.letters:,} letters ({args.merchants} merchants) ...", flush=True)
    fill_s, payload_mean = fill(url, args.letters, args.merchants, args.fill_processes)
    memory = client.info("memory")
    per_letter = (int(memory["used_memory"]) - baseline) / args.letters
    print(f"  filled in {fill_s:.0f} s ({args.letters / fill_s:,.0f} letters/s)", flush=True)

    env = {
        "CARTSYNC_REDIS_URL": url,
        "CARTSYNC_KEY_PREFIX": PREFIX,
        "CARTSYNC_SEQURA_USERNAME": "bench",
        "CARTSYNC_SEQURA_PASSWORD": "bench-pw",
        "CARTSYNC_MERCHANTS_FILE": "",
    }
    merchant = f"merchant{min(7, args.merchants - 1):03d}"
    deep_key = store.index_key(Reason.CONFLICT.value, None, merchant)
    deep_count = int(client.zcard(deep_key))
    # The cursor nine tenths of the way down this merchant's conflicts, newest first.
    deep_cursor = _member(client.zrange(deep_key, deep_count // 10, deep_count // 10))
    now = time.time()
    window_since = now - SPREAD_DAYS * 86400 / 2
    window_until = window_since + 3600
    some_id = _member(client.zrange(store.all_key, args.letters // 3, args.letters // 3))
    order_ref = f"ORD-{args.letters // 2:08d}"
    iso = "%Y-%m-%dT%H:%M:%SZ"
    commands: list[tuple[str, tuple[str, ...]]] = [
        ("list (first page of 50)", ("list",)),
        (
            f"list --merchant --reason, page at 90% depth of {deep_count:,}",
            (
                "list",
                "--merchant",
                merchant,
                "--reason",
                "conflict",
                "--cursor",
                deep_cursor,
            ),
        ),
        (
            "list --since/--until (one hour, 45 days back)",
            (
                "list",
                "--since",
                time.strftime(iso, time.gmtime(window_since)),
                "--until",
                time.strftime(iso, time.gmtime(window_until)),
            ),
        ),
        ("list --order", ("list", "--order", order_ref)),
        ("list --status 503 --json", ("list", "--status", "503", "--json")),
        ("show", ("show", some_id)),
        ("stats", ("stats",)),
        ("list --grep (unindexed; scans until 50 match)", ("list", "--grep", "The diff is 4")),
    ]
    rows = []
    for name, command in commands:
        call = cli_call(env, *command)
        call()  # warm: imports, script loading
        median, low, high = median_ms(call, args.runs)
        target = TARGET_MS.get(command[0], DEFAULT_TARGET_MS) if "grep" not in name else None
        rows.append(
            {
                "command": name,
                "median_ms": round(median, 1),
                "min_ms": round(low, 1),
                "max_ms": round(high, 1),
                "target_ms": target,
            }
        )
        print(f"  {name}: median {median:.1f} ms (min {low:.1f}, max {high:.1f})", flush=True)

    # Count a filter, as replay and drop do before asking.
    count_ms = median_ms(lambda: store.count(_filters(merchant)), args.runs)[0]

    replay_merchant = "merchant000"
    replay_count = int(client.zcard(store.index_key(None, None, replay_merchant)))
    print(f"Replaying {replay_count:,} letters of {replay_merchant} ...", flush=True)
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(redis_pid)
    started = time.perf_counter()
    output = cli_call(env, "replay", "--merchant", replay_merchant, "--yes")()
    replay_s = time.perf_counter() - started
    cpu_after = cpu_seconds(redis_pid)
    replay_rate = replay_count / replay_s
    python_ms = (cpu_after[0] - cpu_before[0]) * 1000 / replay_count
    redis_ms = (cpu_after[1] - cpu_before[1]) * 1000 / replay_count
    print(f"  {output.strip().splitlines()[-1]}  in {replay_s:.1f} s: {replay_rate:,.0f}/s")
    assert store.count(_filters(replay_merchant)) == 0, output

    ratio = per_letter / payload_mean
    results = {
        "letters": args.letters,
        "machine": machine().line(),
        "fill_s": round(fill_s, 1),
        "payload_json_mean_bytes": round(payload_mean),
        "redis_bytes_per_letter": round(per_letter),
        "memory_ratio": round(ratio, 3),
        "used_memory_rss_bytes": int(memory["used_memory_rss"]),
        "commands": rows,
        "count_filter_ms": round(count_ms, 2),
        "replay_letters": replay_count,
        "replay_s": round(replay_s, 2),
        "replay_rate_per_s": round(replay_rate),
        "replay_cpu_ms_per_letter": {"python": round(python_ms, 3), "redis": round(redis_ms, 3)},
        "load_average_before": round(load_before, 2),
        "runs": args.runs,
    }
    print_report(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _member(rows: Any) -> str:
    """The one member a ZRANGE of one rank returned, as text."""
    value = rows[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _filters(merchant: str) -> Filters:
    return Filters(merchant=merchant)


def mark(ok: bool) -> str:
    return "yes" if ok else "NO"


def print_report(r: dict[str, Any]) -> None:
    print()
    print(f"Dead-letter store, {r['letters']:,} letters, on {r['machine']}")
    print(f"(medians of {r['runs']} runs; milliseconds)")
    print()
    print("| command | median | min | max | target | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for row in r["commands"]:
        target = row["target_ms"]
        met = "-" if target is None else mark(row["median_ms"] < target)
        shown = "-" if target is None else f"< {target:.0f}"
        print(
            f"| `{row['command']}` | {row['median_ms']} | {row['min_ms']} | {row['max_ms']} "
            f"| {shown} | {met} |"
        )
    print()
    print(f"Counting a filter's matches (replay/drop ask with it): {r['count_filter_ms']} ms")
    rate_ok = r["replay_rate_per_s"] >= TARGET_REPLAY_RATE
    print(
        f"Bulk replay: {r['replay_letters']:,} letters in {r['replay_s']} s = "
        f"{r['replay_rate_per_s']:,}/s (target >= {TARGET_REPLAY_RATE:,.0f}: {mark(rate_ok)})"
    )
    cpu = r["replay_cpu_ms_per_letter"]
    print(
        f"  CPU per replayed letter: {cpu['python']} ms in Python (replay processes: "
        f"validation, schedule, store) + {cpu['redis']} ms in Redis; "
        f"load average before the replay: {r['load_average_before']}"
    )
    memory_ok = r["memory_ratio"] <= TARGET_MEMORY_RATIO
    print(
        f"Memory: {r['redis_bytes_per_letter']:,} B of Redis per letter for "
        f"{r['payload_json_mean_bytes']:,} B of payload JSON = {r['memory_ratio']} "
        f"(target <= {TARGET_MEMORY_RATIO}: {mark(memory_ok)})"
    )


if __name__ == "__main__":
    sys.exit(main())
