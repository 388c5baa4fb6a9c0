"""Running a background replay job: chunks of letters below the job's cursor, each through
worker/replay.py's Replayer at the job's rate, the cursor and counts saved after each.

:class:`JobRunner` needs no Flask request: the console starts it in a thread of the web
process (:func:`start_thread`), and a test can call :meth:`JobRunner.run` directly, or in a
process of its own that it then kills.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter

import redis

from cartsync.config.logging import get_logger
from cartsync.tasks.producer import Producer
from cartsync.worker.cli.dlq.move import Pacer
from cartsync.worker.deadletters import AuditNote, Damaged, DeadLetterStore, Stored
from cartsync.worker.replay import Replayer, Result, refuse_damaged
from cartsync.worker.web.console.jobs import (
    CANCELLED,
    CANCELLING,
    DONE,
    FAILED,
    Job,
    advance,
    chunk_bound,
    chunk_size,
)
from cartsync.worker.web.console.jobstore import JobStore
from cartsync.worker.web.console.query import parse_query

log = get_logger("cartsync.web.console.jobs")


class JobRunner:
    """Runs one job for the runner token that owns it, until done, cancelled or lost."""

    def __init__(
        self,
        jobs: JobStore,
        store: DeadLetterStore,
        producer: Producer,
        job_id: str,
        token: str,
    ) -> None:
        self.jobs = jobs
        self.store = store
        self.producer = producer
        self.job_id = job_id
        self.token = token

    def run(self) -> Job | None:
        """Replay the job's letters to its end; the job as left (None: the job was taken
        over by another runner, or is not this runner's). Never raises: a failure ends the
        job as ``failed``, resumable."""
        try:
            job = self.jobs.load(self.job_id)
            if job is None or job.runner != self.token:
                return None
            return self._run(job)
        except Exception as exc:  # the thread's last resort: the job must not look alive
            problem = (
                "Redis did not answer"
                if isinstance(exc, redis.RedisError | OSError)
                else type(exc).__name__
            )
            log.error("console_replay_job", outcome=FAILED, exception=type(exc).__name__)
            with contextlib.suppress(redis.RedisError, OSError):
                failed = self.jobs.finish(self.job_id, self.token, FAILED, note=problem)
                if failed is not None:
                    self._audit(failed, "failed", {"why": problem})
                return failed
            return None

    def _run(self, job: Job) -> Job | None:
        replayer = Replayer(self.store, self.producer, by=job.by, run=job.id, force=job.force)
        pacer = Pacer(job.rate)
        filters = parse_query(job.filters, job.created_at).filters
        size = chunk_size(job.rate)
        while True:
            walk = self.store.entries(filters, below=chunk_bound(job), batch=size)
            chunk = list(itertools.islice(walk, size))
            if not chunk:
                # Audited first, so that the entry is there once the job shows as done.
                self._audit(job, "finished", dict(job.counts))
                done = self.jobs.finish(job.id, self.token, DONE)
                if done is not None:
                    log.info("console_replay_job", outcome=DONE, count=done.handled)
                return done
            results = self._replay(replayer, chunk, pacer)
            handled = [e.id if isinstance(e, Damaged) else e.letter.id for e in chunk]
            counts = Counter(result.outcome for result in results)
            saved = self.jobs.save_progress(
                job.id, self.token, advance(job.cursor, handled), counts
            )
            if saved is None:
                # Resumed elsewhere meanwhile: the new runner handles this chunk again, which
                # the replay protocol makes harmless.
                log.warning("console_replay_job", outcome="taken_over")
                return None
            job = saved
            if job.status == CANCELLING:
                self._audit(job, "stopped", dict(job.counts))
                cancelled = self.jobs.finish(job.id, self.token, CANCELLED)
                if cancelled is not None:
                    log.info("console_replay_job", outcome=CANCELLED, count=cancelled.handled)
                return cancelled

    def _replay(
        self, replayer: Replayer, chunk: list[Stored | Damaged], pacer: Pacer
    ) -> list[Result]:
        results = [
            refuse_damaged(self.store, replayer.note, e) for e in chunk if isinstance(e, Damaged)
        ]
        letters = [e for e in chunk if isinstance(e, Stored)]
        results.extend(replayer.replay_many(letters, pace=pacer.wait))
        return results

    def _audit(self, job: Job, result: str, detail: dict[str, object]) -> None:
        self.store.record(AuditNote("replay", job.by, job.id, result, {"job": job.id, **detail}))


def start_thread(runner: JobRunner) -> threading.Thread:
    """Run the job in a daemon thread of this process. If the process dies, the job's
    heartbeat goes stale and anyone with the operator role may resume it."""
    thread = threading.Thread(
        target=runner.run, name=f"cartsync-replay-job-{runner.job_id}", daemon=True
    )
    thread.start()
    return thread
