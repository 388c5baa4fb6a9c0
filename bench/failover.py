"""Redis failover under load: a Sentinel-managed Redis loses its master mid-run.

    python -m bench.failover                         # replica confirmation on (min replicas 1)
    python -m bench.failover --min-replicas 0 --runs 3   # off: count what the failover lost
    python -m bench.failover latency                 # what waiting for replicas costs

What runs, each a real process on loopback:

- a Redis master, two replicas and three Sentinels (``worker/redisgroup.py``; down after
  1 s, no persistence: what survives is what replication carried);
- the sandbox, failing 10 % of calls with 5xx, 2 % with 429, and answering 409 to the first
  call of one order in ten (those updates are parked);
- two ``celery -A cartsync.worker worker`` processes and two producer processes (this module,
  ``produce``), all pointed at the Sentinels by ``CARTSYNC_REDIS_URL=sentinel://...`` and
  ``CARTSYNC_REDIS_SENTINEL_MASTER``. A producer that is answered "unavailable" sends the same
  update (same update id) again, as a shop would;
- partway through, the replication link is cut (the replicas replicate through a relay,
  ``worker/redisgroup.Relay``) for ``--lag`` seconds, as a partition cutting the master off,
  or replicas lagging on a busy network, would; on loopback a replica is otherwise
  microseconds behind. Then the master is killed with SIGKILL. The Sentinels promote a
  replica and point the other one at it; nothing is restarted.

Two replicas, not one: promoting the only replica would leave none, and with replica
confirmation on every enqueue would answer "unavailable" until the old master came back as a
replica. With two, the promoted one keeps one replica and producers carry on once it has
synced.

At the end, once the queues are empty, it classifies every update a producer was told was
accepted: delivered (the sandbox holds a state carrying its update id), parked, superseded
(a worker found a newer version of its order and logged it so), or lost (none of these: no
trace of it anywhere, whether or not a newer state of its order was delivered later). It
counts the accepted updates the new master never heard of (their update id's marker is not
there: acknowledged writes the failover lost, even those a worker had sent before the kill).
It checks that no order's history at the sandbox goes backwards, that every order ends in
its newest accepted state (unless parked), and that the workers ran through without a
restart. Exit status 1 when a check fails; with ``--min-replicas 0`` the losses are the
figures, not failures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos import PRODUCTS, personal
from bench.harness import (
    MERCHANT,
    PASSWORD,
    USERNAME,
    CheckedRun,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
)
from cartsync.tasks.builders import cart_changed
from cartsync.worker import keys
from cartsync.worker.processes import ChildProcess, wait_for
from cartsync.worker.redisgroup import MASTER_NAME, SentinelGroup

#: The sandbox's faults (its command-line options).
FAULTS = {"fail_rate": 0.10, "rate_limit_rate": 0.02, "retry_after": 1}
#: One order in this many is answered 409 on its first call, so its update is parked.
CONFLICT_EVERY = 10
#: Worker settings: fast retries and time-outs, so that a run takes seconds.
WORKER_SETTINGS = {
    "CARTSYNC_RETRY_BASE_S": "0.2",
    "CARTSYNC_RETRY_CAP_S": "2",
    "CARTSYNC_RETRY_MAX_ATTEMPTS": "30",
    "CARTSYNC_RETRY_MIN_WINDOW_S": "0",
    "CARTSYNC_SCHEDULER_INTERVAL_S": "0.1",
    "CARTSYNC_SCHEDULER_LEASE_S": "3",
    "CARTSYNC_CONNECT_TIMEOUT_S": "1",
    "CARTSYNC_READ_TIMEOUT_S": "2",
    "CARTSYNC_LOCK_TTL_S": "5",
    "CARTSYNC_VISIBILITY_TIMEOUT_S": "5",
}
#: Outcomes a worker logs that end an update's story.
TERMINAL = {"delivered", "superseded", "dead_lettered", "duplicate"}


@dataclass(frozen=True)
class Config:
    min_replicas: int = 1
    orders: int = 40
    #: Seconds the producers send for; the master is killed at ``kill_at_s``.
    duration_s: float = 16.0
    kill_at_s: float = 6.0
    #: Seconds the replication link is cut before the master is killed (a partition cutting
    #: the master off from its replicas, or their lag on a busy network): what the master
    #: acknowledges meanwhile never reaches a replica. On loopback a replica is otherwise
    #: never more than microseconds behind.
    lag_s: float = 1.0
    #: Updates per second, per producer.
    rate: float = 15.0
    workers: int = 2
    concurrency: int = 8
    seed: int = 1
    settle_timeout_s: float = 90.0


@dataclass
class Report(CheckedRun):
    config: Config
    accepted: int = 0
    unavailable: int = 0
    #: "Unavailable" answers by error: BrokerUnavailable (no Redis, the failover's seconds),
    #: ReplicasUnavailable (the replicas did not confirm in time).
    unavailable_by: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    #: Accepted updates the new master had never heard of (their update id's marker was not
    #: there): acknowledged writes the failover lost, whether or not a worker had already
    #: sent them before the old master died.
    forgotten: int = 0
    wrong_final: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    failover_s: float | None = None
    #: Updates each producer had accepted after the new master was found (wall-clock time):
    #: the producers carried on by themselves.
    accepted_after_failover: list[int] = field(default_factory=list)
    enqueue_ms_median: float | None = None
    enqueue_ms_p99: float | None = None
    seconds: float = 0.0

    def text(self) -> str:
        c = self.config
        lines = [
            f"failover: min replicas {c.min_replicas}, {self.accepted} updates accepted, "
            f"{self.unavailable} answers 'unavailable' ({dict(self.unavailable_by)}), "
            f"{c.workers} workers, 2 producers, "
            f"{self.seconds:.0f} s",
            f"replication cut for {c.lag_s:g} s, then the master killed at {c.kill_at_s:g} s; "
            "a replica was promoted after "
            + (f"{self.failover_s:.1f} s" if self.failover_s is not None else "(never)"),
            "accepted updates: " + ", ".join(f"{k} {v}" for k, v in sorted(self.classes.items())),
            f"accepted updates the new master had never heard of: {self.forgotten}",
            f"enqueue latency: median {self.enqueue_ms_median} ms, p99 {self.enqueue_ms_p99} ms",
            *self.verdict_lines(),
        ]
        return "\n".join(lines)


# -- a producer process ------------------------------------------------------------------------


def produce(out: Path, orders: list[str], seed: int, rate: float, duration_s: float) -> None:
    """Enqueue random updates to ``orders`` for ``duration_s``, one line of JSON per answer in
    ``out``; an "unavailable" answer is followed by the same update again."""
    from cartsync.config.logging import configure_logging
    from cartsync.config.settings import load_settings
    from cartsync.tasks.producer import Producer
    from cartsync.worker.errors import BrokerUnavailable

    settings = load_settings()
    configure_logging(settings, stream=sys.stderr)
    producer = Producer(settings)
    rng = random.Random(seed)
    begun = time.monotonic()
    with open(out, "a", encoding="utf-8") as sink:

        def write(**record: Any) -> None:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

        for n in itertools.count():
            if time.monotonic() - begun > duration_s:
                break
            time.sleep(max(0.0, n / rate - (time.monotonic() - begun)))
            ref = rng.choice(orders)
            update_id = f"{ref}-{seed}-{n}"
            extra = personal(rng)
            extra["platform"] = {"name": "failover", "version": "1", "uname": update_id}
            items = rng.sample(PRODUCTS, rng.randint(1, 3))
            body = cart_changed(merchant=MERCHANT, order_ref=ref, unshipped=items, **extra)
            while True:
                started = time.perf_counter()
                try:
                    receipt = producer.enqueue(body, update_id=update_id)
                except BrokerUnavailable as exc:
                    write(event="unavailable", update_id=update_id, error=type(exc).__name__)
                    time.sleep(0.1)
                    continue
                write(
                    event="accepted",
                    update_id=update_id,
                    order_ref=ref,
                    version=receipt.version,
                    status=receipt.status,
                    ms=round((time.perf_counter() - started) * 1000, 3),
                    at=time.time(),
                )
                break


class ProducerProcess(ChildProcess):
    """``python -m bench.failover produce ...``: one producer, its answers in a file."""

    def __init__(self, env: dict[str, str], n: int, orders: list[str], config: Config) -> None:
        super().__init__(f"failover-producer{n}")
        self.env, self.n, self.orders, self.config = env, n, orders, config
        self.out = self.log_path.with_suffix(".jsonl")

    def start(self) -> ProducerProcess:
        c = self.config
        args = [sys.executable, "-m", "bench.failover", "produce", str(self.out)]
        args += ["--seed", str(c.seed * 100 + self.n), "--rate", str(c.rate)]
        args += ["--duration", str(c.duration_s), "--orders", ",".join(self.orders)]
        self.spawn(args, self.env)
        return self

    def answers(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text(encoding="utf-8").splitlines()]

    def remove_files(self) -> None:
        self.remove_log()
        with contextlib.suppress(OSError):
            self.out.unlink()


# -- one run -------------------------------------------------------------------------------------


class Failover:
    def __init__(self, config: Config, say: Any = print) -> None:
        self.config = config
        self.say = say
        self.report = Report(config)
        self.workers: list[WorkerProcess] = []
        self.producers: list[ProducerProcess] = []
        #: Wall-clock time the new master was found (never, until it is).
        self.failed_over_at = math.inf

    def run(self) -> Report:
        c = self.config
        started = time.monotonic()
        group = SentinelGroup(replicas=2).start()
        sandbox = SandboxProcess(**FAULTS).start()
        try:
            env = cartsync_env(
                group.url,
                sandbox.url,
                CARTSYNC_REDIS_SENTINEL_MASTER=MASTER_NAME,
                CARTSYNC_REDIS_MIN_REPLICAS=str(c.min_replicas),
                CARTSYNC_WORKER_CONCURRENCY=str(c.concurrency),
                **WORKER_SETTINGS,
            )
            orders = [f"FO-{c.seed}-{n:04d}" for n in range(c.orders)]
            for n, ref in enumerate(orders):
                sandbox.admin.create_order(MERCHANT, ref, original_total=10**9)
                if n % CONFLICT_EVERY == 0:
                    sandbox.admin.script(MERCHANT, ref, [409])
            self.workers = [
                WorkerProcess(env, concurrency=c.concurrency, name=f"failover-worker{n}")
                for n in range(c.workers)
            ]
            for worker in self.workers:
                worker.start()
            self.producers = [ProducerProcess(env, n, orders, c).start() for n in range(2)]
            begun = time.monotonic()
            time.sleep(max(0.0, c.kill_at_s - (time.monotonic() - begun)))
            old_port = group.master.port
            if c.lag_s:
                self.say(f"replication link cut for {c.lag_s:g} s")
                group.relay.cut()
                time.sleep(c.lag_s)
            self.say(f"killing the master (port {old_port}) with SIGKILL")
            group.master.kill()
            killed_at = time.monotonic()
            self._wait_for_new_master(group, old_port, killed_at)
            for producer in self.producers:
                wait_for(
                    lambda p=producer: not p.running,  # type: ignore[misc]
                    timeout=c.duration_s + 60,
                    what="a producer to finish",
                    on_fail=producer.log_text,
                )
            self.say("producers done; waiting for the queues to empty")
            settings = _settings(env)
            self._settle(settings)
            self._check(settings, sandbox)
        except Exception as exc:  # report, don't hide: the run failed before its checks
            self.report.failures.append(f"the run itself failed: {type(exc).__name__}: {exc}")
        finally:
            for producer in self.producers:
                producer.stop()
            for worker in self.workers:
                worker.stop()
            sandbox.stop()
            sandbox.remove_log()
            group.remove()
            self.report.seconds = time.monotonic() - started
        return self.report

    def _wait_for_new_master(self, group: SentinelGroup, old_port: int, killed_at: float) -> None:
        def promoted() -> bool:
            port = group.master_port()
            return port is not None and port != old_port

        wait_for(promoted, timeout=30, what="the Sentinels to promote a replica", interval=0.1)
        self.report.failover_s = round(time.monotonic() - killed_at, 2)
        self.failed_over_at = time.time()

    def _accepted(self) -> list[dict[str, Any]]:
        return [a for p in self.producers for a in p.answers() if a.get("event") == "accepted"]

    def _outcomes(self) -> dict[str, str]:
        """The last terminal outcome each update id got in any worker's log."""
        last: dict[str, tuple[str, str]] = {}
        for worker in self.workers:
            for event in worker.events():
                uid, outcome = event.get("update_id"), event.get("outcome")
                if uid and outcome in TERMINAL:
                    stamp = str(event.get("timestamp", ""))
                    if uid not in last or last[uid][0] <= stamp:
                        last[uid] = (stamp, outcome)
        return {uid: outcome for uid, (_, outcome) in last.items()}

    def _settle(self, settings: Any) -> None:
        """Wait until nothing is queued, scheduled or in flight, and every accepted update has
        an outcome (or, when some were lost, until that stays so for 10 s)."""
        from cartsync.worker.redisconn import connect

        client = connect(settings, socket_timeout=2, socket_connect_timeout=1)
        prefix = settings.key_prefix
        ids = {a["update_id"] for a in self._accepted()}
        quiet_since: list[float] = []

        def settled() -> bool:
            try:
                busy = (
                    client.llen(settings.queue)
                    or client.zcard(keys.schedule(prefix))
                    or client.zcard(keys.inflight(prefix))
                    or client.hlen("unacked")
                )
            except Exception:
                return False
            if busy:
                quiet_since.clear()
                return False
            if ids <= set(self._outcomes()):
                return True
            if not quiet_since:
                quiet_since.append(time.monotonic())
            return time.monotonic() - quiet_since[0] > 10

        try:
            wait_for(
                settled,
                timeout=self.config.settle_timeout_s,
                what="the queues to empty",
                interval=0.5,
            )
        except TimeoutError as exc:
            self.report.failures.append(str(exc))
        finally:
            client.close()

    def _check(self, settings: Any, sandbox: SandboxProcess) -> None:
        from cartsync.worker.deadletters import DeadLetterStore
        from cartsync.worker.redisconn import connect

        report = self.report
        accepted = self._accepted()
        report.accepted = len(accepted)
        report.accepted_after_failover = [
            sum(
                1
                for a in p.answers()
                if a.get("event") == "accepted" and a["at"] >= self.failed_over_at
            )
            for p in self.producers
        ]
        answers = [a for p in self.producers for a in p.answers()]
        report.unavailable_by = Counter(
            a["error"] for a in answers if a.get("event") == "unavailable"
        )
        report.unavailable = sum(report.unavailable_by.values())
        latencies = sorted(a["ms"] for a in accepted)
        if latencies:
            report.enqueue_ms_median = round(statistics.median(latencies), 2)
            report.enqueue_ms_p99 = round(latencies[int(len(latencies) * 0.99) - 1], 2)
        client = connect(settings, socket_timeout=2, socket_connect_timeout=1)
        store = DeadLetterStore(client, settings.key_prefix)
        outcomes = self._outcomes()
        pipe = client.pipeline(transaction=False)
        for a in accepted:
            pipe.exists(keys.update(settings.key_prefix, a["update_id"]))
        report.forgotten = sum(1 for found in pipe.execute() if not found)
        by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in accepted:
            by_order[a["order_ref"]].append(a)
        for ref, updates in sorted(by_order.items()):
            history = sandbox.admin.history(MERCHANT, ref)
            delivered = {h["order"].get("platform", {}).get("uname") for h in history}
            parked = {a["update_id"] for a in updates if store.holds_update(a["update_id"])}
            for a in updates:
                uid = a["update_id"]
                if uid in delivered:
                    kind = "delivered"
                elif uid in parked:
                    kind = "parked"
                elif outcomes.get(uid) in ("superseded", "duplicate"):
                    kind = "superseded"
                else:
                    # No trace: not sent, not parked, and no worker ever saw it. A newer state
                    # of its order may still have been delivered (wrong_final says).
                    kind = "lost"
                    report.lost.append(f"{uid} v{a['version']}")
                report.classes[kind] += 1
            versions = [int(h.get("version") or 0) for h in history]
            if any(b < a for a, b in itertools.pairwise(versions)):
                report.reordered.append(f"{ref} {versions}")
            newest = max(updates, key=lambda a: (a["version"], a["at"]))
            final = history[-1]["order"].get("platform", {}).get("uname") if history else None
            if newest["update_id"] not in parked and final != newest["update_id"]:
                report.wrong_final.append(ref)
        client.close()
        strict = self.config.min_replicas > 0
        lost = len(report.lost)
        report.check(
            "every accepted update delivered, parked or superseded",
            lost == 0 or not strict,
            f"{lost} of {report.accepted} lost"
            + (f": {', '.join(report.lost[:5])}" if lost else ""),
        )
        report.check(
            "the new master knows every accepted update",
            report.forgotten == 0 or not strict,
            f"{report.forgotten} of {report.accepted} unknown to it",
        )
        report.check(
            "no order's history at the sandbox goes backwards",
            not report.reordered or not strict,
            f"{len(by_order) - len(report.reordered)} of {len(by_order)} in order"
            + (f"; {'; '.join(report.reordered[:3])}" if report.reordered else ""),
        )
        report.check(
            "every order ends in its newest accepted state (unless parked)",
            not report.wrong_final or not strict,
            f"{len(by_order) - len(report.wrong_final)} of {len(by_order)}",
        )
        restarted = [w.log_path.name for w in self.workers if not w.running or w.starts != 1]
        stopped = [w.log_path.name for w in self.workers if "Unrecoverable error" in w.log_text()]
        report.check(
            "the workers carried on without a restart",
            not restarted and not stopped,
            "both ran through" if not (restarted or stopped) else ", ".join(restarted + stopped),
        )
        report.check(
            "the failover happened",
            report.failover_s is not None,
            f"a replica was promoted {report.failover_s} s after the kill",
        )

    def cleanup(self) -> None:
        for worker in self.workers:
            worker.remove_log()
        for producer in self.producers:
            producer.remove_files()

    def log_paths(self) -> list[str]:
        return [str(w.log_path) for w in self.workers] + [
            str(p) for producer in self.producers for p in (producer.log_path, producer.out)
        ]


