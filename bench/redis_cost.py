"""What one delivered update costs Redis: commands, round trips, and CPU, step by step.

    python -m bench.redis_cost                 # every part, a few minutes
    python -m bench.redis_cost --quick         # smaller counts, same shape
    python -m bench.redis_cost --only cost,baseline --count 2000

Everything runs against a Redis of its own (``bench.harness.own_redis``), so that nothing but
the run is counted, a sandbox on loopback and real worker processes. Parts:

- ``cost``: one worker process (threads, 32) delivers ``--count`` updates to distinct orders,
  enqueued by a producer in this process: ``burst`` (as fast as it goes, while the worker
  delivers), ``paced`` (a steady ``--rate`` per second, the usual production state: tasks
  then carry few updates each), ``backlog`` (everything enqueued with the worker stopped,
  then drained: a system at capacity, tasks as full as ``CARTSYNC_WORKER_BATCH`` allows) and
  ``mixed`` (four updates per order back to back and a sandbox answering 5 % of calls with a
  5xx: coalescing, lock conflicts and retries on).
  Counted three ways, each for the same window:

  * Redis's own statistics (``CONFIG RESETSTAT``, then ``INFO commandstats``): every command
    the server ran, those Lua scripts called included (each ``redis.call`` counts one, as
    does the ``EVALSHA`` that ran the script). This is the total;
  * ``MONITOR`` (``redis-cli monitor`` to a file): which step each command belongs to, by
    command, key and script (``bench.roundtrips.describe``), and which ran inside a script
    (``[0 lua]`` lines, attributed to the script that called them);
  * round trips, counted in the processes that make them (``bench.roundtrips``): the worker
    runs as ``bench.counted_worker``; the producer is this process.

  The window runs from the first enqueue until every update has reached its outcome; what
  the worker and Celery do meanwhile on a clock (kombu's empty BRPOP timeouts, its restore
  of unacknowledged messages, the pump's sweep) is in it, as step ``periodic``. The bench's
  own polling is excluded (by its client's address) from the steps and subtracted from the
  total. Worker CPU is the worker process's (``/proc``, user + system), Redis CPU is
  ``INFO cpu`` (``used_cpu_user + used_cpu_sys``), both read in a second run of the same
  scenario without ``MONITOR``, which costs Redis CPU of its own.
- ``baseline``: the same measurement for ``bench.naive``, a plain Celery task doing the same
  PUT on the same broker.
- ``scaling``: 1, 2 and 4 worker processes (threads, 64 each) draining ``--drain`` updates
  against a sandbox answering in 100 ms.
- ``memory``: ``used_memory`` per pending update (enqueued, no worker running) and per dead
  letter (parked through the store).
- ``capacity``: ``redis-benchmark`` on this machine (``EVALSHA`` of a small script and
  ``HINCRBY``), and what one Redis could carry in updates per second at the measured cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import roundtrips
from bench.harness import (
    MERCHANT,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
    machine,
    own_redis,
)
from bench.letters import payload
from bench.load import bodies
from cartsync.worker import keys
from cartsync.worker.metrics import with_log
from cartsync.worker.processes import wait_for
from cartsync.worker.redisserver import server_binary

PARTS = ("cost", "baseline", "scaling", "memory", "capacity")

#: Seconds one run may take before it is declared stuck.
RUN_TIMEOUT_S = 300.0

#: The steps a command is counted in, in the order an update meets them.
STEPS = (
    "enqueue",
    "pump",
    "celery publish",
    "celery consume",
    "celery ack",
    "claim + finish",
    "metrics",
    "retry/defer",
    "park",
    "periodic",
    "other",
)

#: The cartsync scripts and the step each belongs to.
SCRIPT_STEPS = {
    "ledger_accept": "enqueue",
    "schedule_claim": "pump",
    "schedule_hand_off": "pump",
    "schedule_sweep": "periodic",
    "schedule_give_back": "retry/defer",
    "ledger_step": "claim + finish",
    "dlq_park": "park",
}

#: Worker threads of the measured worker.
CONCURRENCY = 32

QUEUE = "cartsync"
NAIVE_QUEUE = "naive"


def step_of(label: str) -> str:
    """The step a command belongs to, from ``bench.roundtrips.describe``'s label."""
    name, _, what = label.partition(":")
    if name == "EVALSHA":
        return SCRIPT_STEPS.get(what, "other")
    if what.endswith(":metrics"):
        return "metrics"
    if what.endswith(":wake"):
        return "pump"
    if what.endswith((":schedule", ":failures", ":inflight")):
        return "retry/defer"
    if what.endswith(":dlq"):
        return "park"
    if what in {QUEUE, NAIVE_QUEUE}:
        return {"LPUSH": "celery publish", "BRPOP": "celery consume"}.get(name, "other")
    if what == "_kombu.binding":
        return "celery publish"
    if what in {"unacked", "unacked_index"}:
        if name in {"ZADD", "HSET"}:
            return "celery consume"
        if name in {"ZREM", "HDEL"}:
            return "celery ack"
        return "periodic"
    if what == "unacked_mutex" or name in {"PUBLISH", "SUBSCRIBE", "PSUBSCRIBE"}:
        return "periodic"
    return "other"


