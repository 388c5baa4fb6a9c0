"""``python -m bench.http``: what the HTTP service costs, beside the Python API and the CLI.

    python -m bench.http            # a few minutes
    python -m bench.http --quick
    python -m bench.http --no-worker   # ingestion alone

Runs ``cartsync serve`` (``cartsync serve``'s own defaults for this machine) against a Redis
of its own (append-only file, fsync every second), with one cartsync worker delivering to a
sandbox on loopback at the same time (as in production: the queue drains while it fills),
and measures, side by side in one run:

- single-update latency (p50, p99) at a fixed rate (``--rate``, 300 by default), open loop:
  requests are sent on schedule whether or not earlier ones were answered, so a slow answer
  cannot hide the queueing it causes;
- the most single updates per second (closed loop, several client threads);
- the most updates per second in batches of ``BATCH`` (JSON arrays);
- the service's CPU per update and Redis commands per update, from the same runs;
- the Python API (``Producer.enqueue`` in this process) at the same fixed rate and flat out;
- ``cartsync enqueue``: a process per update, and ``--lines`` (many per process).

The load generator runs on the same machine and takes CPU from the service: on a small
machine the figures are a floor. It keeps one HTTP/1.1 connection per client thread and
sends bodies encoded beforehand, as a shop's backend with a connection pool would.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
import structlog

from bench.harness import (
    MERCHANT,
    PASSWORD,
    USERNAME,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
    commands_processed,
    machine,
    own_redis,
    process_cpu_s,
)
from cartsync.config.producers import token_hash
from cartsync.config.settings import load_settings
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import Producer
from cartsync.worker.redisserver import free_port

TOKEN = "bench-token-0123456789abcdef"
#: Updates per batch request.
BATCH = 100
#: The fixed rate of the latency runs, requests (updates) per second: the issue's target rate.
DEFAULT_RATE = 300.0
#: Client threads of the closed-loop runs.
SINGLE_THREADS, BATCH_THREADS = 8, 4
#: Processes started for the one-process-per-update ``cartsync enqueue`` figure.
CLI_PROCESSES = 10
#: Bodies of the ``cartsync enqueue --lines`` figure.
CLI_LINES = 2000
ITEMS = [Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)]
TARGETS = {"p99_ms": 10.0, "single": 800.0, "batch": 3000.0}


def body(n: int) -> dict[str, Any]:
    return fully_shipped(merchant=MERCHANT, order_ref=f"B{n}", items=ITEMS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fixed_rate(send: Callable[[int], object], rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of ``rate`` calls per second for ``seconds``, sent on schedule; each
    measured from when it was due, so a call that started late counts its wait."""
    latencies: list[float] = []
    lock = threading.Lock()
    total = int(rate * seconds)

    def one(n: int, due: float) -> None:
        send(n)
        with lock:
            latencies.append((time.perf_counter() - due) * 1000)

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


