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
import dataclasses
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from click.testing import CliRunner

from bench.harness import machine, process_cpu_s
from bench.letters import letter
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetterStore, Filters, Reason, changes
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
#: Letters parked, in one process, to time parking with and without the error-text index.
PARK_SAMPLE = 3000
#: Letters above which the full-scan ``--grep`` (no index) is not timed: it reads every letter.
SCAN_TIMED_UP_TO = 100_000
#: Texts no letter, or very few, hold: what the error-text index answers without a scan.
RARE_GREPS = (
    ("absent word", "no such text anywhere"),
    ("rare amount, whole", "add up to 12345 "),
    ("rare amount, partial", "is 1234"),
)


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


def park_cost(url: str, merchants: int, runs: int) -> dict[str, float]:
    """Microseconds per letter to park :data:`PARK_SAMPLE` letters in one process, with the
    error-text index and with it left out (the park script given no terms), median of
    ``runs`` alternating runs, each into a prefix of its own that is deleted afterwards."""
    client = redis.Redis.from_url(url)
    now = time.time()
    made = [
        letter(
            random.Random(-n), n, total=PARK_SAMPLE, now=now, spread_s=86400.0, merchants=merchants
        )
        for n in range(PARK_SAMPLE)
    ]
    plain = changes.place_of
    timed: dict[str, list[float]] = {"with": [], "without": []}
    for run in range(runs):
        for variant in ("with", "without"):
            prefix = f"parkcost{run}{variant}"
            if variant == "without":
                changes.place_of = lambda le: dataclasses.replace(plain(le), terms=())  # type: ignore[assignment]
            try:
                store = DeadLetterStore(client, prefix)
                batch = [
                    dataclasses.replace(le, update_id=f"{prefix}-{le.update_id}") for le in made
                ]
                started = time.perf_counter()
                for offset in range(0, PARK_SAMPLE, FILL_BATCH):
                    store.park_many(batch[offset : offset + FILL_BATCH])
                timed[variant].append((time.perf_counter() - started) * 1e6 / PARK_SAMPLE)
            finally:
                changes.place_of = plain
            for key in client.scan_iter(keys.pattern(prefix), count=1000):
                client.unlink(key)
    client.close()
    return {variant: round(statistics.median(t), 1) for variant, t in timed.items()}


