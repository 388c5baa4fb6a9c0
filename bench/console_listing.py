"""The console's dead letters page at a million letters: how long each listing takes to
answer, grouped by order, grouped by error, filtered, on the first page and deep down.

    python -m bench.console_listing                     # 1,000,000 letters: ~15 minutes
    python -m bench.console_listing --letters 100000    # a quicker look

It starts an embedded Redis of its own (never the one at CARTSYNC_REDIS_URL; it is stopped,
and its data gone, at the end), fills it through the store's own park script with the
dead-letter benchmark's synthetic letters (``bench.letters``, about 2 KB of payload each),
:data:`VERSIONS` letters per order as a conflicting order leaves them (interleaved), then asks the
console's HTTP app for each page ``--runs`` times through Flask's test client (the page's
whole work, templates and Redis round trips included, without a network hop) and reports
the median.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis

from bench.harness import machine
from bench.letters import letter
from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.config.settings import load_settings
from cartsync.worker.deadletters import DeadLetterStore, Reason
from cartsync.worker.redisserver import EmbeddedRedis

#: Letters parked per pipeline while filling.
FILL_BATCH = 1000
#: Days the synthetic letters' deaths are spread over.
SPREAD_DAYS = 90
#: Letters per order: the versions a conflicting order leaves (5 to 6 in a chaos run).
VERSIONS = 4
#: What a page should answer in at a million letters (milliseconds, median).
TARGET_MS = 200.0
PREFIX = "cartsync"
#: A key long enough for the console; this benchmark's own, used nowhere else.
SECRET_KEY = "bench-console-listing-secret-key-0123456789"


def fill_range(url: str, start: int, stop: int, total: int, now: float, merchants: int) -> None:
    """Park letters ``start`` to ``stop``. Orders are interleaved, as in real life: of
    ``total / VERSIONS`` orders, letter ``i`` is a version of order ``i % orders``, so the
    fifty letters of a page belong to fifty orders (the most work for grouping by order) and
    an order's versions lie far apart in time."""
    client = redis.Redis.from_url(url)
    store = DeadLetterStore(client, PREFIX)
    spread = SPREAD_DAYS * 86400.0
    orders = max(1, total // VERSIONS)
    for offset in range(start, stop, FILL_BATCH):
        batch = []
        for index in range(offset, min(stop, offset + FILL_BATCH)):
            order = index % orders
            made = letter(
                random.Random(index),
                index,
                total=total,
                now=now,
                spread_s=spread,
                merchants=merchants,
            )
            order_ref = f"ORD-{order:08d}"
            made.payload["order"]["merchant_reference"]["order_ref_1"] = order_ref
            # Every version of an order belongs to one merchant.
            made.payload["order"]["merchant"]["id"] = merchant = f"merchant{order % merchants:03d}"
            batch.append(
                dataclasses.replace(
                    made, order_ref=order_ref, merchant=merchant, version=index // orders + 1
                )
            )
        store.park_many(batch)
    client.close()


def fill(url: str, total: int, merchants: int, processes: int) -> float:
    """Fill the store; the seconds it took."""
    now = time.time()
    bounds = [total * n // processes for n in range(processes + 1)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.starmap(
            fill_range,
            [(url, bounds[n], bounds[n + 1], total, now, merchants) for n in range(processes)],
        )
    return time.perf_counter() - started


def timed(get: Callable[[], Any], runs: int) -> tuple[float, float, float]:
    """(median, min, max) milliseconds of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        get()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def console_client(url: str, folder: str) -> Any:
    """A Flask test client of the HTTP app with the console, as a proxy-named viewer."""
    from cartsync.worker.web.app import create_app

    settings = load_settings({}).with_overrides(
        redis_url=url,
        key_prefix=PREFIX,
        console_trusted_header="X-Forwarded-User",
        console_secret_key=SECRET_KEY,
        console_secure_cookie=False,
    )
    merchants = MerchantDirectory(
        single=MerchantAccount(ref="", username="bench", password="bench-pw")
    )
    app = create_app(settings, merchants=merchants)
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_USER"] = "bench"
    return client


def _member(rows: Any) -> str:
    value = rows[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console_listing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--letters", type=int, default=1_000_000, help="letters to park")
    parser.add_argument("--merchants", type=int, default=50, help="distinct merchants")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per page (>= 5)")
    parser.add_argument("--fill-processes", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5 (figures are medians)")
    if args.letters < 1000:
        parser.error("--letters must be at least 1000")
    server = EmbeddedRedis().start()
    try:
        return run(server, args)
    finally:
        server.stop()


def run(server: EmbeddedRedis, args: argparse.Namespace) -> int:
    url = server.url
    client = redis.Redis.from_url(url)
    store = DeadLetterStore(client, PREFIX)
    print(f"Filling {args.letters:,} letters ({VERSIONS} per order) ...", flush=True)
    fill_s = fill(url, args.letters, args.merchants, args.fill_processes)
    print(f"  filled in {fill_s:.0f} s ({args.letters / fill_s:,.0f} letters/s)", flush=True)

    merchant = f"merchant{min(7, args.merchants - 1):03d}"
    total = int(client.zcard(store.all_key))
    # Cursors nine tenths of the way down, newest first: of every letter, and of one
    # merchant's conflicts.
    deep = _member(client.zrange(store.all_key, total // 10, total // 10))
    conflicts = store.index_key(Reason.CONFLICT.value, None, merchant)
    merchant_count = int(client.zcard(conflicts))
    deep_filtered = _member(client.zrange(conflicts, merchant_count // 10, merchant_count // 10))
    filtered = {"reason": "conflict", "merchant": merchant}
    pages: list[tuple[str, dict[str, str]]] = [
        ("grouped by order, page 1", {}),
        (f"grouped by order, page at 90% depth of {total:,}", {"cursor": deep}),
        ("grouped by error signature", {"group": "signature"}),
        ("not grouped, page 1", {"group": "none"}),
        ("filtered (reason, merchant), grouped by order, page 1", filtered),
        (
            f"filtered, page at 90% depth of {merchant_count:,}",
            {**filtered, "cursor": deep_filtered},
        ),
        ("filtered by error signature", {**filtered, "group": "signature"}),
        ("text search (unindexed: walks until 50 match)", {"q": "The diff is 4"}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        browser = console_client(url, folder)
        for name, params in pages:
            path = "/console/letters" + (f"?{urlencode(params)}" if params else "")

            def get(path: str = path) -> None:
                answer = browser.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path} answered {answer.status_code}")
                # A page that found no letters would time nothing worth knowing.
                if b"/console/letters/" not in answer.data:
                    raise RuntimeError(f"{path} lists no letter")

            get()  # warm: templates, scripts
            median, low, high = timed(get, args.runs)
            rows.append(
                {
                    "page": name,
                    "query": params,
                    "median_ms": round(median, 1),
                    "min_ms": round(low, 1),
                    "max_ms": round(high, 1),
                }
            )
            mark = "" if median <= TARGET_MS else "  (over the target)"
            print(
                f"  {name}: median {median:.1f} ms (min {low:.1f}, max {high:.1f}){mark}",
                flush=True,
            )
    results = {
        "letters": args.letters,
        "versions_per_order": VERSIONS,
        "machine": machine().line(),
        "load_average": round(os.getloadavg()[0], 2),
        "fill_s": round(fill_s, 1),
        "target_ms": TARGET_MS,
        "runs": args.runs,
        "pages": rows,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
