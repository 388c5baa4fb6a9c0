"""The schedule: messages waiting for their time, in a Redis sorted set scored by due time.

Every accepted update starts here, due at once, and so does every retry, due later. Backoff
can last hours, and Celery's countdowns on Redis are unsafe at that length (a task held
longer than the broker's visibility timeout runs twice; ETA tasks held in a killed worker's
memory are lost). So a waiting message lives here, in Redis, and every worker runs a small
loop, the pump, that moves due messages into the Celery queue. The queue itself only ever
carries work that is due now.

The pump keeps the queue short: it tops it up to one waiting task per thread of its worker
and leaves the rest of a backlog here. Each task carries a batch of updates, cut as evenly
as the backlog allows and at most ``CARTSYNC_WORKER_BATCH`` (:func:`batch_sizes`): a trickle
of updates travels one per task, a burst shares Celery's cost per task (about 1.5 ms of a
worker's CPU). A producer that
schedules an update wakes a waiting pump (``keys.wake``), so a new update does not wait for
the pump's next look.

Moving is claim and hand off, then publish: one script takes due entries out of the schedule
(so that two pumps never take the same ones) and hands them off to the *in-flight* set,
where each stays until a worker has recorded the outcome of its attempt (the last ledger
step of its task removes it, ``Ledger.step``); then they are published. Handing off comes
before publishing because a worker can finish a task before the publish call that sent it
has returned: an entry added afterwards would never be removed, and be swept and run again
(one calm run counted 18 such false sweeps). A publish that fails puts its entries back in
the schedule, due when the claim's lease ends; a publisher that dies after its claim leaves
them in flight, where the sweep finds them. Any of this can run a message twice, never zero
times; the order ledger makes twice harmless.

The in-flight set is there because the Celery queue alone is not enough: kombu's Redis
transport pops a message (BRPOP) before it records it as unacknowledged, and a worker killed
in between loses it (the chaos harness found this). An in-flight entry older than its watch
time is presumed lost and scheduled again (:meth:`Schedule.sweep`), but only while the
Celery queue is empty: a message still waiting in a long queue is not lost, and publishing
copies of a whole backlog would only make it longer. The watch time is twice the visibility
timeout, so that a message a killed worker held is brought back by kombu first.

Each move is one Lua script (``worker/lua/schedule_*.lua``).

The pump also says that its worker is alive: every :data:`HEARTBEAT_S` it writes its worker's
id and the time into a sorted set (``keys.workers``), which the metrics count
(``cartsync_workers_alive``), and it takes the id out when the worker shuts down. It writes
the same into a second set (``keys.workers_flagging``), which workers of releases before the
ledger's ``parked`` flag do not know: while one of those is alive, the claim looks among the
dead letters for every update (``DeadLetterStore.flag_parked_orders``).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import redis

from cartsync.config.logging import get_logger
from cartsync.worker import keys, scripts
from cartsync.worker.redistext import text

log = get_logger("cartsync.schedule")

#: Entries one claim takes at most, so one worker does not hoard a large backlog.
CLAIM_BATCH = 500

#: Seconds between a pump's heartbeats (at most once per look at the schedule): the metrics
#: count a worker alive while its heartbeat is recent (``worker/metrics.py``).
HEARTBEAT_S = 5.0
#: Seconds a worker that stopped beating stays in the heartbeat set before it is forgotten.
HEARTBEAT_FORGET_S = 24 * 3600.0

#: An in-flight message is presumed lost this many visibility timeouts after it was published.
WATCH_VISIBILITY_TIMEOUTS = 2

#: Seconds the pump waits before looking again when the queue already holds enough tasks.
QUEUE_FULL_WAIT_S = 0.01


def watch_s(visibility_timeout_s: float) -> float:
    """How long a published message is watched in flight before it is presumed lost."""
    return WATCH_VISIBILITY_TIMEOUTS * visibility_timeout_s


def batch_sizes(count: int, free: int, most: int) -> list[int]:
    """How to cut ``count`` claimed updates into tasks, given ``free`` task slots to fill.

    One task per free slot while that keeps every task within ``most`` updates, more tasks
    when it does not; the sizes differ by one at most, so no thread gets a long tail.
    """
    if count <= 0:
        return []
    tasks = max(min(free, count), math.ceil(count / most))
    size, larger = divmod(count, tasks)
    return [size + 1] * larger + [size] * (tasks - larger)


def member_of(message: dict[str, Any]) -> str:
    """The one text form of a message in the schedule and the in-flight set; it is also what
    a task receives. Every writer must use this (or ``UpdateMessage.split_at_version``, which
    joins to the same text)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Claimed(NamedTuple):
    """What one claim took: the queue's free task slots, and the members claimed for them."""

    free: int
    members: list[str]
    #: The claim took as many entries as it could, so more may be due: look again at once.
    #: Otherwise it took every due entry, and the next look can wait for a wake token.
    full: bool = False


