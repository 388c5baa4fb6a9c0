"""Background replay jobs: what a job is and the pure decisions about it.

A job replays everything a listing's filters matched when its plan was confirmed, newest
first, a chunk at a time, through worker/replay.py. Its state lives in Redis
(``worker/web/console/jobstore.py``) and a thread of the web process runs it
(``worker/web/console/jobrunner.py``). After each chunk the runner saves the **cursor**: the
id of the last letter it handled. Letter ids sort by time of death, so the next chunk is the
letters below the cursor; replayed letters have left the store and refused ones stay behind
the cursor, so resuming from it reaches every letter not yet handled, once.

A runner killed inside a chunk leaves that chunk's cursor unsaved: resuming handles the chunk
again. Its letters that had been enqueued are recognised by their replay update id (the
producer answers ``duplicate``) and only leave the store; nothing is enqueued twice.

Every runner holds a token, and only the token the job names may save progress. A runner
presumed dead that was only slow (a text search walking far for its next chunk) loses the
job at its next save and stops; the letters both runners met are still enqueued once, by
their update ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Seconds without a heartbeat after which a running job's runner is presumed dead (its
#: process was killed or restarted) and the job may be resumed. A runner beats after every
#: chunk, and a chunk is about a second's worth of letters (:func:`chunk_size`).
STALE_AFTER_S = 30.0
#: Letters per second a job replays unless its form says otherwise: the workers and seQura
#: see a bulk replay as a steady trickle, not a burst.
DEFAULT_RATE = 20.0
#: Slowest and fastest rates a job may be given (letters per second).
MIN_RATE = 0.1
MAX_RATE = 1000.0
#: Most letters per chunk (the replay code's own batch).
MAX_CHUNK = 50

#: A job's statuses. ``cancelling``: asked to stop, its runner finishes the chunk in hand.
RUNNING, CANCELLING, CANCELLED = "running", "cancelling", "cancelled"
DONE, FAILED = "done", "failed"
#: What a stale running job is shown as.
INTERRUPTED = "interrupted"
#: Statuses a runner is (or should be) working in.
ACTIVE = (RUNNING, CANCELLING)
#: The outcomes a job counts (worker/replay.py's ``Result.outcome``).
OUTCOMES = ("replayed", "refused", "failed", "skipped")


@dataclass(frozen=True)
class Job:
    """One background replay, as stored."""

    id: str
    #: The listing's filter parameters (the query string's, times pinned to instants).
    filters: Mapping[str, str]
    #: Only letters with ids below this: those dead when the plan was confirmed.
    upto: str
    force: bool
    rate: float
    #: Who started it, as the audit names them.
    by: str
    created_at: float
    #: Letters the filters matched at the start (an estimate when the filters have no index).
    total: int
    status: str = RUNNING
    #: The id of the last letter handled; None before the first chunk.
    cursor: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    heartbeat: float = 0.0
    #: The token of the runner that owns the job (a new one on every resume).
    runner: str = ""
    #: Why a failed job failed; who cancelled or resumed it last.
    note: str = ""
    finished_at: float | None = None

    @property
    def handled(self) -> int:
        return sum(self.counts.get(outcome, 0) for outcome in OUTCOMES)


def is_stale(heartbeat: float, now: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a runner last heard from at ``heartbeat`` is presumed dead at ``now``."""
    return now - heartbeat > stale_after_s


def shown_status(job: Job, now: float, stale_after_s: float = STALE_AFTER_S) -> str:
    """The status a person is shown: an active job whose runner went quiet is
    ``interrupted``; a ``cancelling`` one whose runner died is as good as ``cancelled``."""
    if job.status in ACTIVE and is_stale(job.heartbeat, now, stale_after_s):
        return CANCELLED if job.status == CANCELLING else INTERRUPTED
    return job.status


