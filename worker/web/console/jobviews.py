"""The console's background replay jobs: start one from a confirmed plan over everything a
filter matches, watch its progress, cancel it and resume it (operator role, CSRF-checked by
the blueprint). The job itself is ``jobs`` (decisions), ``jobstore`` (Redis) and
``jobrunner`` (the thread that replays)."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from cartsync.worker.cli.dlq.session import new_run_id
from cartsync.worker.deadletters import AuditNote, Filters, id_bound
from cartsync.worker.web.console.access import require
from cartsync.worker.web.console.actions import by
from cartsync.worker.web.console.blueprint import bp
from cartsync.worker.web.console.context import Console, console
from cartsync.worker.web.console.jobrunner import JobRunner, start_thread
from cartsync.worker.web.console.jobs import (
    ACTIVE,
    DEFAULT_RATE,
    Job,
    may_cancel,
    may_resume,
    parse_rate,
    progress_percent,
    shown_status,
)
from cartsync.worker.web.console.jobstore import new_token
from cartsync.worker.web.console.query import parse_query
from cartsync.worker.web.console.roles import Action

#: A job's id: a replay run's id (``new_run_id``).
JOB_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
#: Seconds between a running job page's refreshes.
JOB_REFRESH_S = 2


def planned_at(text: str | None, now: float) -> float:
    """When the confirmed plan was made (its form says), never later than now: the job
    replays letters dead by then, not those that died while someone read the plan."""
    try:
        at = float(text or "")
    except ValueError:
        return now
    return at if 0 < at <= now else now


def total_of(c: Console, filters: Filters) -> int:
    """How many letters the job starts with: exact for indexed filters and an order's few
    letters; 0 (unknown) for a text search, which only a walk could count."""
    if filters.indexed or filters.order_ref is not None:
        return c.store.count(filters)
    return 0


@bp.route("/jobs", methods=["POST"])
@require(Action.REPLAY)
def job_start() -> Any:
    """Start a background replay of everything the form's filters match (a confirmed plan)."""
    c = console()
    now = time.time()
    params = {k: v for k, v in request.form.items() if k not in ("csrf_token", "force", "rate")}
    query = parse_query(params, now)
    problems = dict(query.errors)
    try:
        rate = parse_rate(request.form.get("rate"))
    except ValueError as exc:
        problems["rate"] = str(exc)
    if problems:
        text = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        return render_template("console/error.html", code=422, text=text), 422
    at = planned_at(request.form.get("planned_at"), now)
    until = at if query.filters.until is None else min(at, query.filters.until)
    filters = replace(query.filters, until=until)
    job = Job(
        id=new_run_id(),
        filters=query.pinned().given,
        upto=id_bound(until),
        force=request.form.get("force") == "1",
        rate=rate,
        by=by(),
        created_at=now,
        total=total_of(c, filters),
        heartbeat=now,
        runner=new_token(),
    )
    c.store.record(
        AuditNote(
            "replay",
            job.by,
            job.id,
            "started",
            {
                "job": job.id,
                "filters": filters.describe() or "all",
                "count": job.total,
                "force": job.force,
                "rate": job.rate,
            },
        )
    )
    c.jobs.create(job)
    start_thread(JobRunner(c.jobs, c.store, c.producer, job.id, job.runner))
    return redirect(url_for("console.job", job_id=job.id), 303)


def load_job(job_id: str) -> Job:
    if not JOB_ID.match(job_id):
        abort(404)
    job = console().jobs.load(job_id)
    if job is None:
        abort(404)
    return job


@bp.route("/jobs")
@require(Action.READ)
def jobs() -> str:
    c = console()
    now = time.time()
    found = c.jobs.recent()
    shown = [(job, shown_status(job, now, c.jobs.stale_after_s)) for job in found]
    refresh = any(job.status in ACTIVE for job in found)
    return render_template(
        "console/jobs.html",
        jobs=shown,
        refresh_s=JOB_REFRESH_S if refresh else None,
        percent=progress_percent,
    )


@bp.route("/jobs/<job_id>")
@require(Action.READ)
def job(job_id: str) -> Any:
    found = load_job(job_id)
    return job_page(found)


def job_page(found: Job, status: int = 200) -> Any:
    c = console()
    now = time.time()
    stale = c.jobs.stale_after_s
    shown = shown_status(found, now, stale)
    return (
        render_template(
            "console/job.html",
            job=found,
            status=shown,
            percent=progress_percent(found),
            refresh_s=JOB_REFRESH_S if shown in ACTIVE else None,
            can_cancel=may_cancel(found, now, stale),
            can_resume=may_resume(found, now, stale),
            stale_after_s=stale,
        ),
        status,
    )


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@require(Action.REPLAY)
def job_cancel(job_id: str) -> Any:
    """Stop a job after the chunk in hand; the letters not reached stay as they are."""
    c = console()
    found = load_job(job_id)
    who = by()
    cancelled = c.jobs.cancel(found.id, who)
    if cancelled is None:
        return job_page(found, 409)
    c.store.record(AuditNote("replay", who, found.id, "cancelled", {"job": found.id}))
    return redirect(url_for("console.job", job_id=found.id), 303)


@bp.route("/jobs/<job_id>/resume", methods=["POST"])
@require(Action.REPLAY)
def job_resume(job_id: str) -> Any:
    """Go on from the job's saved cursor with a new runner (this process's)."""
    c = console()
    found = load_job(job_id)
    who = by()
    token = new_token()
    claimed = c.jobs.claim(found.id, token, who)
    if claimed is None:
        return job_page(found, 409)
    c.store.record(
        AuditNote("replay", who, found.id, "resumed", {"job": found.id, "from": found.cursor})
    )
    start_thread(JobRunner(c.jobs, c.store, c.producer, found.id, token))
    return redirect(url_for("console.job", job_id=found.id), 303)


bp.add_app_template_global(lambda: DEFAULT_RATE, "default_job_rate")
