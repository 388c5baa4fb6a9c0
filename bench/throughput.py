"""Side-by-side throughput: (a) raw requests loop, (b) naive Celery task, (c) cartsync.

Every variant sends the same payloads (about 2 KB of realistic cart JSON, one update per
order, so nothing coalesces) to the same sandbox process on loopback, on the same machine.

- (a) raw: one ``requests.Session`` in this process PUTs pre-serialized bodies in a loop,
  one after the other: the ceiling of one process doing nothing else.
- (b) naive: ``bench.naive``'s plain Celery task, a real worker process, fed by a producer
  process calling ``put_order.delay``.
- (c) cartsync: the real worker (``celery -A cartsync.worker worker``) fed by a producer process
  calling ``Producer.enqueue`` (validation, ledger, schedule), logging JSON events to a file.

For (b) and (c) the clock runs from the producer's first enqueue until the sandbox has
accepted every update, with the producer and the worker running at the same time. CPU is the
worker's plus the producer's (user + system, children included); Redis commands are the
server's ``total_commands_processed`` over the same window, divided by the updates.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import requests

from bench.harness import (
    MERCHANT,
    PASSWORD,
    USERNAME,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
    commands_processed,
)
from bench.load import bodies
from cartsync.worker.client import encode_body, order_url
from cartsync.worker.processes import wait_for

#: Seconds one run may take before it is declared stuck.
RUN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Run:
    """One measured run of one variant."""

    variant: str
    updates: int
    seconds: float
    cpu_s: float
    redis_commands: int = 0
    producer_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s * 1000.0 / self.updates

    @property
    def commands_per_update(self) -> float:
        return self.redis_commands / self.updates


@dataclass
class Summary:
    """Median and spread (min-max) of a variant's runs."""

    variant: str
    runs: list[Run] = field(default_factory=list)

    def median(self, metric: Callable[[Run], float]) -> float:
        return statistics.median(metric(r) for r in self.runs)

    def spread(self, metric: Callable[[Run], float]) -> tuple[float, float]:
        values = [metric(r) for r in self.runs]
        return min(values), max(values)


def raw_run(sandbox: SandboxProcess, count: int, *, prefix: str, seed: int = 7) -> Run:
    """Variant (a): one session, one PUT after the other, bodies serialized beforehand."""
    work = [
        (order_url(sandbox.url, MERCHANT, ref), encode_body(body))
        for ref, body in bodies(count, per_order=1, seed=seed, prefix=prefix, small=False)
    ]
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with requests.Session() as session:
        session.auth = (USERNAME, PASSWORD)
        session.put(work[0][0], data=work[0][1], headers=headers, timeout=10)  # connect first
        sandbox.admin.reset()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for url, data in work:
            response = session.put(url, data=data, headers=headers, timeout=10)
            if response.status_code >= 300:
                raise RuntimeError(f"the sandbox answered {response.status_code} to a raw PUT")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Run("a", count, seconds, cpu, producer_cpu_s=cpu)


def produce(variant: str, count: int, env: dict[str, str], **options: Any) -> dict[str, Any]:
    """Run ``bench.load`` to the end; its result line as a dict."""
    args = [sys.executable, "-m", "bench.load", variant, str(count)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise RuntimeError(f"bench.load {variant} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


def pipeline_run(
    variant: str,
    workers: Sequence[WorkerProcess],
    sandbox: SandboxProcess,
    client: redis.Redis,
    env: dict[str, str],
    count: int,
    *,
    prefix: str,
    accepted: Callable[[], int] | None = None,
) -> Run:
    """Variants (b) and (c): the producer process and the running workers, timed together."""
    sandbox.admin.reset()
    accepted = accepted or (lambda: int(sandbox.admin.stats()["accepted"]))
    cpu0 = sum(w.cpu_s() for w in workers)
    commands0 = commands_processed(client)
    result = produce("naive" if variant == "b" else "cartsync", count, env, prefix=prefix)
    wait_for(lambda: accepted() >= count, timeout=RUN_TIMEOUT_S, what="every update", interval=0.02)
    finished = time.time()
    commands = commands_processed(client) - commands0
    worker_cpu = sum(w.cpu_s() for w in workers) - cpu0
    return Run(
        variant,
        count,
        finished - result["started"],
        worker_cpu + result["cpu_s"],
        redis_commands=commands,
        producer_cpu_s=result["cpu_s"],
        worker_cpu_s=worker_cpu,
    )


def start_workers(
    variant: str, env: dict[str, str], *, pool: str, concurrency: int, processes: int = 1
) -> list[WorkerProcess]:
    app = "bench.naive" if variant == "b" else "cartsync.worker"
    return [
        WorkerProcess(env, app=app, pool=pool, concurrency=concurrency, name=f"bench-{variant}")
        for _ in range(processes)
    ]


def compare(
    redis_url: str,
    sandbox: SandboxProcess,
    *,
    count: int,
    runs: int,
    pool: str,
    concurrency: int,
    processes: int = 1,
    progress: Callable[[str], None] = print,
) -> dict[str, Summary]:
    """Every variant ``runs`` times, interleaved a, b, c, a, b, c, ... so drift hits all alike."""
    client = redis.Redis.from_url(redis_url)
    env = cartsync_env(redis_url, sandbox.url)
    summaries = {v: Summary(v) for v in "abc"}
    fleets = {
        v: start_workers(v, env, pool=pool, concurrency=concurrency, processes=processes)
        for v in "bc"
    }
    try:
        for fleet in fleets.values():
            for worker in fleet:
                worker.start()
        # Warm up: connections, imports, the sandbox's threads.
        raw_run(sandbox, min(200, count), prefix="warm-a")
        for v in "bc":
            pipeline_run(v, fleets[v], sandbox, client, env, min(200, count), prefix=f"warm-{v}")
        for n in range(runs):
            for v in "abc":
                prefix = f"run{n}-{v}"
                if v == "a":
                    run = raw_run(sandbox, count, prefix=prefix)
                else:
                    run = pipeline_run(v, fleets[v], sandbox, client, env, count, prefix=prefix)
                summaries[v].runs.append(run)
                progress(
                    f"  run {n + 1}/{runs} {v}: {run.rate:7.0f} updates/s, "
                    f"{run.cpu_per_1000:5.2f} CPU s/1000, {run.commands_per_update:5.1f} cmd/update"
                )
    finally:
        for fleet in fleets.values():
            for worker in fleet:
                worker.stop()
                worker.remove_log()
        client.close()
    return summaries