def may_resume(job: Job, now: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """A cancelled or failed job may be resumed, and an active one whose runner died; never
    one whose runner is still working (two runners would race over the same letters)."""
    return shown_status(job, now, stale_after_s) in (CANCELLED, FAILED, INTERRUPTED)


def may_cancel(job: Job, now: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """A running job may be cancelled, and an interrupted one (so that it stays stopped)."""
    return shown_status(job, now, stale_after_s) in (RUNNING, INTERRUPTED)


def after_cancel(job: Job, now: float, stale_after_s: float = STALE_AFTER_S) -> str:
    """The status a cancel leaves: ``cancelling`` while a live runner finishes its chunk,
    ``cancelled`` at once when no runner is alive."""
    return CANCELLING if shown_status(job, now, stale_after_s) == RUNNING else CANCELLED


def chunk_bound(job: Job) -> str:
    """Where the next chunk starts: below the cursor, or below ``upto`` at first."""
    return job.cursor if job.cursor is not None else job.upto


def advance(cursor: str | None, handled_ids: list[str]) -> str | None:
    """The cursor after a chunk of letters handled newest first: the oldest of them."""
    return min(handled_ids) if handled_ids else cursor


def chunk_size(rate: float) -> int:
    """Letters per chunk: about a second's worth, so the heartbeat and a cancel are never
    more than about a second behind (the CLI's paced replay batches the same way)."""
    return max(1, min(MAX_CHUNK, int(rate)))


def parse_rate(text: str | None) -> float:
    """A job's rate from its form (letters per second); ValueError saying what is allowed."""
    if text is None or not text.strip():
        return DEFAULT_RATE
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"a number of letters per second ({MIN_RATE:g}-{MAX_RATE:g})") from None
    if not MIN_RATE <= rate <= MAX_RATE:  # also refuses nan and inf
        raise ValueError(f"between {MIN_RATE:g} and {MAX_RATE:g} letters per second")
    return rate


def progress_percent(job: Job) -> int:
    """How far along a job is, for its progress bar (100 once done)."""
    if job.status == DONE:
        return 100
    if job.total <= 0:
        return 0
    return min(99, job.handled * 100 // job.total)


def to_fields(job: Job) -> dict[str, str]:
    """The job as a Redis hash's fields."""
    import json

    found = {
        "id": job.id,
        "filters": json.dumps(dict(job.filters), ensure_ascii=False, sort_keys=True),
        "upto": job.upto,
        "force": "1" if job.force else "0",
        "rate": repr(job.rate),
        "by": job.by,
        "created_at": repr(job.created_at),
        "total": str(job.total),
        "status": job.status,
        "cursor": job.cursor or "",
        "heartbeat": repr(job.heartbeat),
        "runner": job.runner,
        "note": job.note,
        "finished_at": "" if job.finished_at is None else repr(job.finished_at),
    }
    for outcome in OUTCOMES:
        found[f"n_{outcome}"] = str(job.counts.get(outcome, 0))
    return found


def from_fields(raw: Mapping[str, str]) -> Job:
    """A job from its hash's fields (:func:`to_fields`); ValueError if they do not read."""
    import json

    try:
        filters: Any = json.loads(raw["filters"])
        if not isinstance(filters, dict):
            raise ValueError("filters is not an object")
        return Job(
            id=raw["id"],
            filters={str(k): str(v) for k, v in filters.items()},
            upto=raw["upto"],
            force=raw["force"] == "1",
            rate=float(raw["rate"]),
            by=raw["by"],
            created_at=float(raw["created_at"]),
            total=int(raw["total"]),
            status=raw["status"],
            cursor=raw.get("cursor") or None,
            counts={o: int(raw.get(f"n_{o}", "0") or 0) for o in OUTCOMES},
            heartbeat=float(raw.get("heartbeat") or 0),
            runner=raw.get("runner", ""),
            note=raw.get("note", ""),
            finished_at=float(raw["finished_at"]) if raw.get("finished_at") else None,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a job: {exc}") from None