def trip_step(label: str) -> str:
    """The step of a round trip: that of its first command that is no MULTI."""
    for part in label.split(" "):
        if part not in {"MULTI", "EXEC"}:
            return step_of(part)
    return "other"


# MONITOR ---------------------------------------------------------------------------------

LINE = re.compile(r"^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")
TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class StepCount:
    """Commands of one step: sent by a client, run inside a script, and round trips."""

    sent: int = 0
    in_scripts: int = 0
    trips: int = 0

    @property
    def commands(self) -> int:
        return self.sent + self.in_scripts


def read_monitor(
    path: Path, *, exclude: set[str], lua_after: bool
) -> tuple[dict[str, StepCount], Counter[str], Counter[str]]:
    """Commands per step from a ``redis-cli monitor`` file; also every command by label,
    and the commands of the ``exclude``d clients (the bench's own) by command name.

    ``lua_after``: the server logs a script's calls after the EVALSHA that ran them (Redis
    before 7) rather than before it."""
    steps: dict[str, StepCount] = defaultdict(StepCount)
    labels: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    shas = roundtrips.script_names()
    current = "other"  # the step of the script whose calls follow (lua_after)
    pending_lua: list[str] = []  # calls waiting for their script (not lua_after)
    multi: dict[str, int] = defaultdict(int)  # MULTIs waiting for a client's next command
    last: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = LINE.match(line)
            if not match:
                continue
            client, rest = match.groups()
            args = [t.group(1) for t, _ in zip(TOKEN.finditer(rest), range(4), strict=False)]
            label = roundtrips.describe(args, shas)
            if client in exclude:
                excluded[label.partition(":")[0]] += 1
                continue
            if client == "lua":
                labels["(in script) " + label] += 1
                if lua_after:
                    steps[current].in_scripts += 1
                else:
                    pending_lua.append(label)
                continue
            labels[label] += 1
            name = label.partition(":")[0]
            if name == "MULTI":
                multi[client] += 1
                continue
            if name == "EXEC":
                steps[last.get(client, "other")].sent += 1
                continue
            step = step_of(label)
            if multi[client]:
                steps[step].sent += multi.pop(client)
            steps[step].sent += 1
            last[client] = step
            if name in {"EVALSHA", "EVAL"}:
                current = step
                if pending_lua:
                    steps[step].in_scripts += len(pending_lua)
                    pending_lua.clear()
    return dict(steps), labels, excluded


