"""The benchmark's other measurements: a slow API, coalescing, the producer, validation.

Each function starts what it needs against a Redis and a sandbox it is given, measures one
thing and returns plain numbers; ``bench.__main__`` prints them.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import redis

from bench.harness import (
    MERCHANT,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
)
from bench.letters import payload
from bench.load import bodies
from bench.throughput import RUN_TIMEOUT_S, pipeline_run, produce
from cartsync.worker import keys
from cartsync.worker.processes import wait_for


@dataclass(frozen=True)
class LatencyRun:
    """Throughput against an API that takes ``latency_ms`` to answer."""

    latency_ms: float
    pool: str
    concurrency: int
    processes: int
    #: Delivery rate of the workers alone, draining a queue filled beforehand (in production
    #: the producers run elsewhere).
    drain_rate: float
    #: Producer and workers running together on this machine, as in the throughput table.
    end_to_end_rate: float
    cpu_per_1000: float


def slow_api(
    redis_url: str,
    *,
    latency_ms: float,
    count: int,
    pool: str,
    concurrency: int,
    processes: int = 1,
) -> LatencyRun:
    """cartsync's updates/s when every answer takes ``latency_ms`` (a real API's latency)."""
    sandbox = SandboxProcess(latency_ms=latency_ms).start()
    env = cartsync_env(
        redis_url,
        sandbox.url,
        CARTSYNC_WORKER_POOL=pool,
        CARTSYNC_WORKER_CONCURRENCY=str(concurrency),
    )
    client = redis.Redis.from_url(redis_url)
    workers = [
        WorkerProcess(env, pool=pool, concurrency=concurrency, name="bench-slow")
        for _ in range(processes)
    ]
    tag = f"slow-{pool}-{concurrency}-{processes}"
    try:
        # Drain: fill the queue with no worker running, then time the workers from the first
        # accepted update to the last (their start-up is not counted).
        sandbox.admin.reset()
        produce("cartsync", count, env, prefix=f"{tag}-drain")
        for worker in workers:
            worker.start(wait=False)
        first = wait_for(
            lambda: _accepted_now(sandbox), timeout=RUN_TIMEOUT_S, what="a first delivery",
            interval=0.01,
        )  # fmt: skip
        done_at_start, started = first

        def finished() -> tuple[int, float] | None:
            now = _accepted_now(sandbox)
            return now if now is not None and now[0] >= count else None

        last = wait_for(finished, timeout=RUN_TIMEOUT_S, what="every update", interval=0.02)
        drain_rate = (last[0] - done_at_start) / (last[1] - started)
        run = pipeline_run("c", workers, sandbox, client, env, count, prefix=f"{tag}-e2e")
    finally:
        for worker in workers:
            worker.stop()
            worker.remove_log()
        sandbox.stop()
        sandbox.remove_log()
        client.close()
    return LatencyRun(
        latency_ms, pool, concurrency, processes, drain_rate, run.rate, run.cpu_per_1000
    )


def _accepted_now(sandbox: SandboxProcess) -> tuple[int, float] | None:
    """(updates accepted so far, when) once at least one is, else None."""
    accepted = int(sandbox.admin.stats()["accepted"])
    return (accepted, time.time()) if accepted else None


@dataclass(frozen=True)
class Coalescing:
    orders: int
    updates_per_order: int
    calls: int
    seconds: float
    wrong_final_states: int
    superseded: int
    delivered: int

    @property
    def calls_per_order(self) -> float:
        return self.calls / self.orders


def coalescing(
    redis_url: str,
    *,
    orders: int,
    per_order: int,
    pool: str,
    concurrency: int,
    latency_ms: float = 0.0,
) -> Coalescing:
    """``orders`` orders with ``per_order`` updates each, every order's updates back to back,
    enqueued as fast as one producer goes while a worker delivers. Counts the API calls and
    checks each order's final state at the sandbox against its last enqueued body."""
    sandbox = SandboxProcess(latency_ms=latency_ms).start()
    env = cartsync_env(redis_url, sandbox.url)
    worker = WorkerProcess(env, pool=pool, concurrency=concurrency, name="bench-coalesce")
    prefix, seed = "coalesce", 11
    try:
        worker.start()
        result = produce("cartsync", orders, env, per_order=per_order, prefix=prefix, seed=seed)
        last: dict[str, dict[str, Any]] = {}
        for ref, body in bodies(orders, per_order=per_order, seed=seed, prefix=prefix, small=False):
            last[ref] = body["order"]

        def settled() -> bool:
            # Cheap test first: reading the worker's log is not (it competes for the CPU).
            if not worker_idle(redis_url):
                return False
            done = ("delivered", "superseded", "duplicate")
            return sum(e["outcome"] in done for e in worker.events()) >= len(last) * per_order

        wait_for(settled, timeout=RUN_TIMEOUT_S, what="the burst to settle", interval=0.5)
        seconds = time.time() - result["started"]
        wrong = 0
        for ref, expected in last.items():
            if sandbox.admin.order_state(MERCHANT, ref) != expected:
                wrong += 1
        outcomes = [e["outcome"] for e in worker.events()]
        return Coalescing(
            orders=orders,
            updates_per_order=per_order,
            calls=sandbox.admin.calls(),
            seconds=seconds,
            wrong_final_states=wrong,
            superseded=outcomes.count("superseded"),
            delivered=outcomes.count("delivered"),
        )
    finally:
        worker.stop()
        worker.remove_log()
        sandbox.stop()
        sandbox.remove_log()


