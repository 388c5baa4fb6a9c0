"""What the pipeline looks like right now, read from Redis: for ``cartsync status`` and metrics.

One :class:`Snapshot` holds the live numbers (queue depth, scheduled retries, updates in
flight, dead letters); :func:`take_snapshot` reads them in a handful of cheap commands, and
:func:`verdict` decides, as a pure function, whether they are healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from cartsync.config.settings import Settings
from cartsync.worker.deadletters import DeadLetterStore, Reason, id_time
from cartsync.worker.keys import queue_keys as queue_keys  # named here too, for callers
from cartsync.worker.redisconn import connect
from cartsync.worker.schedule import Schedule
from cartsync.worker.timefmt import format_age

#: Seconds a status or metrics read waits for Redis before calling it unreachable.
REDIS_TIMEOUT_S = 3.0
#: Seconds a worker counts as alive after its pump's last heartbeat, at least; three
#: scheduler intervals when that is longer (an idle pump looks once per interval).
WORKER_ALIVE_S = 30.0


def alive_window_s(scheduler_interval_s: float) -> float:
    """Seconds since its last heartbeat within which a worker counts as alive."""
    return max(WORKER_ALIVE_S, 3 * scheduler_interval_s)


@dataclass(frozen=True)
class Snapshot:
    """Live numbers of one cartsync deployment (one Redis, one key prefix, one queue)."""

    #: Tasks waiting in the Celery queue for a worker, each carrying one or more updates.
    queue_depth: int
    #: Updates waiting in the schedule (new ones, retries, deferrals), due or not.
    scheduled: int
    #: Of those, how many are due now (a growing number means the workers lag behind).
    due: int
    #: Updates handed to the queue whose attempt has not finished yet.
    in_flight: int
    #: Dead letters in total and by reason (every reason present, zero when none).
    dead_letters: int
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    #: Id and age in seconds of the oldest dead letter; None when there are none.
    oldest_dead_id: str | None = None
    oldest_dead_age_s: float | None = None
    #: Workers whose pump sent a heartbeat within :func:`alive_window_s`.
    workers_alive: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def redis_client(settings: Settings) -> redis.Redis:
    """A client that gives up quickly: status and metrics report an unreachable Redis."""
    return connect(
        settings,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
    )


def take_snapshot(
    client: redis.Redis, settings: Settings, *, clock: Callable[[], float] = time.time
) -> Snapshot:
    """Read the live numbers. Raises redis.RedisError (or OSError) when Redis does not answer."""
    now = clock()
    pipe = client.pipeline(transaction=False)
    for key in queue_keys(settings.queue):
        pipe.llen(key)
    depths = pipe.execute()
    schedule = Schedule(client, settings.key_prefix)
    stats = DeadLetterStore(client, settings.key_prefix).stats()
    by_reason = {reason.value: 0 for reason in Reason}
    by_reason.update(stats.by_reason)
    oldest_age = max(0.0, now - id_time(stats.oldest_id)) if stats.oldest_id else None
    return Snapshot(
        queue_depth=sum(int(d) for d in depths),
        scheduled=schedule.depth(),
        due=schedule.due(now),
        in_flight=schedule.in_flight(),
        dead_letters=stats.total,
        dead_by_reason=by_reason,
        oldest_dead_id=stats.oldest_id,
        oldest_dead_age_s=oldest_age,
        workers_alive=schedule.workers_alive(now - alive_window_s(settings.scheduler_interval_s)),
    )


def verdict(snapshot: Snapshot, max_dead_age_s: float) -> str | None:
    """None when healthy, else one line saying why not.

    Unhealthy means a dead letter has waited longer than ``max_dead_age_s``: something a
    person has to act on. A young dead letter, a deep queue or many retries are not, on
    their own, a reason to fail a health check (they are what the metrics are for).
    """
    age = snapshot.oldest_dead_age_s
    if age is not None and age > max_dead_age_s:
        return (
            f"dead letter {snapshot.oldest_dead_id} has waited {format_age(age)}, "
            f"longer than {format_age(max_dead_age_s)}"
        )
    return None