@contextlib.contextmanager
def monitoring(port: int, path: Path) -> Iterator[None]:
    """``redis-cli monitor`` into ``path`` for the duration of the block."""
    cli = shutil.which("redis-cli") or str(Path(server_binary()).with_name("redis-cli"))
    with path.open("wb") as out:
        process = subprocess.Popen(  # our own arguments
            [cli, "-p", str(port), "monitor"], stdout=out, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(0.3)  # connected and monitoring before anything is counted
            yield
            time.sleep(0.3)  # the last lines written
        finally:
            process.terminate()
            process.wait(timeout=5)


# One measured window -------------------------------------------------------------------


@dataclass
class Window:
    """What one scenario cost, over its window."""

    scenario: str
    variant: str
    delivered: int
    tasks: int
    seconds: float
    commands: int  # INFO commandstats, the bench's own subtracted
    by_command: dict[str, int]
    steps: dict[str, dict[str, int]] = field(default_factory=dict)
    trips: dict[str, int] = field(default_factory=dict)  # by label
    worker_cpu_ms: float = 0.0  # per delivered update, run without MONITOR
    redis_cpu_us: float = 0.0  # per delivered update, run without MONITOR
    monitor_commands: int = 0  # what MONITOR saw (a cross-check of the total)

    def per(self, value: float) -> float:
        return value / self.delivered if self.delivered else float("nan")

    @property
    def trips_total(self) -> int:
        return sum(self.trips.values())


def command_stats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_").upper(): int(v["calls"]) for name, v in stats.items()}


def redis_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def own_address(client: redis.Redis) -> str:
    """``ip:port`` of a single-connection client as the server sees it."""
    info = client.client_info()
    return str(info["addr"])


class TripFile:
    """The round trips a ``bench.counted_worker`` process has written so far."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Counter[str]:
        try:
            return Counter(json.loads(self.path.read_text())["trips"])
        except (OSError, ValueError):
            return Counter()

    def settled(self, after: float) -> Counter[str]:
        """A snapshot written after ``after`` (the worker's clock and ours are one)."""

        def fresh() -> Counter[str] | None:
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                return None
            return Counter(data["trips"]) if data["at"] > after else None

        found: Counter[str] = wait_for(fresh, timeout=10, what="a round-trip snapshot")
        return found


def subtract(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }


@dataclass
class Scenario:
    name: str
    count: int  # orders
    per_order: int = 1
    rate: float | None = None  # enqueues per second; None: as fast as it goes
    #: Enqueue everything with the worker stopped, then start it: the backlog of a system
    #: at capacity, every task as full as ``CARTSYNC_WORKER_BATCH`` allows.
    drain: bool = False
    faults: dict[str, Any] = field(default_factory=dict)


class CostRun:
    """A Redis, a sandbox and one counted worker, for measuring scenarios one after another."""

    def __init__(self, server: Any, variant: str, workdir: Path, scenario: Scenario) -> None:
        self.server = server
        self.variant = variant
        self.workdir = workdir
        self.scenario = scenario
        self.admin = redis.Redis.from_url(server.url, single_connection_client=True)
        self.lua_after = int(self.admin.info("server")["redis_version"].split(".")[0]) < 7
        self.trip_file = TripFile(workdir / f"trips-{variant}-{scenario.name}.json")

    def __enter__(self) -> CostRun:
        self.admin.flushall()
        faults = {"seed": 7, **self.scenario.faults}
        self.sandbox = SandboxProcess(**faults).start()
        self.env = cartsync_env(
            self.server.url,
            self.sandbox.url,
            BENCH_COUNTED_APP="bench.naive" if self.variant == "naive" else "cartsync.worker",
            BENCH_ROUND_TRIPS_FILE=str(self.trip_file.path),
            CARTSYNC_RETRY_BASE_S="0.2",
            CARTSYNC_WORKER_CONCURRENCY=str(CONCURRENCY),
        )
        self.worker = WorkerProcess(
            self.env, app="bench.counted_worker", concurrency=CONCURRENCY, name="bench-cost"
        ).start()
        self.producer = self._producer()
        self.enqueue(self._work(60, "warm"))
        wait_for(self.idle, timeout=RUN_TIMEOUT_S, what="the warm-up", interval=0.1)
        if self.variant != "naive":
            # The steady state: a worker looks for orders to flag as it starts and then
            # claims look among the dead letters for flagged orders only
            # (DeadLetterStore.flag_parked_orders).
            flagged = keys.dlq_orders_flagged("cartsync")
            wait_for(lambda: self.admin.exists(flagged), timeout=RUN_TIMEOUT_S,
                     what="the worker to flag parked orders", interval=0.1)  # fmt: skip
        return self

    def __exit__(self, *_: object) -> None:
        self.worker.stop()
        self.worker.remove_log()
        self.sandbox.stop()
        self.sandbox.remove_log()
        self.admin.close()

    def _producer(self) -> Callable[[dict[str, Any]], None]:
        if self.variant == "naive":
            os.environ["CARTSYNC_REDIS_URL"] = self.server.url
            from bench.naive import put_order

            put_order.app.connection_for_write().ensure_connection()

            def send(body: dict[str, Any]) -> None:
                put_order.delay(MERCHANT, body["order"]["merchant_reference"]["order_ref_1"], body)

            return send
        from cartsync.config.settings import load_settings
        from cartsync.tasks.producer import Producer

        producer = Producer(load_settings(self.env))
        _ = producer.merchants

        def enqueue(body: dict[str, Any]) -> None:
            producer.enqueue(body)

        return enqueue

    def _work(self, count: int, prefix: str) -> list[dict[str, Any]]:
        s = self.scenario
        work = bodies(count, per_order=s.per_order, seed=5, prefix=prefix, small=False)
        return [body for _ref, body in work]

    def enqueue(self, work: list[dict[str, Any]]) -> None:
        interval = 1.0 / self.scenario.rate if self.scenario.rate else 0.0
        started = time.perf_counter()
        for n, body in enumerate(work):
            if interval:
                pause = started + n * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            self.producer(body)

    def idle(self) -> bool:
        """Every update has reached its outcome: nothing waiting, queued or in flight (and,
        for the naive task, which keeps no such records, the sandbox has them all)."""
        if self.variant == "naive":
            return bool(self.admin.llen(NAIVE_QUEUE) == 0 and self.admin.hlen("unacked") == 0)
        # One command at a time: a pipeline would take another connection than the admin's
        # own, whose commands the counts leave out.
        admin = self.admin
        return not (
            admin.zcard(keys.schedule("cartsync"))
            or admin.zcard(keys.inflight("cartsync"))
            or admin.llen(QUEUE)
            or admin.hlen("unacked")
        )

    def delivered(self) -> int:
        if self.variant == "naive":
            return int(self.sandbox.admin.stats()["accepted"])
        # Read when idle (before and after a window), so that no fold of the metrics log
        # comes between these reads; one at a time, as in idle().
        hashes = [self.admin.hgetall(key) for key in keys.metrics_log_hashes("cartsync")]
        entries = self.admin.lrange(keys.metrics_log("cartsync"), 0, -1)
        return int(with_log(hashes, entries)[0].get("delivered|", 0))

    def measure(self, prefix: str, *, monitor: bool) -> Window:
        work = self._work(self.scenario.count, prefix)
        expected = len(work) if self.variant == "naive" else None
        delivered0 = self.delivered()
        me = own_address(self.admin)
        log = self.workdir / f"monitor-{self.variant}-{self.scenario.name}.txt"
        stack = contextlib.ExitStack()
        if monitor:
            stack.enter_context(monitoring(self.server.port, log))
        with stack:
            if expected is not None:
                self.sandbox.admin.reset()
            self.admin.config_resetstat()
            trips0 = self.trip_file.settled(time.time())
            cpu0, rcpu0 = self.worker.cpu_s(), redis_cpu_s(self.admin)
            if self.scenario.drain:
                self.worker.stop()
            mine0 = Counter(roundtrips.counts())
            started = time.time()
            self.enqueue(work)
            mine = subtract(roundtrips.counts(), mine0)  # the producer's (nothing else ran)
            if self.scenario.drain:
                # A new process counts from zero: its start-up is in the window, its CPU
                # from the moment it is ready.
                trips0 = Counter()
                self.worker.start()
                cpu0 = self.worker.cpu_s()

            def done() -> bool:
                if expected is not None:
                    return int(self.sandbox.admin.stats()["accepted"]) >= expected
                return self.idle()

            wait_for(done, timeout=RUN_TIMEOUT_S, what="every update's outcome", interval=0.05)
            if expected is not None:
                wait_for(self.idle, timeout=RUN_TIMEOUT_S, what="every ack", interval=0.05)
            seconds = time.time() - started
            cpu, rcpu = self.worker.cpu_s() - cpu0, redis_cpu_s(self.admin) - rcpu0
            stats = command_stats(self.admin)
            trips = subtract(self.trip_file.settled(time.time()), trips0)
        delivered = (expected or 0) if expected is not None else self.delivered() - delivered0
        window = Window(
            scenario=self.scenario.name,
            variant=self.variant,
            delivered=delivered,
            tasks=0,
            seconds=seconds,
            commands=0,
            by_command={},
            trips=dict(Counter(trips) + Counter(mine)),
            worker_cpu_ms=cpu * 1000.0 / max(1, delivered),
            redis_cpu_us=rcpu * 1e6 / max(1, delivered),
        )
        if monitor:
            steps, labels, excluded = read_monitor(log, exclude={me}, lua_after=self.lua_after)
            # CONFIG (RESETSTAT) is the bench's alone, and MONITOR does not show it.
            by_command = {k: v - excluded.get(k, 0) for k, v in stats.items() if k != "CONFIG"}
            by_command = {k: v for k, v in by_command.items() if v > 0}
            window.by_command = dict(sorted(by_command.items(), key=lambda kv: -kv[1]))
            window.commands = sum(by_command.values())
            window.monitor_commands = sum(s.commands for s in steps.values())
            for label, n in window.trips.items():
                steps.setdefault(trip_step(label), StepCount()).trips += n
            window.steps = {
                s: asdict(steps[s]) | {"commands": steps[s].commands} for s in STEPS if s in steps
            }
            publish = "LPUSH:" + (NAIVE_QUEUE if self.variant == "naive" else QUEUE)
            window.tasks = labels.get(publish, 0)
            with contextlib.suppress(OSError):
                log.unlink()
        return window


def cost(
    server: Any, variant: str, scenario: Scenario, workdir: Path, say: Callable[[str], None]
) -> Window:
    """Two runs of a scenario on one worker: counted with MONITOR, then timed without."""
    with CostRun(server, variant, workdir, scenario) as run:
        counted = run.measure(f"{scenario.name}-m", monitor=True)
        timed = run.measure(f"{scenario.name}-t", monitor=False)
    counted.worker_cpu_ms, counted.redis_cpu_us = timed.worker_cpu_ms, timed.redis_cpu_us
    say(
        f"  {variant} {scenario.name}: {counted.delivered} delivered in {counted.tasks} tasks, "
        f"{counted.per(counted.commands):.1f} commands and {counted.per(counted.trips_total):.2f} "
        f"round trips per update; worker {counted.worker_cpu_ms:.2f} ms CPU, Redis "
        f"{counted.redis_cpu_us:.0f} us CPU per update"
    )
    return counted


# Scaling, memory, capacity -------------------------------------------------------------


def scaling(server: Any, processes: int, count: int) -> dict[str, float]:
    """Updates/s of ``processes`` worker processes draining ``count`` updates, the sandbox
    answering in 100 ms; the clock runs from the first delivery to the last."""
    admin = redis.Redis.from_url(server.url)
    admin.flushall()
    sandbox = SandboxProcess(latency_ms=100).start()
    env = cartsync_env(server.url, sandbox.url)
    from cartsync.config.settings import load_settings
    from cartsync.tasks.producer import Producer

    producer = Producer(load_settings(env))
    for _ref, body in bodies(count, per_order=1, seed=9, prefix=f"scale{processes}", small=True):
        producer.enqueue(body)
    workers = [WorkerProcess(env, concurrency=64, name="bench-scale") for _ in range(processes)]
    try:
        cpu_at = time.time()
        for worker in workers:
            worker.start(wait=False)

        def accepted() -> tuple[int, float] | None:
            n = int(sandbox.admin.stats()["accepted"])
            return (n, time.time()) if n else None

        first = wait_for(accepted, timeout=RUN_TIMEOUT_S, what="a first delivery", interval=0.01)
        last = wait_for(
            lambda: ((a := accepted()) and a[0] >= count and a) or None,
            timeout=RUN_TIMEOUT_S, what="every update", interval=0.02,
        )  # fmt: skip
        rate = (last[0] - first[0]) / (last[1] - first[1])
        cpu = sum(w.cpu_s() for w in workers)
        return {"processes": processes, "updates_per_s": rate, "seconds": time.time() - cpu_at,
                "worker_cpu_ms": cpu * 1000.0 / count}  # fmt: skip
    finally:
        for worker in workers:
            worker.stop()
            worker.remove_log()
        sandbox.stop()
        sandbox.remove_log()
        producer.client.close()
        admin.close()


def memory(server: Any, count: int) -> dict[str, float]:
    """Bytes of ``used_memory`` per pending update and per dead letter."""
    from cartsync.config.settings import load_settings
    from cartsync.tasks.producer import Producer
    from cartsync.worker.deadletters import DeadLetter, DeadLetterStore

    admin = redis.Redis.from_url(server.url)
    admin.flushall()
    env = cartsync_env(server.url, "http://127.0.0.1:9")
    producer = Producer(load_settings(env))
    work = bodies(count, per_order=1, seed=13, prefix="mem", small=False)
    size = statistics.mean(len(json.dumps(b, separators=(",", ":"))) for _r, b in work)
    producer.enqueue(work[0][1])  # the scripts loaded, the keys' hashes in place
    before = int(admin.info("memory")["used_memory"])
    for _ref, body in work[1:]:
        producer.enqueue(body)
    pending = (int(admin.info("memory")["used_memory"]) - before) / (count - 1)
    store = DeadLetterStore(admin, "cartsync")
    rng = random.Random(3)

    def letter(n: int) -> DeadLetter:
        ref = f"dead-{n:06d}"
        return DeadLetter(
            update_id=f"u-dead-{n}", merchant=MERCHANT, order_ref=ref, version=1,
            reason="invalid", status=409, errors=["order.cart: refused by seQura"],
            attempts=[{"at": time.time(), "status": 409, "exception": None, "errors": [],
                       "latency_ms": 12.5}],
            enqueued_at=time.time(), payload=payload(rng, MERCHANT, ref),
        )  # fmt: skip

    store.park(letter(0))
    before = int(admin.info("memory")["used_memory"])
    for n in range(1, count):
        store.park(letter(n))
    dead = (int(admin.info("memory")["used_memory"]) - before) / (count - 1)
    producer.client.close()
    admin.flushall()
    admin.close()
    return {"count": count, "body_bytes": size, "pending_bytes": pending, "letter_bytes": dead}


def capacity(server: Any, requests: int) -> dict[str, float]:
    """Requests/s ``redis-benchmark`` gets from this Redis: HINCRBY, and an EVALSHA of a
    script making four calls (about the claim's work), 50 clients, no pipelining."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return {}
    admin = redis.Redis.from_url(server.url)
    sha = admin.script_load(
        "if redis.call('HEXISTS', KEYS[1], 'x') == 1 then return 0 end "
        "local a = redis.call('HGET', KEYS[2], 'enqueued') "
        "local b = redis.call('HGET', KEYS[2], 'delivered') "
        "return redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', 60000) and 1 or 2"
    )
    admin.close()
    out: dict[str, float] = {}
    for name, command in (
        ("HINCRBY", ["HINCRBY", "bench:h", "__rand_int__", "1"]),
        ("EVALSHA", ["EVALSHA", sha, "3", "bench:p", "bench:o:__rand_int__",
                     "bench:l:__rand_int__", "t"]),
    ):  # fmt: skip
        done = subprocess.run(  # our own arguments
            [tool, "-p", str(server.port), "-n", str(requests), "-c", "50", "-r", "100000",
             "--csv", *command],
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        )  # fmt: skip
        rows = [line.split('","') for line in done.stdout.splitlines() if line.startswith('"')]
        if len(rows) >= 2:
            out[name] = float(rows[1][1].strip('"'))
    return out


# Report ------------------------------------------------------------------------------------


#: The targets per delivered update in the steady state (issue 16).
TARGET_COMMANDS, TARGET_TRIPS = 15.0, 4.0


def summary(server: Any, count: int, say: Callable[[str], None]) -> list[str]:
    """The burst scenario for cartsync and the naive task, as lines for ``python -m bench``."""
    roundtrips.install()
    with tempfile.TemporaryDirectory(prefix="cartsync-cost-") as tmp:
        ours = cost(server, "cartsync", Scenario("burst", count), Path(tmp), say)
        naive = cost(server, "naive", Scenario("burst", count), Path(tmp), say)
    commands, trips = ours.per(ours.commands), ours.per(ours.trips_total)
    met = "met" if commands <= TARGET_COMMANDS and trips <= TARGET_TRIPS else "MISSED"
    return [
        f"Redis cost per delivered update (burst of {count}, python -m bench.redis_cost for "
        f"the steps): cartsync {commands:.1f} commands, {trips:.2f} round trips, worker "
        f"{ours.worker_cpu_ms:.2f} ms CPU (target <= {TARGET_COMMANDS:g} and "
        f"<= {TARGET_TRIPS:g}: {met}); naive task {naive.per(naive.commands):.1f} commands, "
        f"{naive.per(naive.trips_total):.2f} round trips, {naive.worker_cpu_ms:.2f} ms CPU"
    ]


def report(windows: list[Window], say: Callable[[str], None]) -> None:
    for w in windows:
        say(
            f"\n{w.variant} / {w.scenario}: {w.delivered} delivered updates, {w.tasks} tasks "
            f"({w.delivered / max(1, w.tasks):.1f} updates per task), "
            f"{w.seconds:.1f} s"
        )
        say(
            f"  total (INFO commandstats): {w.per(w.commands):.2f} commands per update "
            f"(MONITOR saw {w.per(w.monitor_commands):.2f}); round trips "
            f"{w.per(w.trips_total):.2f}; worker CPU {w.worker_cpu_ms:.2f} ms; Redis CPU "
            f"{w.redis_cpu_us:.0f} us"
        )
        say(f"  {'step':<16}{'commands':>10}{'sent':>8}{'in Lua':>8}{'trips':>8}  (per update)")
        for step, c in w.steps.items():
            say(
                f"  {step:<16}{w.per(c['commands']):>10.2f}{w.per(c['sent']):>8.2f}"
                f"{w.per(c['in_scripts']):>8.2f}{w.per(c['trips']):>8.2f}"
            )
        say("  by command: " + ", ".join(f"{k} {w.per(v):.2f}" for k, v in w.by_command.items()))
        top = sorted(w.trips.items(), key=lambda kv: -kv[1])[:12]
        say("  round trips: " + "; ".join(f"[{k}] {w.per(v):.2f}" for k, v in top))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cost", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, same shape")
    parser.add_argument("--count", type=int, help="updates per cost scenario (default 2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="paced scenario, updates/s")
    parser.add_argument("--drain", type=int, help="updates per scaling run (default 3000)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS)
    )
    parser.add_argument("--scenarios", default="burst,paced,backlog,mixed")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    count = args.count or (600 if args.quick else 2000)
    drain = args.drain or (1000 if args.quick else 3000)
    scenarios = {
        "burst": Scenario("burst", count),
        "paced": Scenario("paced", count, rate=args.rate),
        "mixed": Scenario("mixed", count // 4, per_order=4, faults={"fail_rate": 0.05}),
        "backlog": Scenario("backlog", count, drain=True),
    }
    chosen = [scenarios[s.strip()] for s in args.scenarios.split(",") if s.strip()]
    roundtrips.install()
    figures: dict[str, Any] = {"machine": asdict(machine()), "load_before": os.getloadavg()}

    def say(text: str) -> None:
        print(text, flush=True)

    say(f"cartsync Redis cost per update on {machine().line()}")
    say(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    windows: list[Window] = []
    with own_redis() as server, tempfile.TemporaryDirectory(prefix="cartsync-cost-") as tmp:
        workdir = Path(tmp)
        if "cost" in parts:
            say(f"\n[cost] {count} updates per scenario, one worker (threads, {CONCURRENCY})")
            for scenario in chosen:
                windows.append(cost(server, "cartsync", scenario, workdir, say))
        if "baseline" in parts:
            say("\n[baseline] bench.naive, the same PUT as a plain Celery task")
            for scenario in [s for s in chosen if s.name in {"burst", "paced"}]:
                windows.append(cost(server, "naive", scenario, workdir, say))
        report(windows, say)
        figures["windows"] = [asdict(w) for w in windows]
        if "scaling" in parts:
            say(f"\n[scaling] {drain} updates drained, sandbox answering in 100 ms")
            figures["scaling"] = []
            for processes in (1, 2, 4):
                row = scaling(server, processes, drain)
                figures["scaling"].append(row)
                say(
                    f"  {processes} worker process(es), threads x64: "
                    f"{row['updates_per_s']:.0f} updates/s, "
                    f"{row['worker_cpu_ms']:.2f} ms CPU/update"
                )
        if "memory" in parts:
            n = 2000 if args.quick else 10000
            mem = memory(server, n)
            figures["memory"] = mem
            say(
                f"\n[memory] {n} updates of {mem['body_bytes']:.0f} bytes of JSON each: "
                f"{mem['pending_bytes']:.0f} bytes per pending update, "
                f"{mem['letter_bytes']:.0f} bytes per dead letter"
            )
        if "capacity" in parts:
            bench = capacity(server, 50000 if args.quick else 200000)
            figures["capacity"] = bench
            say("\n[capacity] redis-benchmark, 50 clients: " + ", ".join(
                f"{k} {v:,.0f} requests/s" for k, v in bench.items()))  # fmt: skip
            for w in windows:
                if w.variant != "cartsync" or not w.redis_cpu_us:
                    continue
                by_cpu = 1e6 / w.redis_cpu_us
                line = f"  {w.scenario}: one Redis core at {w.redis_cpu_us:.0f} us per update: "
                line += f"{by_cpu:,.0f} updates/s"
                if "EVALSHA" in bench and w.trips_total:
                    by_trips = bench["EVALSHA"] / w.per(w.trips_total)
                    line += f"; at redis-benchmark's EVALSHA rate per round trip: {by_trips:,.0f}"
                say(line)
    figures["load_after"] = os.getloadavg()
    say(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
