"""The chaos harness: many orders, a faulty API, workers killed with SIGKILL, Redis crashed.

    python -m bench.chaos                          # 200 orders, 3 workers, 60 s of chaos
    python -m bench.chaos --restart-redis          # and Redis is killed and restarted midway
    python -m bench.chaos --orders 30 --duration 20

What happens:

- an embedded Redis of the run's own, append-only file on with ``appendfsync always`` (a
  Redis crash must lose no accepted update; ``everysec`` could lose the last second);
- the sandbox as a process, injecting faults on every call: 20 % answered 500/502/503, 5 %
  never answered (the client times out), 2 % connections dropped, 3 % answered 429 with
  ``Retry-After``, and a scripted 409 for the first call of one order in twenty;
- several ``celery -A cartsync.worker worker`` processes; every few seconds one of them is killed
  with SIGKILL and started again;
- one producer enqueues, at random moments, a random sequence of the five cart scenarios for
  every order (each payload carries personal-data marker strings);
- with ``--restart-redis``, Redis is killed (SIGKILL) halfway and started again on its data.

At the end, once everything has settled, it checks and prints:

1. every order's state at the sandbox is its last enqueued state, unless that update is in
   the dead-letter queue;
2. no order's history at the sandbox shows an older version accepted after a newer one;
3. every accepted update is accounted for, by the last terminal outcome its id got in any
   worker's log: delivered, superseded or dead-lettered; the counts add up, the dead-lettered
   ones are exactly the dead-letter queue's, and every delivered version is in the history;
4. no traceback and no personal data (the markers) or credentials in any log.

The exit status is 1 when a check fails, 0 when all pass.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import structlog

from bench.harness import (
    MERCHANT,
    PASSWORD,
    CheckedRun,
    SandboxProcess,
    WorkerProcess,
    cartsync_env,
)
from cartsync.tasks.builders import (
    Item,
    cancelled,
    cart_changed,
    fully_shipped,
    partial_return,
    partially_shipped,
)
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.processes import json_events, wait_for
from cartsync.worker.redisserver import EmbeddedRedis

#: Strings every payload carries in its personal fields; none may reach a log.
MARKERS = ("Piimarker", "piimarker@example.com", "C/ Marcador Secreto", "611223344", "99887766K")

#: Faults the sandbox injects on every call (its command-line options).
FAULTS = {
    "fail_rate": 0.20,
    "timeout_rate": 0.05,
    "drop_rate": 0.02,
    "rate_limit_rate": 0.03,
    "retry_after": 1,
    "hang_s": 3,
}
#: One order in this many gets a scripted 409 on its first call.
CONFLICT_EVERY = 20

#: Worker settings: fast retries and timeouts so that a run takes seconds, not hours.
WORKER_SETTINGS = {
    "CARTSYNC_RETRY_BASE_S": "0.2",
    "CARTSYNC_RETRY_CAP_S": "2",
    "CARTSYNC_RETRY_MAX_ATTEMPTS": "12",
    "CARTSYNC_RETRY_MIN_WINDOW_S": "0",
    "CARTSYNC_SCHEDULER_INTERVAL_S": "0.1",
    "CARTSYNC_SCHEDULER_LEASE_S": "3",
    "CARTSYNC_CONNECT_TIMEOUT_S": "1",
    "CARTSYNC_READ_TIMEOUT_S": "1",
    "CARTSYNC_LOCK_TTL_S": "4",
    "CARTSYNC_VISIBILITY_TIMEOUT_S": "5",
}

#: Outcomes that end an update's story (``retrying`` and ``deferred`` do not).
TERMINAL = {"delivered", "superseded", "dead_lettered", "duplicate"}

PRODUCTS = (
    Item("CAM-001", "Camisa de lino", 3990),
    Item("CHA-002", "Chaqueta vaquera", 7450),
    Item("ZAP-003", "Zapatillas de running", 8900),
    Item("BOL-004", "Bolso de piel", 12900),
    Item("GAF-005", "Gafas de sol", 5600),
)
HANDLING = {"type": "handling", "reference": "seur24", "name": "SEUR 24h", "total_with_tax": 395}


@dataclass(frozen=True)
class ChaosConfig:
    orders: int = 200
    duration_s: float = 60.0
    workers: int = 3
    concurrency: int = 8
    kill_every_s: float = 5.0
    restart_redis: bool = False
    seed: int = 1
    settle_timeout_s: float = 120.0


@dataclass
class Accepted:
    """One update the producer had accepted."""

    update_id: str
    order_ref: str
    version: int
    order: dict[str, Any]


@dataclass
class Report(CheckedRun):
    config: ChaosConfig
    accepted: int = 0
    kills: int = 0
    redis_restarts: int = 0
    #: Messages lost between the queue and a worker, and brought back by the in-flight set.
    recovered: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def text(self) -> str:
        c = self.config
        lines = [
            f"chaos: {c.orders} orders, {self.accepted} updates accepted, {c.workers} workers "
            f"x{c.concurrency} threads, {self.kills} SIGKILLs, {self.redis_restarts} Redis "
            f"restarts, {self.seconds:.0f} s",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
            f"messages presumed lost on their way to a worker and sent again: {self.recovered}",
            *self.verdict_lines(),
        ]
        return "\n".join(lines)


def personal(rng: random.Random) -> dict[str, Any]:
    """Customer and addresses, every personal field holding a marker string."""
    address = {
        "given_names": "Ana Piimarker",
        "surnames": "Piimarker López",
        "company": "",
        "address_line_1": f"C/ Marcador Secreto {rng.randrange(1, 99)}",
        "address_line_2": "",
        "postal_code": "08013",
        "city": "Barcelona",
        "country_code": "ES",
        "phone": "611223344",
    }
    return {
        "delivery_address": address,
        "invoice_address": dict(address),
        "customer": {
            "given_names": "Ana Piimarker",
            "surnames": "Piimarker López",
            "email": "piimarker@example.com",
            "ref": rng.randrange(1, 10**6),
            "nin": "99887766K",
        },
        "platform": {"name": "chaos", "version": "1.0", "uname": "Linux chaos x86_64"},
    }


def scenario_updates(rng: random.Random, order_ref: str) -> list[dict[str, Any]]:
    """One to five updates for an order: the five scenarios, shuffled, with random items."""
    names = ["full", "partial", "return", "cancel", "edit"]
    rng.shuffle(names)
    bodies = []
    for name in names[: rng.randint(1, 5)]:
        items = rng.sample(PRODUCTS, rng.randint(1, 3))
        extra = personal(rng)
        m, o = MERCHANT, order_ref
        if name == "full":
            body = fully_shipped(merchant=m, order_ref=o, items=[*items, HANDLING], **extra)
        elif name == "partial":
            body = partially_shipped(
                merchant=m, order_ref=o, shipped=[items[0], HANDLING], unshipped=items[1:], **extra
            )
        elif name == "return":
            body = partial_return(merchant=m, order_ref=o, kept=items[:1], **extra)
        elif name == "cancel":
            body = cancelled(merchant=m, order_ref=o, reason="customer_cancel", **extra)
        else:
            body = cart_changed(merchant=m, order_ref=o, unshipped=[*items, HANDLING], **extra)
        bodies.append(body)
    return bodies


class Chaos:
    """One run: start everything, make trouble, settle, check."""

    def __init__(self, config: ChaosConfig, log: Any = print) -> None:
        self.config = config
        self.say = log
        self.rng = random.Random(config.seed)
        self.report = Report(config)
        self.accepted: list[Accepted] = []
        self.producing = threading.Event()
        self.stop_chaos = threading.Event()
        self.redis_lock = threading.Lock()  # held while Redis is down on purpose
        self.workers: list[WorkerProcess] = []
        self.workers_lock = threading.Lock()
        handle, path = tempfile.mkstemp(prefix="cartsync-chaos-producer-", suffix=".log")
        os.close(handle)
        self.producer_log = Path(path)

    def run(self) -> Report:
        c = self.config
        started = time.monotonic()
        server = EmbeddedRedis(persistent=True, fsync="always").start()
        sandbox = SandboxProcess(**FAULTS).start()
        try:
            env = cartsync_env(
                server.url,
                sandbox.url,
                CARTSYNC_WORKER_CONCURRENCY=str(c.concurrency),
                **WORKER_SETTINGS,
            )
            plan = self._plan(sandbox)
            self.workers = [
                WorkerProcess(env, concurrency=c.concurrency, name=f"chaos-worker{n}")
                for n in range(c.workers)
            ]
            for worker in self.workers:
                worker.start()
            producer = threading.Thread(target=self._produce, args=(env, plan), daemon=True)
            killer = threading.Thread(target=self._kill_loop, args=(server, started), daemon=True)
            producer.start()
            killer.start()
            producer.join()
            time.sleep(max(0.0, c.duration_s - (time.monotonic() - started)))
            self.stop_chaos.set()
            killer.join()
            with self.workers_lock:
                for worker in self.workers:
                    if not worker.running:
                        worker.start()
            self.say("chaos over; waiting for everything to settle")
            self._settle(server.url)
            self._check(server.url, sandbox)
        except Exception as exc:  # report, don't hide: the run failed before its checks
            self.report.failures.append(f"the run itself failed: {type(exc).__name__}: {exc}")
        finally:
            self.stop_chaos.set()
            for worker in self.workers:
                worker.stop()
            sandbox.stop()
            sandbox.remove_log()  # the sandbox logs nothing per request unless asked to
            server.stop()
            self.report.seconds = time.monotonic() - started
        return self.report

    # -- the plan and the producer -------------------------------------------------------

    def _plan(self, sandbox: SandboxProcess) -> list[tuple[float, str, dict[str, Any]]]:
        """(when, order_ref, body) for every update, sorted by when."""
        c = self.config
        window = c.duration_s * 0.6
        plan = []
        for n in range(c.orders):
            ref = f"CH-{c.seed}-{n:05d}"
            # A huge original total: no update is refused as an upsell; 409s are scripted.
            sandbox.admin.create_order(MERCHANT, ref, original_total=10**9)
            if n % CONFLICT_EVERY == 0:
                sandbox.admin.script(MERCHANT, ref, [409])
            for body in scenario_updates(self.rng, ref):
                plan.append((self.rng.uniform(0, window), ref, body))
        plan.sort(key=lambda entry: entry[0])
        return plan

    def _produce(self, env: dict[str, str], plan: list[tuple[float, str, dict[str, Any]]]) -> None:
        from cartsync.config.logging import configure_logging
        from cartsync.config.settings import load_settings
        from cartsync.tasks.producer import Producer
        from cartsync.worker.errors import BrokerUnavailable

        settings = load_settings(env)
        # The producer logs through the process-wide configuration: point it at this run's
        # file for the run, and put back what was there (a test session's, say) afterwards.
        saved_structlog = structlog.get_config()
        root = logging.getLogger()
        saved_root = (root.handlers[:], root.level)
        stream = open(self.producer_log, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
        configure_logging(settings, stream=stream, cache=False)
        producer = Producer(settings)
        begun = time.monotonic()
        try:
            for at, ref, body in plan:
                time.sleep(max(0.0, at - (time.monotonic() - begun)))
                update_id = f"{ref}-{self.rng.getrandbits(64):016x}"
                while True:
                    try:
                        receipt = producer.enqueue(body, update_id=update_id)
                        break
                    except BrokerUnavailable:
                        # Redis is down (on purpose): a shop retries; the same update id
                        # makes a retry of an accepted update a no-op.
                        time.sleep(0.2)
                if receipt.status in ("enqueued", "duplicate"):
                    self.accepted.append(Accepted(update_id, ref, receipt.version, body["order"]))
        finally:
            producer.client.close()
            structlog.configure(**saved_structlog)
            root.handlers, level = saved_root
            root.setLevel(level)
            stream.close()

    # -- trouble -----------------------------------------------------------------------------

    def _kill_loop(self, server: EmbeddedRedis, started: float) -> None:
        """SIGKILL a worker every ``kill_every_s``; with ``restart_redis``, kill Redis once,
        halfway through the run. Both count from ``started``, the run's own start, so that a
        slow start of the workers cannot push a kill past the end of a short run."""
        c = self.config
        next_kill = started + c.kill_every_s
        restart_at = started + c.duration_s / 2 if c.restart_redis else math.inf
        while not self.stop_chaos.wait(max(0.0, min(next_kill, restart_at) - time.monotonic())):
            now = time.monotonic()
            if now >= next_kill:
                next_kill += c.kill_every_s
                with self.workers_lock:
                    victim = self.rng.choice(self.workers)
                    victim.kill()
                    self.report.kills += 1
                    victim.start(wait=False)
            if now >= restart_at:
                restart_at = math.inf
                self.say("killing Redis (SIGKILL) and starting it again on its data")
                server.kill()
                time.sleep(1.0)
                server.start()
                self.report.redis_restarts += 1

    # -- the end -----------------------------------------------------------------------------

    def _events(self) -> list[dict[str, Any]]:
        events = []
        for worker in self.workers:
            events.extend(worker.events())
        events.sort(key=lambda e: e.get("timestamp", ""))
        return events

    def _last_outcomes(self) -> dict[str, dict[str, Any]]:
        """The last terminal event of every update id, across every worker's log."""
        last: dict[str, dict[str, Any]] = {}
        for event in self._events():
            if event.get("outcome") in TERMINAL and event.get("update_id"):
                last[event["update_id"]] = event
        return last

    def _settle(self, url: str) -> None:
        ids = {a.update_id for a in self.accepted}
        client = redis.Redis.from_url(url)

        def quiet() -> bool:
            if client.llen("cartsync") or client.zcard(keys.schedule("cartsync")):
                return False
            if client.hlen("unacked"):
                return False
            return ids <= set(self._last_outcomes())

        try:
            wait_for(quiet, timeout=self.config.settle_timeout_s, what="every update", interval=0.5)
        except TimeoutError as exc:
            self.report.failures.append(str(exc))
        finally:
            client.close()

    def _check(self, url: str, sandbox: SandboxProcess) -> None:
        report = self.report
        report.accepted = len(self.accepted)
        client = redis.Redis.from_url(url)
        store = DeadLetterStore(client, "cartsync")
        parked = {a.update_id for a in self.accepted if store.holds_update(a.update_id)}
        last_events = self._last_outcomes()

        # 3. accounting
        classes: dict[str, str] = {}
        for a in self.accepted:
            event = last_events.get(a.update_id)
            if event is None:
                classes[a.update_id] = "unaccounted"
                continue
            outcome = event["outcome"]
            if outcome == "duplicate":
                parked_before = event.get("reason") == "already_dead_lettered"
                outcome = "dead_lettered" if parked_before else "delivered"
            classes[a.update_id] = outcome
        report.counts = Counter(classes.values())
        missing = report.counts.get("unaccounted", 0)
        add_up = sum(report.counts[k] for k in ("delivered", "superseded", "dead_lettered"))
        dead = {u for u, k in classes.items() if k == "dead_lettered"}
        report.check(
            "every update accounted for",
            missing == 0 and add_up == len(self.accepted) and dead == parked,
            f"{add_up} of {len(self.accepted)} delivered/superseded/dead-lettered; "
            f"{missing} without a terminal outcome; dead-lettered by the logs {len(dead)}, "
            f"in the dead-letter queue {len(parked)}",
        )

        # 1 and 2: final states and history order, per order
        by_order: dict[str, list[Accepted]] = defaultdict(list)
        for a in self.accepted:
            by_order[a.order_ref].append(a)
        wrong_state, reordered, lost_deliveries = [], [], []
        for ref, updates in sorted(by_order.items()):
            last = max(updates, key=lambda a: a.version)
            found = sandbox.admin.order(MERCHANT, ref) or {}
            history = [h.get("version") for h in found.get("history", [])]
            if last.update_id not in parked and found.get("state") != last.order:
                wrong_state.append(ref)
            if any(b < a for a, b in itertools.pairwise(history)):
                reordered.append(f"{ref} {history}")
            for a in updates:
                if classes[a.update_id] == "delivered" and a.version not in history:
                    lost_deliveries.append(f"{ref} v{a.version}")
        report.check(
            "final state is the last enqueued one (unless dead-lettered)",
            not wrong_state,
            f"{len(by_order) - len(wrong_state)} of {len(by_order)} orders"
            + (f"; wrong: {', '.join(wrong_state[:10])}" if wrong_state else ""),
        )
        report.check(
            "no older version accepted after a newer one",
            not reordered,
            f"{len(by_order) - len(reordered)} of {len(by_order)} histories in order"
            + (f"; out of order: {'; '.join(reordered[:5])}" if reordered else ""),
        )
        report.check(
            "every delivered version is in the sandbox's history",
            not lost_deliveries,
            "yes" if not lost_deliveries else ", ".join(lost_deliveries[:10]),
        )

        # 4. logs
        texts = {w.log_path.name: w.log_text() for w in self.workers}
        texts[self.producer_log.name] = self.producer_log.read_text(encoding="utf-8")
        tracebacks, connection_losses = [], 0
        for name, text in texts.items():
            for line in text.splitlines():
                if "Unrecoverable error" in line:  # a worker stopped by itself: never fine
                    tracebacks.append(f"{name}: {line[:200]}")
                    continue
                if "Traceback" not in line:
                    continue
                if self.config.restart_redis and connection_loss_report(line):
                    connection_losses += 1
                else:
                    tracebacks.append(f"{name}: {line[:200]}")
        secrets = (*MARKERS, PASSWORD)
        leaks = sorted(
            {
                f"{name}: {marker}"
                for name, text in texts.items()
                for marker in secrets
                if marker.lower() in text.lower()
            }
        )
        allowed = (
            f" ({connection_losses} logged by Celery/kombu about the lost Redis connection "
            "while Redis was down, not counted)"
            if connection_losses
            else ""
        )
        report.check(
            "no traceback in the logs",
            not tracebacks,
            ("none" + allowed) if not tracebacks else "; ".join(tracebacks[:3]),
        )
        report.check(
            "no personal data or credentials in the logs",
            not leaks,
            f"{len(MARKERS)} markers and the password looked for in {len(texts)} logs"
            + (f"; found: {'; '.join(leaks[:5])}" if leaks else ""),
        )
        events = sum(len(json_events(t, "order_update")) for t in texts.values())
        report.check("worker events were logged", events > 0, f"{events} order_update events")
        report.recovered = sum(
            int(e.get("count") or 0)
            for t in texts.values()
            for e in json_events(t, "schedule.presumed_lost")
        )
        client.close()

    def cleanup(self) -> None:
        """Remove the log files (kept when a check failed, for a human to read)."""
        for worker in self.workers:
            worker.remove_log()
        with contextlib.suppress(OSError):
            self.producer_log.unlink()

    def log_paths(self) -> list[str]:
        return [str(w.log_path) for w in self.workers] + [str(self.producer_log)]