class Schedule:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = keys.schedule(prefix)
        self.inflight_key = keys.inflight(prefix)
        self.wake_key = keys.wake(prefix)
        self.workers_key = keys.workers(prefix)
        self.flagging_key = keys.workers_flagging(prefix)
        self._claim = scripts.load(client, "schedule_claim")
        self._hand_off = scripts.load(client, "schedule_hand_off")
        self._give_back = scripts.load(client, "schedule_give_back")
        self._sweep = scripts.load(client, "schedule_sweep")

    def add(self, message: dict[str, Any], due: float) -> str:
        member = member_of(message)
        self.client.zadd(self.key, {member: due})
        return member

    def remove(self, member: str) -> None:
        self.client.zrem(self.key, member)

    def hand_off(self, members: list[str], watch_until: float) -> None:
        """The entries are about to be published: watch them in flight until
        ``watch_until``."""
        self._hand_off(keys=[self.key, self.inflight_key], args=[repr(watch_until), *members])

    def give_back(self, members: list[str], now: float) -> None:
        """In-flight entries a worker took and will not attempt: due again now."""
        self._move_back(members, now, wake=True)

    def put_back(self, members: list[str], due: float) -> None:
        """In-flight entries to try again later: from the in-flight set to the schedule, due
        at ``due``."""
        self._move_back(members, due, wake=False)

    def _move_back(self, members: list[str], due: float, *, wake: bool) -> None:
        if members:
            self._give_back(
                keys=[self.inflight_key, self.key, self.wake_key],
                args=[repr(due), "1" if wake else "0", *members],
            )

    def done(self, member: str) -> None:
        """A worker recorded the outcome of this in-flight message."""
        self.client.zrem(self.inflight_key, member)

    def sweep(self, now: float, queue: str, limit: int = CLAIM_BATCH) -> int:
        """Schedule again the in-flight entries presumed lost (if ``queue`` is empty)."""
        moved = self._sweep(keys=[self.inflight_key, self.key, queue], args=[repr(now), limit])
        return int(moved)

    def in_flight(self) -> int:
        """Messages handed to the queue whose attempt has not finished yet."""
        return int(self.client.zcard(self.inflight_key))

    def claim_due(
        self,
        now: float,
        lease_s: float,
        *,
        queue: str,
        slots: int,
        batch: int,
        watch_until: float | None = None,
    ) -> Claimed:
        """Claim due entries for the task slots ``queue`` has free (``slots`` minus the tasks
        waiting in it), ``batch`` updates per slot at most.

        With ``watch_until``, the claimed entries are handed off to the in-flight set in the
        same step (as :meth:`hand_off` does), watched until then; without it, they stay in the
        schedule, hidden until the lease ends."""
        found = self._claim(
            keys=[self.key, queue, self.inflight_key],
            args=[
                repr(now),
                repr(now + lease_s),  # the lease ends: claimed entries are due again
                slots,
                batch,
                CLAIM_BATCH,
                "" if watch_until is None else repr(watch_until),
            ],
        )
        free, *members = found
        taken = [text(m) for m in members]
        limit = min(int(free) * batch, CLAIM_BATCH)
        return Claimed(int(free), taken, full=int(free) > 0 and len(taken) >= limit)

    def wait_for_work(self, timeout_s: float) -> None:
        """Block until a producer schedules an update due now, or ``timeout_s`` passes."""
        self.client.blpop([self.wake_key], timeout=timeout_s)

    def depth(self) -> int:
        """Messages waiting, due or not."""
        return int(self.client.zcard(self.key))

    def due(self, now: float) -> int:
        return int(self.client.zcount(self.key, "-inf", repr(now)))

    def earliest(self) -> float | None:
        """When the first waiting message is (or was) due; None when none waits."""
        return _first_score(self.client, self.key)

    def earliest_watch(self) -> float | None:
        """Until when the oldest in-flight message is watched; None when none is in flight."""
        return _first_score(self.client, self.inflight_key)

    def heartbeat(self, worker: str, now: float) -> None:
        """Say that ``worker``'s pump is alive at ``now`` (and forget long-silent ones), in
        one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for key in (self.workers_key, self.flagging_key):
            pipe.zadd(key, {worker: now})
            pipe.zremrangebyscore(key, "-inf", repr(now - HEARTBEAT_FORGET_S))
            pipe.expire(key, int(HEARTBEAT_FORGET_S))
        pipe.execute()

    def forget(self, worker: str) -> None:
        """``worker`` stopped: no longer alive."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.workers_key, worker)
        pipe.zrem(self.flagging_key, worker)
        pipe.execute()

    def workers_alive(self, since: float) -> int:
        """Workers whose pump beat at ``since`` or later."""
        return int(self.client.zcount(self.workers_key, repr(since), "+inf"))

    def earlier_workers_alive(self, since: float) -> int:
        """Workers whose pump beat at ``since`` or later without saying that their parks flag
        their orders (``keys.workers_flagging``): workers of an earlier release."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebyscore(self.workers_key, repr(since), "+inf")
        pipe.zrangebyscore(self.flagging_key, repr(since), "+inf")
        alive, flagging = pipe.execute()
        return len(set(alive) - set(flagging))


def _first_score(client: redis.Redis, key: str) -> float | None:
    first = client.zrange(key, 0, 0, withscores=True)
    return float(first[0][1]) if first else None


#: Publishes one task carrying these members.
Publish = Callable[[list[str]], None]


def pump_once(
    schedule: Schedule,
    publish: Publish,
    *,
    now: float,
    lease_s: float,
    queue: str,
    slots: int,
    batch: int,
    watch_s: float | None = None,
) -> Claimed:
    """Claim due messages for the queue's free task slots and publish them, cut into tasks
    by :func:`batch_sizes`. Returns the claim (``free`` 0: the queue is full already).

    With ``watch_s``, the claimed entries are handed off to the in-flight set for that long, in
    the claim's own step, *before* any is published: a worker can run a task and record its
    outcome (which drops the entry) before ``publish`` has even returned, and an entry added
    after that would stay in flight, be counted there and be swept and sent again two
    visibility timeouts later.
    If a publish fails, its entries and those not yet published go back to the schedule, due
    when the claim's lease ends (as without ``watch_s``); if even that fails (Redis gone),
    they are in flight, and the sweep publishes them again. Without ``watch_s``, each
    published entry is removed (nothing then notices a message lost on its way to a worker).
    """
    claimed = schedule.claim_due(
        now,
        lease_s,
        queue=queue,
        slots=slots,
        batch=batch,
        watch_until=None if watch_s is None else now + watch_s,
    )
    start = 0
    for size in batch_sizes(len(claimed.members), claimed.free, batch):
        members = claimed.members[start : start + size]
        try:
            publish(members)
        except Exception:
            if watch_s is not None:
                with contextlib.suppress(Exception):
                    schedule.put_back(claimed.members[start:], now + lease_s)
            raise
        start += size
        if watch_s is None:
            for member in members:
                schedule.remove(member)
    return claimed


class Pump(threading.Thread):
    """Background loop in each worker's main process that moves due messages to the queue."""

    def __init__(
        self,
        schedule: Schedule,
        publish: Publish,
        *,
        queue: str,
        slots: int,
        batch: int,
        interval_s: float,
        lease_s: float,
        clock: Callable[[], float],
        watch_s: float | None = None,
        worker: str | None = None,
    ) -> None:
        """``slots``: tasks to keep waiting in ``queue`` (the worker's concurrency); ``batch``:
        updates per task at most; ``watch_s``: hand published entries off to the in-flight
        set for that long, and sweep the ones presumed lost while ``queue`` is empty;
        ``worker``: the id this pump's heartbeat names (none: no heartbeat)."""
        super().__init__(name="cartsync-schedule-pump", daemon=True)
        self.schedule = schedule
        self.publish = publish
        self.queue = queue
        self.slots = slots
        self.batch = batch
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.clock = clock
        self.watch_s = watch_s
        self.worker = worker
        self.stopping = threading.Event()

    def run(self) -> None:
        swept_at = beat_at = float("-inf")
        while not self.stopping.is_set():
            try:
                now = self.clock()
                if self.worker is not None and now - beat_at >= HEARTBEAT_S:
                    beat_at = now
                    self.schedule.heartbeat(self.worker, now)
                if self.watch_s is not None and now - swept_at >= self.interval_s:
                    swept_at = now
                    lost = self.schedule.sweep(now, self.queue)
                    if lost:
                        log.warning("schedule.presumed_lost", count=lost, queue=self.queue)
                claimed = pump_once(
                    self.schedule,
                    self.publish,
                    now=now,
                    lease_s=self.lease_s,
                    queue=self.queue,
                    slots=self.slots,
                    batch=self.batch,
                    watch_s=self.watch_s,
                )
                if claimed.free == 0:
                    self.stopping.wait(QUEUE_FULL_WAIT_S)
                elif not claimed.full:
                    # Every due entry was taken: an update scheduled since left a wake token.
                    self.schedule.wait_for_work(self.interval_s)
            except Exception as exc:
                # Redis restarting or unreachable, or the broker refusing a publish: keep
                # trying. Nothing is lost, entries stay in the schedule until published.
                log.warning("schedule.pump_failed", exception=type(exc).__name__)
                self.stopping.wait(self.interval_s)
        if self.worker is not None:
            # A worker shut down on purpose is gone at once, not after its heartbeat ages.
            with contextlib.suppress(Exception):
                self.schedule.forget(self.worker)

    def stop(self) -> None:
        self.stopping.set()
