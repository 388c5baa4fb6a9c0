"""Background replay jobs: the pure decisions, and jobs run for real (real Redis, the real
Replayer and producer, a runner thread of the app, and a runner process killed with SIGKILL)
checked against the schedule: every letter enqueued exactly once, whatever happened."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from cartsync.worker.deadletters import DeadLetterStore, Filters, id_bound, replay_update_id
from cartsync.worker.web.console.context import EXTENSION
from cartsync.worker.web.console.jobs import (
    CANCELLED,
    CANCELLING,
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    Job,
    advance,
    after_cancel,
    chunk_size,
    from_fields,
    may_cancel,
    may_resume,
    parse_rate,
    shown_status,
    to_fields,
)
from cartsync.worker.web.console.jobstore import JobStore, new_token
from tests.console.conftest import Browser
from tests.support import wait_for
from tests.worker.dlq_support import make_letter, scheduled_update_ids

# -- decisions ---------------------------------------------------------------------------------


def a_job(**changes: object) -> Job:
    base = Job(
        id="20261201T060000Z-abcdef",
        filters={"reason": "conflict"},
        upto="1764568800000",
        force=False,
        rate=20.0,
        by="console:operator",
        created_at=1000.0,
        total=10,
        heartbeat=1000.0,
        runner="t1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_quiet_runner_makes_a_running_job_resumable_and_a_live_one_not():
    """A running job may be cancelled but not resumed while its runner beats; once the beat
    is stale it shows as interrupted and may be resumed."""
    job = a_job()
    assert shown_status(job, 1010.0, 30) == RUNNING
    assert may_cancel(job, 1010.0, 30)
    assert not may_resume(job, 1010.0, 30)
    assert after_cancel(job, 1010.0, 30) == CANCELLING
    assert shown_status(job, 1031.0, 30) == INTERRUPTED
    assert may_resume(job, 1031.0, 30)
    assert after_cancel(job, 1031.0, 30) == CANCELLED


def test_stopped_jobs_resume_and_finished_ones_do_not():
    """Cancelled and failed jobs may be resumed; a done job may be neither resumed nor
    cancelled; a cancelling job waits for its live runner."""
    assert may_resume(a_job(status=CANCELLED), 1001.0, 30)
    assert may_resume(a_job(status=FAILED), 1001.0, 30)
    assert not may_resume(a_job(status=DONE), 9999.0, 30)
    assert not may_cancel(a_job(status=DONE), 1001.0, 30)
    assert not may_resume(a_job(status=CANCELLING), 1001.0, 30)
    assert shown_status(a_job(status=CANCELLING), 2000.0, 30) == CANCELLED


def test_the_cursor_moves_to_the_oldest_letter_handled():
    """The next chunk starts below the oldest id of the last one; an empty chunk keeps it."""
    assert advance(None, ["0000000000003-aa", "0000000000001-bb"]) == "0000000000001-bb"
    assert advance("0000000000001-bb", []) == "0000000000001-bb"


def test_chunks_are_about_a_second_of_letters_and_rates_are_bounded():
    """A chunk holds about a second's worth at the rate (1 to 50); a rate outside 0.1-1000
    or not a number is refused with what is allowed."""
    assert (chunk_size(0.5), chunk_size(20), chunk_size(1000)) == (1, 20, 50)
    assert parse_rate("") == 20.0
    assert parse_rate("250") == 250.0
    for bad in ("0", "-1", "nan", "inf", "fast", "5000"):
        with pytest.raises(ValueError, match="letters per second"):
            parse_rate(bad)


def test_a_job_reads_back_as_it_was_written():
    """The hash fields a job is stored as give the same job back."""
    job = a_job(cursor="1764568800000-0011aabb", counts={"replayed": 3, "refused": 1})
    back = from_fields(to_fields(job))
    assert back == dataclasses.replace(
        job, counts={"replayed": 3, "refused": 1, "failed": 0, "skipped": 0}
    )
    with pytest.raises(ValueError, match="not a job"):
        from_fields({"id": "x"})


# -- jobs run for real ---------------------------------------------------------------------------


def park_letters(store: DeadLetterStore, count: int) -> list[str]:
    """``count`` replayable letters of distinct orders, a millisecond apart; their ids."""
    now = time.time() - 60
    ids = []
    for n in range(count):
        letter = make_letter(order_ref=f"JOB-{n}", dead_at=now + n / 1000)
        ids.append(store.park(letter))
    return ids


def start(operator: Browser, rate: str, **filters: str) -> str:
    """Start a job as the plan's form does; its id."""
    answer = operator.post(
        "/console/jobs", {**filters, "rate": rate, "planned_at": repr(time.time())}
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return str(answer.headers["Location"]).rsplit("/", 1)[-1]


def job_of(app, job_id: str) -> Job:
    found: Job | None = app.extensions[EXTENSION].jobs.load(job_id)
    assert found is not None
    return found


def wait_status(app, job_id: str, status: str, timeout: float = 30) -> Job:
    found: Job = wait_for(
        lambda: (j := job_of(app, job_id)).status == status and j,
        timeout=timeout,
        what=f"the job to be {status}",
        on_fail=lambda: repr(job_of(app, job_id)),
    )
    return found


def assert_each_enqueued_once(redis_client, settings, ids: list[str]) -> None:
    """Every letter's replay update is in the schedule exactly once, and nothing else is."""
    scheduled = Counter(scheduled_update_ids(redis_client, settings))
    assert scheduled == Counter(replay_update_id(i, 0) for i in ids)


def test_a_job_replays_every_matching_letter_exactly_once(
    as_role, console_app, store, redis_client, settings
):
    """A job over 120 letters (three chunks) ends done with each enqueued once, the others
    left alone, its progress on its page, and every letter in the audit under its run."""
    ids = park_letters(store, 120)
    other = make_letter(reason="rejected", status=404)
    store.park(other)
    operator = as_role("operator")
    job_id = start(operator, "1000", reason="conflict")
    job = wait_status(console_app, job_id, DONE)
    assert job.counts["replayed"] == 120
    assert job.total == 120
    assert_each_enqueued_once(redis_client, settings, ids)
    assert [s.letter.id for s in store.scan(Filters())] == [other.id]
    page = operator.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert 'value="100"' in page
    assert "120 of 120 handled: 120 replayed" in page
    assert 'http-equiv="refresh"' not in page  # a finished job's page stops refreshing
    entries = store.audit_entries(limit=200, action="replay")
    replayed = {e.letter for e in entries if e.run == job_id and e.result == "replayed"}
    assert replayed == set(ids)
    summary = {e.result for e in entries if e.run == job_id and not e.letter}
    assert summary == {"started", "finished"}
    assert all(e.by == "console:operator" for e in entries if e.run == job_id)


def test_cancel_stops_a_job_and_resume_finishes_it_without_duplicates(
    as_role, console_app, store, redis_client, settings
):
    """Cancelled after its first chunk, a job stops and the letters it had not reached are
    untouched (in the store as they were, not enqueued); resumed, it finishes from its
    cursor and every letter is enqueued once."""
    ids = park_letters(store, 60)
    before = {i: store.load(i).letter for i in ids}
    operator = as_role("operator")
    job_id = start(operator, "20", reason="conflict")  # chunks of 20, about a second each
    wait_for(lambda: job_of(console_app, job_id).handled >= 20, what="a first chunk")
    page = operator.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' in page
    assert 'id="cancel-job"' in page
    assert operator.post(f"/console/jobs/{job_id}/cancel").status_code == 303
    job = wait_status(console_app, job_id, CANCELLED)
    assert job.cursor is not None
    left = [s.letter.id for s in store.scan(Filters())]
    assert 0 < len(left) < 60
    assert len(left) == 60 - job.counts["replayed"]
    # Not reached: below the cursor, and exactly as parked.
    assert all(i < job.cursor for i in left)
    assert all(store.load(i).letter == before[i] for i in left)
    assert_each_enqueued_once(redis_client, settings, [i for i in ids if i not in left])
    assert operator.post(f"/console/jobs/{job_id}/cancel").status_code == 409

    assert 'id="resume-job"' in operator.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert operator.post(f"/console/jobs/{job_id}/resume").status_code == 303
    job = wait_status(console_app, job_id, DONE)
    assert job.counts["replayed"] == 60
    assert_each_enqueued_once(redis_client, settings, ids)
    assert not list(store.scan(Filters()))
    results = [e.result for e in store.audit_entries(limit=200) if e.run == job_id and not e.letter]
    assert results == ["finished", "resumed", "stopped", "cancelled", "started"]


#: A runner in a process of its own, for the test to kill: argv is the Redis URL, the job id
#: and the runner's token.
RUNNER_PROCESS = """
import sys
from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.config.settings import load_settings
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.web.app import redis_for
from cartsync.worker.web.console.jobrunner import JobRunner
from cartsync.worker.web.console.jobstore import JobStore

url, job_id, token = sys.argv[1:]
settings = load_settings({}).with_overrides(redis_url=url)
client = redis_for(settings, 5.0)
merchants = MerchantDirectory(single=MerchantAccount(ref="", username="u", password="secret-pw"))
producer = Producer(settings, client=client, merchants=merchants)
store = DeadLetterStore(client, settings.key_prefix)
JobRunner(JobStore(client, settings.key_prefix), store, producer, job_id, token).run()
"""


def test_a_killed_runner_is_resumed_from_its_cursor_and_nothing_is_sent_twice(
    as_role, console_app, store, redis_client, settings
):
    """A runner process killed with SIGKILL in the middle of a chunk (letters enqueued, not
    yet out of the store) leaves the job interrupted once its heartbeat is stale; resumed
    from the console, the job finishes, the letters the dead runner had enqueued are only
    taken out (the producer answers duplicate), and each letter is enqueued exactly once."""
    ids = park_letters(store, 80)
    c = console_app.extensions[EXTENSION]
    jobs = JobStore(redis_client, settings.key_prefix, stale_after_s=3.0)
    console_app.extensions[EXTENSION] = dataclasses.replace(c, jobs=jobs)
    token = new_token()
    job = Job(
        id="20261201T060000Z-0a0b0c",
        filters={"reason": "conflict"},
        upto=id_bound(time.time()),
        force=False,
        rate=20.0,
        by="console:operator",
        created_at=time.time(),
        total=80,
        heartbeat=time.time(),
        runner=token,
    )
    jobs.create(job)
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER_PROCESS, settings.redis_url, job.id, token],
        env={**os.environ, "CARTSYNC_LOG_LEVEL": "ERROR"},
    )
    try:

        def mid_chunk() -> bool:
            # Past the first chunk, and some letters enqueued that are still in the store.
            enqueued = len(scheduled_update_ids(redis_client, settings))
            return enqueued >= 25 and enqueued > 80 - store.count(Filters())

        wait_for(mid_chunk, timeout=30, interval=0.01, what="the runner to be inside a chunk")
        os.kill(runner.pid, signal.SIGKILL)
    finally:
        runner.wait(timeout=10)
    assert runner.returncode == -signal.SIGKILL
    killed_at = store.count(Filters())
    operator = as_role("operator")
    assert operator.post(f"/console/jobs/{job.id}/resume").status_code == 409  # still fresh
    wait_for(lambda: may_resume(job_of(console_app, job.id), time.time(), 3.0), what="stale")
    page = operator.get(f"/console/jobs/{job.id}").get_data(as_text=True)
    assert INTERRUPTED in page
    assert operator.post(f"/console/jobs/{job.id}/resume").status_code == 303
    done = wait_status(console_app, job.id, DONE)
    assert_each_enqueued_once(redis_client, settings, ids)
    assert not list(store.scan(Filters()))
    assert killed_at > 0
    assert done.counts["replayed"] == 80
    again = [
        e
        for e in store.audit_entries(limit=300, action="replay")
        if e.run == job.id and e.detail.get("enqueue") == "duplicate"
    ]
    assert again, "the resumed runner met none of the letters the killed one had enqueued"


