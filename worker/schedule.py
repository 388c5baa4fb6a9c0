"""The schedule: messages waiting for their time, in a Redis sorted set scored by due time.

Backoff can last hours, and Celery's countdowns on Redis are unsafe at that length (a task
held longer than the broker's visibility timeout runs twice; ETA tasks held in a killed
worker's memory are lost). So a waiting message lives here, in Redis, and every worker runs
a small loop that moves due messages into the Celery queue. The queue itself only ever
carries work that is due now.

Moving is claim, publish, remove: a claim hides the entry for a lease, so that if the
publisher dies before removing it, the entry becomes due again and is published again.
That can run a message twice, never zero times; the order ledger makes twice harmless.
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

# KEYS: schedule. ARGV: now, lease-until, limit. Returns the claimed members.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""


class Schedule:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = keys.schedule(prefix)
        self._claim = client.register_script(_CLAIM)

    def add(self, message: dict[str, Any], due: float) -> str:
        member = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        self.client.zadd(self.key, {member: due})
        return member

    def remove(self, member: str) -> None:
        self.client.zrem(self.key, member)

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
) -> int:
    """Publish every due message once; returns how many were published."""
    published = 0
    for member in schedule.claim_due(now, lease_s):
        try:
            message = json.loads(member)
        except ValueError:
            # Cannot happen for entries cartsync wrote; publish it as is so that the task
            # parks it as invalid instead of it circling here forever.
            message = {"undecodable": member}
        publish(message)
        schedule.remove(member)
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
    ) -> None:
        super().__init__(name="cartsync-schedule-pump", daemon=True)
        self.schedule = schedule
        self.publish = publish
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.clock = clock
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                while pump_once(
                    self.schedule, self.publish, now=self.clock(), lease_s=self.lease_s
                ):
                    pass
            except Exception as exc:
                # Redis restarting or unreachable, or the broker refusing a publish: keep
                # trying. Nothing is lost, entries stay in the schedule until published.
                log.warning("schedule.pump_failed", error=type(exc).__name__)
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
