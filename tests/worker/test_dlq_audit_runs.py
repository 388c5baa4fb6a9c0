"""``dlq audit --run RUN`` finds every entry of the run, however many and however deep in the
log, against a real Redis."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cartsync.worker.cli import cli
from cartsync.worker.deadletters import AuditNote
from tests.worker.dlq_support import make_letter

BIG_RUN = "20261130T101112Z-aaaaaa"
INTERRUPTED = "20261130T111213Z-bbbbbb"
NEWER = "20261130T121314Z-cccccc"


def audit_json(env, *args):
    result = CliRunner(env=env).invoke(cli, ["dlq", "audit", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def fill(store):
    """A run of 5,200 parked letters, an interrupted replay run of 3 entries, then 6,000
    newer entries of another run above both."""
    big = [make_letter(errors=["Order not found"]) for _ in range(5200)]
    store.park_many(big, audit=AuditNote("import", "ana", BIG_RUN, "imported"))
    store.record(AuditNote("replay", "bob", INTERRUPTED, "started", {"filters": "all"}))
    stored = store.load(big[0].id)
    store.remove(stored, audit=AuditNote("replay", "bob", INTERRUPTED).about(big[0], "replayed"))
    store.record(AuditNote("replay", "bob", INTERRUPTED, "refused"), big[1].id)
    newer = [make_letter(errors=["Access denied"]) for _ in range(6000)]
    store.park_many(newer, audit=AuditNote("import", "cy", NEWER, "imported"))
    return big


def test_a_big_run_and_an_interrupted_one_are_found_whole(store, env):
    """A run of 5,200 entries lists all 5,200 (newest first), and an interrupted run's three
    entries are found beneath 6,000 newer ones; --limit, --action and --letter still apply."""
    big = fill(store)
    entries = audit_json(env, "--run", BIG_RUN)
    assert len(entries) == 5200
    assert {e["letter"] for e in entries} == {letter.id for letter in big}
    ids = [tuple(int(part) for part in e["id"].split("-")) for e in entries]
    assert ids == sorted(ids, reverse=True)

    interrupted = audit_json(env, "--run", INTERRUPTED)
    assert [e["result"] for e in interrupted] == ["refused", "replayed", "started"]
    assert len(audit_json(env, "--run", BIG_RUN, "--limit", "10")) == 10
    assert [e["result"] for e in audit_json(env, "--run", INTERRUPTED, "--letter", big[0].id)] == [
        "replayed"
    ]
    table = CliRunner(env=env).invoke(cli, ["dlq", "audit", "--run", INTERRUPTED])
    assert table.exit_code == 0
    assert "No audit entries match" not in table.output
    assert table.output.count(INTERRUPTED) == 3


def test_a_run_logged_before_runs_were_listed_is_found_by_walking_down_to_its_start(
    store, env, redis_client
):
    """Without the run's list (entries written before this version), the log is walked down
    to the run's start, not just the newest 5,000 entries, and every entry is found."""
    fill(store)
    for run in (BIG_RUN, INTERRUPTED):
        redis_client.delete(store.names.audit_run(run))
    assert len(audit_json(env, "--run", BIG_RUN)) == 5200
    assert len(audit_json(env, "--run", INTERRUPTED)) == 3
    assert audit_json(env, "--run", "no-such-run") == []


def test_limit_over_the_page_size_needs_a_run(store, env):
    """Without --run, --limit stays capped (a page is read in one go) and says so."""
    result = CliRunner(env=env).invoke(cli, ["dlq", "audit", "--limit", "5001"])
    assert result.exit_code == 2
    assert "--limit" in result.output


def test_a_run_still_writing_while_it_is_read_is_read_once(store):
    """Entries the run adds while its entries are being read do not shift what the next
    page reads: each entry that was there when reading began comes once."""
    note = AuditNote("replay", "ana", BIG_RUN, "replayed")
    for _ in range(1200):
        store.record(note)
    reading = store.run_entries(BIG_RUN)
    first = [next(reading).id for _ in range(600)]
    for _ in range(300):
        store.record(note)
    rest = [entry.id for entry in reading]
    assert len(first) + len(rest) == 1200
    assert len(set(first) | set(rest)) == 1200