def test_a_viewer_cannot_start_cancel_or_resume_a_job_and_csrf_is_checked(
    as_role, console_app, store
):
    """The server answers a viewer's start, cancel and resume with 403, and an operator's
    without the CSRF token with 400; the job page shows a viewer no buttons."""
    park_letters(store, 3)
    operator = as_role("operator")
    job_id = start(operator, "1000", reason="conflict")
    wait_status(console_app, job_id, DONE)
    viewer = as_role("viewer")
    assert viewer.post("/console/jobs", {"reason": "conflict"}).status_code == 403
    assert viewer.post(f"/console/jobs/{job_id}/cancel").status_code == 403
    assert viewer.post(f"/console/jobs/{job_id}/resume").status_code == 403
    page = viewer.get(f"/console/jobs/{job_id}")
    assert page.status_code == 200
    assert "<button" not in page.get_data(as_text=True).split("<main>")[1]
    assert viewer.get("/console/jobs").status_code == 200
    before = len(console_app.extensions[EXTENSION].jobs.recent())
    assert operator.post("/console/jobs", {"reason": "conflict"}, token=False).status_code == 400
    assert operator.post(f"/console/jobs/{job_id}/cancel", token=False).status_code == 400
    assert len(console_app.extensions[EXTENSION].jobs.recent()) == before
    assert operator.get("/console/jobs/nope").status_code == 404
    bad = operator.post("/console/jobs", {"reason": "conflict", "rate": "fast"})
    assert bad.status_code == 422
    assert "rate" in bad.get_data(as_text=True)


def test_a_runner_whose_job_was_resumed_elsewhere_can_save_nothing(redis_client, settings):
    """Once a stale job is claimed by a new runner, the old runner's progress, finish and a
    second claim are refused; the new runner's progress is saved."""
    jobs = JobStore(redis_client, settings.key_prefix, stale_after_s=0.0)
    job = a_job(heartbeat=time.time() - 1, runner="old")
    jobs.create(job)
    claimed = jobs.claim(job.id, "new", "console:operator")
    assert claimed is not None
    assert claimed.note == "resumed by console:operator"
    assert jobs.save_progress(job.id, "old", "0000000000001-aa", {"replayed": 5}) is None
    assert jobs.finish(job.id, "old", DONE) is None
    saved = jobs.save_progress(job.id, "new", "0000000000002-bb", {"replayed": 2})
    assert saved is not None
    assert (saved.cursor, saved.counts["replayed"]) == ("0000000000002-bb", 2)
    live = JobStore(redis_client, settings.key_prefix)  # the usual 30 s: the beat is fresh
    assert live.claim(job.id, "third", "console:admin") is None