def text_index_bytes(client: redis.Redis) -> int:
    """Bytes of Redis (MEMORY USAGE) held by the error-text index's keys."""
    total = 0
    for key in client.scan_iter(keys.pattern(keys.dlq_text(PREFIX)), count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
    return total


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
    parser.add_argument(
        "--replay-runs", type=int, default=3, help="bulk replays timed, one merchant each"
    )
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
    index_per_letter = text_index_bytes(client) / args.letters
    print(f"  error-text index: {index_per_letter:,.0f} B per letter", flush=True)
    park_us = park_cost(url, args.merchants, args.runs)
    print(f"  park, one process: {park_us} us per letter (with/without the index)", flush=True)

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
        ("list --grep (common text; walks until 50 match)", ("list", "--grep", "The diff is 4")),
        *(
            (f"list --grep, {what} (index)", ("list", "--grep", needle))
            for what, needle in RARE_GREPS
        ),
    ]
    rows = []
    for name, command in commands:
        call = cli_call(env, *command)
        call()  # warm: imports, script loading
        median, low, high = median_ms(call, args.runs)
        target = TARGET_MS.get(command[0], DEFAULT_TARGET_MS) if "grep" not in name else None
        if "(index)" in name:
            target = DEFAULT_TARGET_MS
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

    # The same rare texts without the index (as a store parked before it answers them): a
    # full scan, so timed once, and only on smaller stores.
    scan_rows = []
    if args.letters <= SCAN_TIMED_UP_TO:
        client.delete(store.names.text_ready)
        for what, needle in RARE_GREPS[:1]:
            scan_ms = median_ms(cli_call(env, "list", "--grep", needle), 1)[0]
            scan_rows.append({"command": f"list --grep, {what} (full scan)", "ms": round(scan_ms)})
            print(f"  {scan_rows[-1]['command']}: {scan_ms:,.0f} ms (1 run)", flush=True)
    started = time.perf_counter()
    cli_call(env, "reindex")()
    reindex_s = time.perf_counter() - started
    print(f"  dlq reindex: {reindex_s:.1f} s", flush=True)

    # Count a filter, as replay and drop do before asking.
    count_ms = median_ms(lambda: store.count(_filters(merchant)), args.runs)[0]

    replays = []
    for run in range(args.replay_runs):
        replay_merchant = f"merchant{run:03d}"
        replay_count = int(client.zcard(store.index_key(None, None, replay_merchant)))
        print(f"Replaying {replay_count:,} letters of {replay_merchant} ...", flush=True)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(redis_pid)
        started = time.perf_counter()
        # From outside, as an operator runs it: Python's start-up included.
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from cartsync.worker.cli import main; main()",
                "dlq",
                "replay",
                "--merchant",
                replay_merchant,
                "--yes",
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        replay_s = time.perf_counter() - started
        cpu_after = cpu_seconds(redis_pid)
        replays.append(
            {
                "letters": replay_count,
                "s": round(replay_s, 2),
                "rate_per_s": round(replay_count / replay_s),
                "redis_cpu_ms_per_letter": round(
                    (cpu_after[1] - cpu_before[1]) * 1000 / replay_count, 3
                ),
                "load_average_before": round(load_before, 2),
            }
        )
        print(
            f"  {done.stdout.strip().splitlines()[-1]}  in {replay_s:.1f} s: "
            f"{replay_count / replay_s:,.0f}/s",
            flush=True,
        )
        assert store.count(_filters(replay_merchant)) == 0, done.stdout
    rates = [r["rate_per_s"] for r in replays]

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
        "text_index_bytes_per_letter": round(index_per_letter),
        "park_us_per_letter": park_us,
        "grep_full_scan": scan_rows,
        "reindex_s": round(reindex_s, 1),
        "replays": replays,
        "replay_rate_per_s": round(statistics.median(rates)),
        "replay_rate_range": [min(rates), max(rates)],
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
    for row in r["grep_full_scan"]:
        print(f"`{row['command']}`: {row['ms']:,} ms (one run)")
    print(f"`dlq reindex` of every letter: {r['reindex_s']} s")
    rate_ok = r["replay_rate_per_s"] >= TARGET_REPLAY_RATE
    low, high = r["replay_rate_range"]
    print(
        f"Bulk replay, {len(r['replays'])} runs of one merchant's letters each, as a process of "
        f"its own: median {r['replay_rate_per_s']:,}/s [{low:,}-{high:,}] "
        f"(target >= {TARGET_REPLAY_RATE:,.0f}: {mark(rate_ok)})"
    )
    for run in r["replays"]:
        print(
            f"  {run['letters']:,} letters in {run['s']} s = {run['rate_per_s']:,}/s, "
            f"Redis CPU {run['redis_cpu_ms_per_letter']} ms per letter, "
            f"load average before {run['load_average_before']}"
        )
    park = r["park_us_per_letter"]
    print(
        f"Error-text index: {r['text_index_bytes_per_letter']:,} B of Redis per letter; parking "
        f"(one process) {park['with']} us per letter with it, {park['without']} without"
    )
    memory_ok = r["memory_ratio"] <= TARGET_MEMORY_RATIO
    print(
        f"Redis used_memory_rss after the fill: {r['used_memory_rss_bytes'] / r['letters']:,.0f} B "
        "per letter (the allocator's pages, Redis' own baseline included)"
    )
    print(
        f"Memory: {r['redis_bytes_per_letter']:,} B of Redis per letter for "
        f"{r['payload_json_mean_bytes']:,} B of payload JSON = {r['memory_ratio']} "
        f"(target <= {TARGET_MEMORY_RATIO}: {mark(memory_ok)})"
    )


if __name__ == "__main__":
    sys.exit(main())