def _settings(env: dict[str, str]) -> Any:
    from cartsync.config.settings import load_settings

    return load_settings(env)


def run_failover(config: Config, say: Any = print, keep_logs: bool = False) -> Report:
    """Run once; logs are removed when every check passed (unless ``keep_logs``)."""
    failover = Failover(config, say)
    report = failover.run()
    if report.ok and not keep_logs:
        failover.cleanup()
    else:
        say("logs: " + " ".join(failover.log_paths()))
    return report


def enqueue_latency(updates: int) -> dict[str, dict[str, float]]:
    """Milliseconds one enqueue takes through the Sentinels, replica confirmation off and on
    (min replicas 1 and 2), each ``updates`` times in turn, on a quiet group: no faults, no
    workers, nothing cut. Median and 99th percentile per setting."""
    from cartsync.config.settings import Settings
    from cartsync.tasks.producer import Producer

    group = SentinelGroup(replicas=2, relayed=False).start()
    try:
        base = Settings(
            redis_url=group.url,
            redis_sentinel_master=MASTER_NAME,
            sequra_username=USERNAME,
            sequra_password=PASSWORD,
        )
        producers = {n: Producer(base.with_overrides(redis_min_replicas=n)) for n in (0, 1, 2)}
        rng = random.Random(1)
        timings: dict[int, list[float]] = {n: [] for n in producers}
        for i in range(updates * len(producers)):
            n = i % len(producers)
            body = cart_changed(
                merchant=MERCHANT,
                order_ref=f"LAT-{i % 50}",
                unshipped=rng.sample(PRODUCTS, 2),
                **personal(rng),
            )
            started = time.perf_counter()
            producers[n].enqueue(body)
            timings[n].append((time.perf_counter() - started) * 1000)
    finally:
        group.remove()
    result = {}
    for n, ms in timings.items():
        ms.sort()
        result[f"min replicas {n}"] = {
            "median_ms": round(statistics.median(ms), 3),
            "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
        }
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["latency"]:
        parser = argparse.ArgumentParser(prog="python -m bench.failover latency")
        parser.add_argument("--updates", type=int, default=2000, help="per setting")
        args = parser.parse_args(argv[1:])
        for name, figures in enqueue_latency(args.updates).items():
            print(f"{name}: median {figures['median_ms']} ms, p99 {figures['p99_ms']} ms")
        return 0
    if argv[:1] == ["produce"]:
        parser = argparse.ArgumentParser(prog="python -m bench.failover produce")
        parser.add_argument("out", type=Path)
        parser.add_argument("--orders", required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--rate", type=float, required=True)
        parser.add_argument("--duration", type=float, required=True)
        args = parser.parse_args(argv[1:])
        produce(args.out, args.orders.split(","), args.seed, args.rate, args.duration)
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.failover",
        description="Kill a Sentinel-managed Redis master under load; count what is lost.",
    )
    defaults = Config()
    parser.add_argument("--min-replicas", type=int, default=defaults.min_replicas)
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds")
    parser.add_argument("--kill-at", type=float, default=defaults.kill_at_s, help="seconds")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="per producer")
    parser.add_argument(
        "--lag", type=float, default=defaults.lag_s, help="seconds the replicas lag at the kill"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", dest="json_path", help="also write the reports here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs of a passing run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.orders < 1 or args.rate <= 0:
        parser.error("--runs, --orders and --rate must be positive")
    if args.lag < 0 or args.lag >= args.kill_at:
        parser.error("--lag must be from 0 to less than --kill-at")
    if not 0 < args.kill_at < args.duration:
        parser.error("--kill-at must fall within --duration")
    reports = []
    for run in range(args.runs):
        config = Config(
            min_replicas=args.min_replicas,
            orders=args.orders,
            duration_s=args.duration,
            kill_at_s=args.kill_at,
            rate=args.rate,
            lag_s=args.lag,
            seed=args.seed + run,
        )
        report = run_failover(config, keep_logs=args.keep_logs)
        print(report.text(), flush=True)
        reports.append(report)
    if args.runs > 1:
        lost = [len(r.lost) for r in reports]
        total = [r.accepted for r in reports]
        print(f"lost per run: {lost} of {total} accepted")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                [
                    {
                        **asdict(r),
                        "classes": dict(r.classes),
                        "unavailable_by": dict(r.unavailable_by),
                        "config": asdict(r.config),
                    }
                    for r in reports
                ],
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