def worker_idle(redis_url: str) -> bool:
    """Nothing queued and nothing waiting in cartsync's schedule."""
    client = redis.Redis.from_url(redis_url)
    try:
        return client.llen("cartsync") == 0 and client.zcard(keys.schedule("cartsync")) == 0
    finally:
        client.close()


def spread_ms(latencies: list[float]) -> dict[str, float]:
    """Median, 99th percentile (nearest rank) and maximum of some latencies."""
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[math.ceil(len(ordered) * 0.99) - 1],
        "max_ms": ordered[-1],
    }


@dataclass(frozen=True)
class ProducerLatency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def producer_latency(redis_url: str, *, count: int) -> ProducerLatency:
    """Enqueue latency of ``count`` two-item updates (validation, the ledger's accept), one
    producer process, no worker consuming meanwhile (the schedule only grows)."""
    env = cartsync_env(redis_url, "http://127.0.0.1:9")
    result = produce("cartsync", count, env, two_item=True, prefix="latency")
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(keys.schedule("cartsync"), keys.wake("cartsync"))  # nobody will consume these
    finally:
        client.close()
    return ProducerLatency(count=len(result["latencies_ms"]), **spread_ms(result["latencies_ms"]))


@dataclass(frozen=True)
class DeliveryLatency:
    """From ``enqueue`` returning to the sandbox receiving the call, for a trickle of updates."""

    count: int
    rate_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def delivery_latency(redis_url: str, *, count: int, rate_per_s: float) -> DeliveryLatency:
    """Enqueue ``count`` updates at ``rate_per_s``, one worker (threads, 32) mostly idle
    between them, and time each from its enqueue to the sandbox receiving its call: what
    the schedule, the pump and the queue add when there is no backlog to batch."""
    from cartsync.config.settings import load_settings
    from cartsync.tasks.producer import Producer

    sandbox = SandboxProcess().start()
    env = cartsync_env(redis_url, sandbox.url)
    worker = WorkerProcess(env, name="bench-trickle")
    producer = Producer(load_settings(env))
    enqueued: dict[str, float] = {}
    try:
        worker.start()
        work = bodies(count, per_order=1, seed=5, prefix="trickle", small=True)
        producer.enqueue(work[0][1])  # warm up the worker's connections; not counted
        wait_for(lambda: sandbox.admin.calls() >= 1, timeout=RUN_TIMEOUT_S, what="the warm-up")
        for ref, body in work[1:]:
            enqueued[ref] = time.time()
            producer.enqueue(body)
            time.sleep(1.0 / rate_per_s)
        wait_for(lambda: sandbox.admin.calls() >= count, timeout=RUN_TIMEOUT_S, what="every update")
        delays = [
            (sandbox.admin.history(MERCHANT, ref)[0]["received_at"] - at) * 1000.0
            for ref, at in enqueued.items()
        ]
    finally:
        producer.client.close()
        worker.stop()
        worker.remove_log()
        sandbox.stop()
        sandbox.remove_log()
    return DeliveryLatency(count=len(delays), rate_per_s=rate_per_s, **spread_ms(delays))


def validation_cost(samples: int = 400) -> float:
    """CPU milliseconds ``validate_update`` takes per benchmark payload, in this process
    (median of five passes). The worker validates every message it sends; its share of the
    worker's time is this over the worker's CPU per update in the throughput runs."""
    from cartsync.tasks.validation import validate_update

    rng = random.Random(3)
    work = [payload(rng, MERCHANT, f"V-{n}") for n in range(samples)]
    for body in work[:50]:
        validate_update(body)
    timings = []
    for _ in range(5):
        started = time.process_time()
        for body in work:
            validate_update(body)
        timings.append((time.process_time() - started) * 1000.0 / len(work))
    return statistics.median(timings)