class Client:
    """One keep-alive HTTP/1.1 connection per thread to the service."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, data: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.local.connection = connection
            try:
                connection.request("POST", path, data, self.headers)
                answer = connection.getresponse()
                return answer.status, answer.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class Cost:
    """What the service spent over some updates."""

    updates: int = 0
    cpu_s: float = 0.0
    commands: int = 0

    @property
    def cpu_ms_per_update(self) -> float:
        return self.cpu_s * 1000 / self.updates if self.updates else 0.0

    @property
    def commands_per_update(self) -> float:
        return self.commands / self.updates if self.updates else 0.0


@contextlib.contextmanager
def costing(pid: int, client: redis.Redis, cost: Cost) -> Iterator[None]:
    cpu, commands = process_cpu_s(pid), commands_processed(client)
    yield
    cost.cpu_s += process_cpu_s(pid) - cpu
    cost.commands += commands_processed(client) - commands - 1  # INFO itself


@dataclass
class Figures:
    rate: float
    worker: bool
    http_p50_ms: float = 0.0
    http_p99_ms: float = 0.0
    http_single: float = 0.0
    http_batch: float = 0.0
    single_cost: Cost = field(default_factory=Cost)
    batch_cost: Cost = field(default_factory=Cost)
    python_p50_ms: float = 0.0
    python_p99_ms: float = 0.0
    python_single: float = 0.0
    cli_single: float = 0.0
    cli_single_ms: float = 0.0
    cli_lines: float = 0.0

    def lines(self) -> list[str]:
        """The side-by-side table, and the targets."""
        out = [
            f"{'':40} {'HTTP':>12} {'Python API':>12} {'cartsync enqueue':>18}",
            f"{f'p50 at {self.rate:g}/s (ms)':40} {self.http_p50_ms:12.1f} "
            f"{self.python_p50_ms:12.1f} {self.cli_single_ms:18.0f}",
            f"{f'p99 at {self.rate:g}/s (ms)':40} {self.http_p99_ms:12.1f} "
            f"{self.python_p99_ms:12.1f} {'':>18}",
            f"{'most single updates/s':40} {self.http_single:12.0f} {self.python_single:12.0f} "
            f"{self.cli_single:18.1f}",
            f"{f'most updates/s in batches of {BATCH}':40} {self.http_batch:12.0f} {'':>12} "
            f"{self.cli_lines:18.0f}",
            f"service CPU per update: single {self.single_cost.cpu_ms_per_update:.3f} ms, "
            f"batched {self.batch_cost.cpu_ms_per_update:.3f} ms; Redis commands per update, "
            "those run inside scripts included (and the worker's, when it runs): single "
            f"{self.single_cost.commands_per_update:.1f}, "
            f"batched {self.batch_cost.commands_per_update:.1f}",
            "(cartsync enqueue: one process per update in the single rows, its p50 is one "
            "process's whole run; --lines in the batch row)",
        ]
        met = [
            ("p99", self.http_p99_ms <= TARGETS["p99_ms"], f"<= {TARGETS['p99_ms']:g} ms"),
            ("single", self.http_single >= TARGETS["single"], f">= {TARGETS['single']:g}/s"),
            ("batch", self.http_batch >= TARGETS["batch"], f">= {TARGETS['batch']:g}/s"),
        ]
        out.append(
            "targets: "
            + ", ".join(f"{name} {goal}: {'met' if ok else 'MISSED'}" for name, ok, goal in met)
        )
        return out


def serve(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    producers = folder / "producers.toml"
    producers.write_text(
        f'[producers.bench]\ntoken_sha256 = "{token_hash(TOKEN)}"\nmerchants = ["*"]\n'
    )
    env = {**env, "CARTSYNC_PRODUCERS_FILE": str(producers), "CARTSYNC_LOG_LEVEL": "warning"}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from cartsync.worker.cli import main; main()", "serve",
         "--host", "127.0.0.1", "--port", str(port), "--batch-max", str(BATCH)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("cartsync serve did not start")


def run(redis_url: str, *, rate: float, seconds: float, worker: bool) -> Figures:
    """Every figure, against the Redis at ``redis_url``."""
    # The in-process producer's one event per enqueue would be most of what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures = Figures(rate=rate, worker=worker)
    client = redis.Redis.from_url(redis_url)
    sandbox = SandboxProcess().start() if worker else None
    env = cartsync_env(redis_url, sandbox.url if sandbox else "http://127.0.0.1:9")
    fleet = [WorkerProcess(env, pool="threads", concurrency=32, name="bench-http")]
    if not worker:
        fleet = []
    try:
        for each in fleet:
            each.start()
        with tempfile.TemporaryDirectory() as folder:
            _http(figures, env, Path(folder), client, rate, seconds)
            _python(figures, redis_url, rate, seconds)
            _cli(figures, env, Path(folder))
    finally:
        for each in fleet:
            each.stop()
            each.remove_log()
        if sandbox is not None:
            sandbox.stop()
            sandbox.remove_log()
        client.close()
    return figures


def _http(
    figures: Figures,
    env: dict[str, str],
    folder: Path,
    client: redis.Redis,
    rate: float,
    seconds: float,
) -> None:
    process, port = serve(env, folder)
    try:
        web = Client(port)
        texts = [json.dumps(body(n)).encode() for n in range(1000)]

        def one(n: int) -> int:
            status, answer = web.post("/v1/updates", texts[n % len(texts)])
            assert status == 202, answer[:300]
            return 1

        def batch(n: int) -> int:
            data = b"[" + b",".join(texts[(n * BATCH + i) % len(texts)] for i in range(BATCH))
            status, answer = web.post("/v1/updates/batch", data + b"]")
            assert status == 200, answer[:300]
            return int(json.loads(answer)["accepted"])

        for n in range(50):  # warm up each process's connections and caches
            one(n)
        latency = fixed_rate(one, rate, seconds)
        figures.http_p50_ms = statistics.median(latency)
        figures.http_p99_ms = percentile(latency, 0.99)
        with costing(process.pid, client, figures.single_cost):
            figures.http_single = flat_out(one, SINGLE_THREADS, seconds)
        figures.single_cost.updates = int(figures.http_single * seconds)
        with costing(process.pid, client, figures.batch_cost):
            figures.http_batch = flat_out(batch, BATCH_THREADS, seconds)
        figures.batch_cost.updates = int(figures.http_batch * seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _python(figures: Figures, redis_url: str, rate: float, seconds: float) -> None:
    settings = load_settings({}).with_overrides(
        redis_url=redis_url, sequra_username=USERNAME, sequra_password=PASSWORD
    )
    producer = Producer(settings)

    def one(n: int) -> int:
        producer.enqueue(body(50_000_000 + n))
        return 1

    latency = fixed_rate(one, rate, seconds)
    figures.python_p50_ms = statistics.median(latency)
    figures.python_p99_ms = percentile(latency, 0.99)
    figures.python_single = flat_out(one, 4, seconds)


def _cli(figures: Figures, env: dict[str, str], folder: Path) -> None:
    command = [sys.executable, "-c", "from cartsync.worker.cli import main; main()", "enqueue"]
    single = folder / "one.json"
    single.write_text(json.dumps(body(70_000_000)))
    took = []
    for _ in range(CLI_PROCESSES):
        started = time.perf_counter()
        subprocess.run([*command, str(single)], env=env, check=True, capture_output=True)
        took.append(time.perf_counter() - started)
    figures.cli_single_ms = statistics.median(took) * 1000
    figures.cli_single = 1 / statistics.median(took)
    lines = folder / "many.jsonl"
    lines.write_text("".join(json.dumps(body(80_000_000 + n)) + "\n" for n in range(CLI_LINES)))
    started = time.perf_counter()
    subprocess.run([*command, "--lines", str(lines)], env=env, check=True, capture_output=True)
    figures.cli_lines = CLI_LINES / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="fixed rate, updates/s")
    parser.add_argument(
        "--no-worker", action="store_true", help="measure ingestion alone (no worker draining)"
    )
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    options = parser.parse_args(argv)
    seconds = 3.0 if options.quick else 8.0
    load_before = os.getloadavg()[0]
    with own_redis() as redis_server:
        figures = run(
            redis_server.url, rate=options.rate, seconds=seconds, worker=not options.no_worker
        )
    print(
        f"machine: {machine().line()}; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; worker {'running' if figures.worker else 'not running'}"
    )
    for line in figures.lines():
        print(line)
    if options.json_path:
        with open(options.json_path, "w", encoding="utf-8") as out:
            json.dump(asdict(figures), out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
