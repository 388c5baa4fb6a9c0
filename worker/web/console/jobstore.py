"""Background replay jobs in Redis: one hash per job (``keys.console_job``) and a sorted set
of them by start time (``keys.console_jobs``).

Every change that depends on a job's state (claiming it for a runner, saving a chunk's
progress, cancelling) is a WATCH/MULTI transaction on the job's hash, so two gunicorn workers
never both run a job, and a runner that lost its job (it was resumed elsewhere after its
heartbeat went stale) saves nothing more. Jobs are kept: their hash is small and the page of
past jobs reads the newest few.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from cartsync.worker import keys
from cartsync.worker.redistext import text
from cartsync.worker.web.console.jobs import (
    ACTIVE,
    CANCELLING,
    OUTCOMES,
    RUNNING,
    STALE_AFTER_S,
    Job,
    after_cancel,
    from_fields,
    may_cancel,
    may_resume,
    to_fields,
)

#: Jobs listed on the jobs page.
RECENT_JOBS = 20


def new_token() -> str:
    """A runner's token: the job's hash names the runner that owns it."""
    return secrets.token_hex(8)


class JobStore:
    """Reads and changes the console's replay jobs."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.stale_after_s = stale_after_s
        self.clock = clock

    def key(self, job_id: str) -> str:
        return keys.console_job(self.prefix, job_id)

    def create(self, job: Job) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(job.id), mapping=_mapping(to_fields(job)))
        pipe.zadd(keys.console_jobs(self.prefix), {job.id: job.created_at})
        pipe.execute()

    def load(self, job_id: str) -> Job | None:
        """The job, or None when there is none (or its hash does not read as one)."""
        raw = self.client.hgetall(self.key(job_id))
        return _job_of(raw)

    def recent(self, limit: int = RECENT_JOBS) -> list[Job]:
        found = self.client.zrange(keys.console_jobs(self.prefix), 0, limit - 1, desc=True)
        ids = [text(i) for i in found]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.key(job_id))
        return [job for job in map(_job_of, pipe.execute()) if job is not None]

    # -- changes (each a WATCH transaction on the job's hash) ---------------------------------

    def claim(self, job_id: str, token: str, by: str) -> Job | None:
        """Resume a stopped job (:func:`may_resume`) with ``token``'s runner as its owner;
        the job as claimed, or None when it may not be resumed."""

        def decide(job: Job, now: float) -> dict[str, str] | None:
            if not may_resume(job, now, self.stale_after_s):
                return None
            return {
                "status": RUNNING,
                "runner": token,
                "heartbeat": repr(now),
                "note": f"resumed by {by}",
                "finished_at": "",
            }

        return self._change(job_id, decide)

    def save_progress(
        self, job_id: str, token: str, cursor: str | None, counts: Mapping[str, int]
    ) -> Job | None:
        """Record a handled chunk: the new cursor, the counts added, a heartbeat. None when
        ``token`` no longer owns the job (nothing saved: the new owner handles the chunk)."""

        def decide(job: Job, now: float) -> dict[str, str] | None:
            if job.runner != token or job.status not in ACTIVE:
                return None
            found = {"cursor": cursor or "", "heartbeat": repr(now)}
            for outcome in OUTCOMES:
                found[f"n_{outcome}"] = str(job.counts.get(outcome, 0) + counts.get(outcome, 0))
            return found

        return self._change(job_id, decide)

    def finish(self, job_id: str, token: str, status: str, note: str = "") -> Job | None:
        """Its runner ends the job (done, cancelled, failed); None if it no longer owns it."""

        def decide(job: Job, now: float) -> dict[str, str] | None:
            if job.runner != token or job.status not in ACTIVE:
                return None
            found = {"status": status, "heartbeat": repr(now), "finished_at": repr(now)}
            if note:
                found["note"] = note
            return found

        return self._change(job_id, decide)

    def cancel(self, job_id: str, by: str) -> Job | None:
        """Ask the job to stop: ``cancelling`` while its runner finishes the chunk in hand,
        ``cancelled`` at once when its runner is dead. None when it may not be cancelled."""

        def decide(job: Job, now: float) -> dict[str, str] | None:
            if not may_cancel(job, now, self.stale_after_s):
                return None
            status = after_cancel(job, now, self.stale_after_s)
            found = {"status": status, "note": f"cancelled by {by}"}
            if status != CANCELLING:
                found["finished_at"] = repr(now)
            return found

        return self._change(job_id, decide)

    def _change(
        self, job_id: str, decide: Callable[[Job, float], dict[str, str] | None]
    ) -> Job | None:
        """Apply ``decide``'s fields to the job if it still reads as it did (WATCH); the job
        as changed, or None when ``decide`` refused or there is no such job."""
        key = self.key(job_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it bare
                    job = _job_of(pipe.hgetall(key))
                    if job is None:
                        return None
                    changes = decide(job, self.clock())
                    if changes is None:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.hset(key, mapping=_mapping(changes))
                    pipe.execute()
                    return from_fields({**to_fields(job), **changes})
                except redis.WatchError:
                    continue


def _mapping(fields: dict[str, str]) -> dict[Any, Any]:
    """Fields as redis-py's ``hset`` types its mapping (its key type is a union)."""
    return dict(fields)


def _job_of(raw: Mapping[Any, Any]) -> Job | None:
    if not raw:
        return None
    try:
        return from_fields({text(k): text(v) for k, v in raw.items()})
    except ValueError:
        return None