def connection_loss_report(line: str) -> bool:
    """True for a log event in which Celery or kombu report losing their Redis connection
    (with a traceback, at warning level or above): expected while Redis restarts."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    logger = str(event.get("logger", ""))
    text = str(event.get("exception", ""))
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return logger.startswith(("celery.", "kombu.")) and (
        "redis.exceptions.ConnectionError" in last or "redis.exceptions.TimeoutError" in last
    )


def run_chaos(config: ChaosConfig, log: Any = print, keep_logs: bool = False) -> Report:
    """Run once; logs are removed when every check passed (unless ``keep_logs``)."""
    chaos = Chaos(config, log)
    report = chaos.run()
    if report.ok and not keep_logs:
        chaos.cleanup()
    else:
        log("logs: " + " ".join(chaos.log_paths()))
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Kill workers (and Redis) under a faulty API; check that nothing is lost.",
    )
    defaults = ChaosConfig()
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--kill-every", type=float, default=defaults.kill_every_s, help="seconds")
    parser.add_argument("--restart-redis", action="store_true", help="kill Redis midway")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", dest="json_path", help="also write the report here")
    args = parser.parse_args(argv)
    for name in ("orders", "workers", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.duration <= 0 or args.kill_every <= 0:
        parser.error("--duration and --kill-every must be greater than 0")
    config = ChaosConfig(
        orders=args.orders,
        duration_s=args.duration,
        workers=args.workers,
        concurrency=args.concurrency,
        kill_every_s=args.kill_every,
        restart_redis=args.restart_redis,
        seed=args.seed,
    )
    report = run_chaos(config)
    print(report.text())
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "accepted": report.accepted,
                    "kills": report.kills,
                    "redis_restarts": report.redis_restarts,
                    "recovered": report.recovered,
                    "counts": dict(report.counts),
                    "checks": report.checks,
                    "failures": report.failures,
                    "seconds": report.seconds,
                },
                out,
                indent=2,
            )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
