"""``python -m bench.http``: what the HTTP service costs, beside the Python API.

    python -m bench.http            # about a minute
    python -m bench.http --quick

Runs ``cartsync serve`` (one process per core, 8 threads each) against a Redis of its own
(append-only file, fsync every second) and measures, with no worker running (ingestion only):

- single-update latency (p50, p99) at a fixed rate, open loop: requests are sent on schedule
  whether or not earlier ones were answered, so a slow answer cannot hide the queueing it
  causes;
- the most single updates per second (closed loop, several client threads);
- the most updates per second in batches of ``BATCH`` (JSON arrays);
- the Python API (``Producer.enqueue`` in this process) at the same fixed rate and flat out.

The load generator runs on the same machine and takes CPU from the service: on a small
machine the figures are a floor.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import structlog

from bench.harness import machine, own_redis
from cartsync.config.producers import token_hash
from cartsync.config.settings import load_settings
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import Producer
from cartsync.worker.redisserver import free_port

MERCHANT, USERNAME, PASSWORD = "benchshop", "bench-api", "bench-pw"
TOKEN = "bench-token-0123456789abcdef"
#: Updates per batch request.
BATCH = 100
ITEMS = [Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)]


def body(n: int) -> dict[str, Any]:
    return fully_shipped(merchant=MERCHANT, order_ref=f"B{n}", items=ITEMS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fixed_rate(send: Callable[[int], object], rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of ``rate`` calls per second for ``seconds``, sent on schedule."""
    latencies: list[float] = []
    lock = threading.Lock()
    total = int(rate * seconds)

    def one(n: int, due: float) -> None:
        start = time.perf_counter()
        send(n)
        with lock:
            latencies.append((time.perf_counter() - start) * 1000)

    with ThreadPoolExecutor(max_workers=64) as pool:
        begin = time.perf_counter()
        for n in range(total):
            due = begin + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, n, due)
    return latencies


def flat_out(send: Callable[[int], int], threads: int, seconds: float) -> float:
    """Updates per second with ``threads`` closed-loop senders; ``send`` returns updates sent."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        n = index * 10_000_000
        while time.perf_counter() < stop:
            counts[index] += send(n)
            n += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def serve(redis_url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    producers = folder / "producers.toml"
    producers.write_text(
        f'[producers.bench]\ntoken_sha256 = "{token_hash(TOKEN)}"\nmerchants = ["*"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update(
        CARTSYNC_REDIS_URL=redis_url,
        CARTSYNC_SEQURA_USERNAME=USERNAME,
        CARTSYNC_SEQURA_PASSWORD=PASSWORD,
        CARTSYNC_PRODUCERS_FILE=str(producers),
        CARTSYNC_LOG_LEVEL="warning",
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from cartsync.worker.cli import main; main()", "serve",
         "--host", "127.0.0.1", "--port", str(port), "--batch-max", str(BATCH)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("cartsync serve did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate, updates/s")
    options = parser.parse_args(argv)
    # The in-process producer's one event per enqueue would be most of what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    seconds = 3.0 if options.quick else 8.0
    local = threading.local()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        found: requests.Session = local.session
        return found

    with own_redis() as redis_server, tempfile.TemporaryDirectory() as folder:
        process, url = serve(redis_server.url, Path(folder))
        try:

            def http_one(n: int) -> int:
                answer = session().post(url + "/v1/updates", json=body(n), headers=headers)
                assert answer.status_code == 202, answer.text
                return 1

            def http_batch(n: int) -> int:
                items = [body(n * BATCH + i) for i in range(BATCH)]
                answer = session().post(url + "/v1/updates/batch", json=items, headers=headers)
                assert answer.status_code == 200, answer.text
                return int(answer.json()["accepted"])

            http_one(-1)  # warm up each process's connection
            http_latency = fixed_rate(http_one, options.rate, seconds)
            http_single = flat_out(http_one, 8, seconds)
            http_batched = flat_out(http_batch, 4, seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)
        settings = load_settings({}).with_overrides(
            redis_url=redis_server.url, sequra_username=USERNAME, sequra_password=PASSWORD
        )
        producer = Producer(settings)

        def python_one(n: int) -> int:
            producer.enqueue(body(50_000_000 + n))
            return 1

        python_latency = fixed_rate(python_one, options.rate, seconds)
        python_single = flat_out(python_one, 4, seconds)

    print(f"machine: {machine().line()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'':38} {'HTTP':>12} {'Python API':>12}")
    for label, http, python in (
        (f"p50 at {options.rate:g}/s (ms)", statistics.median(http_latency),
         statistics.median(python_latency)),
        (f"p99 at {options.rate:g}/s (ms)", percentile(http_latency, 0.99),
         percentile(python_latency, 0.99)),
        ("most single updates/s", http_single, python_single),
    ):  # fmt: skip
        print(f"{label:38} {http:12.1f} {python:12.1f}")
    print(f"{f'most updates/s in batches of {BATCH}':38} {http_batched:12.1f} {'':>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
