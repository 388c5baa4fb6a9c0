"""``python -m bench`` (``make bench``): every benchmark, one table at the end.

    python -m bench            # the full run, a few minutes
    python -m bench --quick    # smaller counts, same shape (about a minute and a half)
    python -m bench --only throughput,producer
    python -m bench --only http   # the HTTP service (also alone: python -m bench.http)

Everything runs against a Redis of its own (append-only file on, fsync every second, the
usual production setting) and a sandbox process on loopback, whatever ``CARTSYNC_REDIS_URL``
says: a benchmark must neither disturb nor be disturbed by the Redis of the tests. The figures
depend on what else the machine is doing; the load average is printed next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench import http, redis_cost, scenarios
from bench.harness import SandboxProcess, machine, own_redis
from bench.throughput import Run, Summary, compare

PARTS = (
    "throughput", "latency", "coalescing", "producer", "delivery", "validation", "http",
    "redis-cost",
)  # fmt: skip

#: Pool, concurrency and worker processes tried against the 100 ms API.
LATENCY_GRID = (("threads", 32, 1), ("threads", 64, 1), ("threads", 32, 2), ("threads", 64, 2))


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def fmt_stat(summary: Summary, metric: Callable[[Run], float], digits: int) -> str:
    low, high = summary.spread(metric)
    return f"{summary.median(metric):.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark cartsync against a raw requests loop and a naive Celery task.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, same shape")
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--count", type=int, help="updates per throughput run")
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS)
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes for (b) and (c) in the throughput part (default: one per core, "
        "the recommended deployment)",
    )
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    quick = args.quick
    count = args.count or (600 if quick else 2000)
    figures: dict[str, Any] = {"machine": asdict(machine()), "load_before": os.getloadavg()}
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)

    info = machine()
    say(f"cartsync benchmark on {info.line()}")
    say(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.monotonic()
    with own_redis() as redis_server:
        url = redis_server.url
        if "throughput" in parts:
            say(f"\n[throughput] {args.runs} runs x {count} updates per variant")
            sandbox = SandboxProcess().start()
            try:
                summaries = compare(
                    url, sandbox, count=count, runs=args.runs, pool="threads", concurrency=32,
                    processes=args.processes, progress=say,
                )  # fmt: skip
            finally:
                sandbox.stop()
                sandbox.remove_log()
            a, b, c = (summaries[v] for v in "abc")

            def rate(r: Run) -> float:
                return r.rate

            c_over_a = c.median(rate) / a.median(rate)
            c_over_b = c.median(rate) / b.median(rate)
            names = {"a": "(a) raw requests", "b": "(b) naive Celery", "c": "(c) cartsync"}
            lines.append(
                f"Throughput, {count} updates per run, {args.runs} runs, "
                f"median [min-max]; workers for (b) and (c): {args.processes} process(es), "
                "threads, concurrency 32 each"
            )
            lines.append(f"  {'variant':<18} {'updates/s':>20} {'CPU s/1000 upd':>20} "
                         f"{'Redis cmd/upd':>20}")  # fmt: skip
            for v, s in summaries.items():
                lines.append(
                    f"  {names[v]:<18} {fmt_stat(s, rate, 0):>20} "
                    f"{fmt_stat(s, lambda r: r.cpu_per_1000, 2):>20} "
                    f"{fmt_stat(s, lambda r: r.commands_per_update, 1):>20}"
                )
            lines.append(
                f"  c/a = {c_over_a:.2f} (target >= 0.5: {verdict(c_over_a >= 0.5)}), "
                f"c/b = {c_over_b:.2f} (target >= 0.8: {verdict(c_over_b >= 0.8)})"
            )
            split = c.median(lambda r: r.producer_cpu_s * 1000 / r.updates)
            lines.append(
                f"  cartsync CPU per update: producer {split:.2f} ms, worker "
                f"{c.median(lambda r: r.worker_cpu_s * 1000 / r.updates):.2f} ms; naive: "
                f"producer {b.median(lambda r: r.producer_cpu_s * 1000 / r.updates):.2f} ms, "
                f"worker {b.median(lambda r: r.worker_cpu_s * 1000 / r.updates):.2f} ms"
            )
            figures["throughput"] = {v: [asdict(r) for r in s.runs] for v, s in summaries.items()}
            figures["ratios"] = {"c/a": c_over_a, "c/b": c_over_b}
            figures["worker_cpu_ms"] = c.median(lambda r: r.worker_cpu_s * 1000 / r.updates)
        if "latency" in parts:
            grid = LATENCY_GRID[2:3] if quick else LATENCY_GRID
            n = 1500 if quick else 4000
            say(f"\n[latency] sandbox answering in 100 ms, {n} updates per setting")
            results = []
            for pool, concurrency, processes in grid:
                run = scenarios.slow_api(
                    url, latency_ms=100, count=n, pool=pool, concurrency=concurrency,
                    processes=processes,
                )  # fmt: skip
                say(
                    f"  {pool} x{concurrency}, {processes} process(es): {run.drain_rate:.0f} "
                    f"updates/s draining, {run.end_to_end_rate:.0f} with the producer"
                )
                results.append(run)
            best = max(results, key=lambda r: r.drain_rate)
            lines.append(
                f"API answering in 100 ms (sandbox --latency-ms 100), {n} updates; workers "
                "draining a filled queue / producer and workers together on this machine"
            )
            for run in results:
                lines.append(
                    f"  pool {run.pool}, concurrency {run.concurrency}, {run.processes} worker "
                    f"process(es): {run.drain_rate:.0f} / {run.end_to_end_rate:.0f} updates/s, "
                    f"{run.cpu_per_1000:.2f} CPU s/1000"
                )
            reached = verdict(best.drain_rate >= 300)
            lines.append(
                f"  best: {best.pool} x{best.concurrency} in {best.processes} process(es), "
                f"{best.drain_rate:.0f} updates/s (target >= 300: {reached})"
            )
            figures["latency"] = [asdict(r) for r in results]
        if "coalescing" in parts:
            orders = 200 if quick else 1000
            say(f"\n[coalescing] {orders} orders x 20 updates")
            result = scenarios.coalescing(
                url, orders=orders, per_order=20, pool="threads", concurrency=32
            )
            lines.append(
                f"Coalescing: {orders} orders x 20 updates in a burst: "
                f"{result.calls_per_order:.2f} API calls per order (target <= 1.2: "
                f"{verdict(result.calls_per_order <= 1.2)}); final state != last enqueued for "
                f"{result.wrong_final_states} orders ({verdict(result.wrong_final_states == 0)}); "
                f"{result.superseded} superseded, {result.delivered} delivered"
            )
            figures["coalescing"] = asdict(result)
        if "producer" in parts:
            n = 2000 if quick else 10000
            say(f"\n[producer] {n} two-item updates")
            latency = scenarios.producer_latency(url, count=n)
            lines.append(
                f"Producer: {latency.count} two-item updates, enqueue latency (validation "
                f"included) p50 {latency.p50_ms:.2f} ms, p99 {latency.p99_ms:.2f} ms "
                f"(target < 5: {verdict(latency.p99_ms < 5)}), max {latency.max_ms:.1f} ms"
            )
            figures["producer"] = asdict(latency)
        if "delivery" in parts:
            n = 100 if quick else 300
            say(f"\n[delivery] {n} updates, 20 per second")
            trickle = scenarios.delivery_latency(url, count=n, rate_per_s=20.0)
            lines.append(
                f"Delivery: {trickle.count} updates at {trickle.rate_per_s:.0f}/s, enqueue to "
                f"the sandbox receiving the call: p50 {trickle.p50_ms:.1f} ms, p99 "
                f"{trickle.p99_ms:.1f} ms, max {trickle.max_ms:.1f} ms"
            )
            figures["delivery"] = asdict(trickle)
        if "validation" in parts:
            say("\n[validation]")
            validate_ms = scenarios.validation_cost()
            worker_ms = figures.get("worker_cpu_ms")
            line = f"Validation: validate_update {validate_ms:.3f} ms CPU per benchmark payload"
            if worker_ms:
                share = validate_ms / worker_ms
                line += (
                    f" of {worker_ms:.2f} ms worker CPU per update: {share:.1%} "
                    f"(target <= 10%: {verdict(share <= 0.10)})"
                )
                figures["validation_share"] = share
            else:
                line += " (run with throughput for the worker's share)"
            lines.append(line)
            figures["validate_ms"] = validate_ms
        if "http" in parts:
            say(
                "\n[http] cartsync serve beside the Python API and cartsync enqueue, at "
                f"{http.DEFAULT_RATE:g}/s"
            )
            found = http.run(
                url, rate=http.DEFAULT_RATE, seconds=3.0 if quick else 8.0, worker=True
            )
            lines.append(
                "HTTP ingestion (cartsync serve, one cartsync worker draining to the sandbox "
                "meanwhile), one run:"
            )
            lines.extend(f"  {line}" for line in found.lines())
            figures["http"] = asdict(found)
        if "redis-cost" in parts:
            say("\n[redis-cost]")
            lines += redis_cost.summary(redis_server, 600 if quick else 2000, say)
    figures["load_after"] = os.getloadavg()
    figures["seconds"] = time.monotonic() - started
    say("\n" + "=" * 100)
    say(f"cartsync benchmark on {info.line()}")
    say(
        "load average before/after: "
        + " ".join(f"{x:.2f}" for x in figures["load_before"])
        + " / "
        + " ".join(f"{x:.2f}" for x in figures["load_after"])
        + f"; took {figures['seconds']:.0f} s"
    )
    for line in lines:
        say(line)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
