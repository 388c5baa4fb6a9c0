"""The schedule: messages waiting for their time, in a Redis sorted set scored by due time.

Backoff can last hours, and Celery's countdowns on Redis are unsafe at that length (a task
held longer than the broker's visibility timeout runs twice; ETA tasks held in a killed
worker's memory are lost). So a waiting message lives here, in Redis, and every worker runs
a small loop that moves due messages into the Celery queue. The queue itself only ever
carries work that is due now.

Moving is claim, publish, hand off: a claim hides the entry for a lease, so that if the
publisher dies before handing it off, the entry becomes due again and is published again.
That can run a message twice, never zero times; the order ledger makes twice harmless.

Handing off moves the entry to the *in-flight* set, where it stays until a worker has
recorded the outcome of the attempt (``Ledger.claim`` / ``Ledger.finish`` remove it). The
Celery queue alone is not enough: kombu's Redis transport pops a message (BRPOP) before it
records it as unacknowledged, and a worker killed in between loses it (the chaos harness
found this). An in-flight entry older than its watch time is presumed lost and scheduled
again (:meth:`Schedule.sweep`), but only while the Celery queue is empty: a message still
waiting in a long queue is not lost, and publishing copies of a whole backlog would only
make it longer. The watch time is twice the visibility timeout, so that a message a killed
worker held is brought back by kombu first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import redis
import structlog

from worker import keys

log = structlog.get_logger("cartsync.schedule")

#: Entries one claim takes at most, so one worker does not hoard a large backlog.
CLAIM_BATCH = 500

#: An in-flight message is presumed lost this many visibility timeouts after it was published.
WATCH_VISIBILITY_TIMEOUTS = 2


def watch_s(visibility_timeout_s: float) -> float:
    """How long a published message is watched in flight before it is presumed lost."""
    return WATCH_VISIBILITY_TIMEOUTS * visibility_timeout_s


# KEYS: schedule. ARGV: now, lease-until, limit. Returns the claimed members.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""


# Hand a published entry off to the in-flight set. KEYS: schedule, in-flight.
# ARGV: member, presumed-lost-at.
_HANDOFF = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# Schedule again, due now, the in-flight entries presumed lost, while the queue is empty.
# KEYS: in-flight, schedule, Celery queue. ARGV: now, limit. Returns how many.
_SWEEP = """
if redis.call('LLEN', KEYS[3]) > 0 then return 0 end
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(lost) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[1], member)
end
return #lost
"""


def member_of(message: dict[str, Any]) -> str:
    """The one text form of a message in the schedule and the in-flight set. A worker
    rebuilds it from the message it received (``UpdateMessage.to_dict()``) to find the
    message's in-flight entry, so every writer must use this."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Schedule:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = keys.schedule(prefix)
        self.inflight_key = keys.inflight(prefix)
        self._claim = client.register_script(_CLAIM)
        self._handoff = client.register_script(_HANDOFF)
        self._sweep = client.register_script(_SWEEP)

    def add(self, message: dict[str, Any], due: float) -> str:
        member = member_of(message)
        self.client.zadd(self.key, {member: due})
        return member

    def remove(self, member: str) -> None:
        self.client.zrem(self.key, member)

    def hand_off(self, member: str, watch_until: float) -> None:
        """The entry was published: watch it in flight until ``watch_until``."""
        self._handoff(keys=[self.key, self.inflight_key], args=[member, repr(watch_until)])

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

    def claim_due(self, now: float, lease_s: float, limit: int = CLAIM_BATCH) -> list[str]:
        claimed = self._claim(keys=[self.key], args=[repr(now), repr(now + lease_s), limit])
        return [m.decode() if isinstance(m, bytes) else m for m in claimed]

    def depth(self) -> int:
        """Messages waiting, due or not."""
        return int(self.client.zcard(self.key))

    def due(self, now: float) -> int:
        return int(self.client.zcount(self.key, "-inf", repr(now)))


def pump_once(
    schedule: Schedule,
    publish: Callable[[dict[str, Any]], None],
    *,
    now: float,
    lease_s: float,
    watch_s: float | None = None,
) -> int:
    """Publish every due message once; returns how many were published.

    With ``watch_s``, each published entry is handed off to the in-flight set for that long;
    without, it is removed (nothing then notices a message lost on its way to a worker).
    """
    published = 0
    for member in schedule.claim_due(now, lease_s):
        try:
            message = json.loads(member)
        except ValueError:
            # Cannot happen for entries cartsync wrote; publish it as is so that the task
            # parks it as invalid instead of it circling here forever.
            message = {"undecodable": member}
        publish(message)
        if watch_s is None:
            schedule.remove(member)
        else:
            schedule.hand_off(member, now + watch_s)
        published += 1
    return published


class Pump(threading.Thread):
    """Background loop in each worker's main process that moves due messages to the queue."""

    def __init__(
        self,
        schedule: Schedule,
        publish: Callable[[dict[str, Any]], None],
        *,
        interval_s: float,
        lease_s: float,
        clock: Callable[[], float],
        watch_s: float | None = None,
        queue: str | None = None,
    ) -> None:
        """``watch_s`` and ``queue``: hand published entries off to the in-flight set for
        ``watch_s``, and sweep the ones presumed lost while ``queue`` is empty."""
        super().__init__(name="cartsync-schedule-pump", daemon=True)
        self.schedule = schedule
        self.publish = publish
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.clock = clock
        self.watch_s = watch_s
        self.queue = queue
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.queue is not None:
                    lost = self.schedule.sweep(self.clock(), self.queue)
                    if lost:
                        log.warning("schedule.presumed_lost", count=lost, queue=self.queue)
                while pump_once(
                    self.schedule,
                    self.publish,
                    now=self.clock(),
                    lease_s=self.lease_s,
                    watch_s=self.watch_s,
                ):
                    pass
            except Exception as exc:
                # Redis restarting or unreachable, or the broker refusing a publish: keep
                # trying. Nothing is lost, entries stay in the schedule until published.
                log.warning("schedule.pump_failed", exception=type(exc).__name__)
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
