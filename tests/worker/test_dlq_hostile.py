"""The dead-letter store cannot be broken from the CLI: hostile import files are refused whole,
imported letters never pass for live updates, and a damaged letter in Redis is listed as
damaged while everything else keeps working."""

import json
import signal
import zlib
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from prometheus_client import generate_latest

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.order_update import process
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.cli import cli
from cartsync.worker.cli.dlq import importfile
from cartsync.worker.deadletters import (
    DeadLetter,
    Filters,
    repaired,
    replay_update_id,
)
from cartsync.worker.metrics import registry_for
from cartsync.worker.runtime import Runtime
from tests.sandbox_fixtures import SHOP
from tests.support import metrics_command
from tests.worker.dlq_support import make_letter, plant, queued_update_ids

#: Marks a field to leave out of a line.
DROP = object()


@pytest.fixture
def run(env):
    """Runs ``cartsync ARGS...`` in this process; exceptions are not caught (a traceback
    fails the test)."""

    def invoke(*args, input=None):
        return CliRunner(env=env).invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def line(**changes):
    """A letter as ``export`` writes it, with ``changes`` (DROP leaves a field out)."""
    data = json.loads(make_letter(dead_at=1_700_000_000.0).to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not DROP})


def write(tmp_path, lines, name="letters.jsonl"):
    source = tmp_path / name
    source.write_text("".join(text + "\n" for text in lines), encoding="utf-8")
    return source


def assert_one_line_error(result, code, *needles):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = [text for text in result.output.splitlines() if text.startswith("Error:")]
    assert len(message) == 1, result.output
    for needle in needles:
        assert needle in message[0], message[0]


# -- import: checked whole, stored all or nothing ----------------------------------------------


def test_an_import_dead_before_2000_is_refused_and_stores_nothing(run, store, tmp_path):
    """A line without an id that died at -1 is refused naming the line and the field; nothing
    is stored, and list and stats go on working."""
    source = write(tmp_path, [line(id=DROP, dead_at=-1)])
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 1", "'dead_at'")
    assert store.stats().total == 0
    assert run("dlq", "list").exit_code == 0
    assert run("dlq", "stats").exit_code == 0


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_bad_line_after_hundreds_of_good_ones_stores_nothing(run, store, tmp_path, via):
    """A time of 1e306 on line 601 stops the import before the first letter is stored, from a
    file or from standard input."""
    good = [line(id=DROP, update_id=f"u-{n}", order_ref=f"B-{n}") for n in range(600)]
    source = write(tmp_path, [*good, line(id=DROP, dead_at=1e306)])
    args = ("-", source.read_text()) if via == "stdin" else (str(source), None)
    result = run("dlq", "import", args[0], input=args[1])
    assert_one_line_error(result, 1, "line 601", "'dead_at'", "nothing was imported")
    assert store.stats().total == 0


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"dead_at": 1e300}, "'dead_at'"),
        ({"dead_at": -1e300}, "'dead_at'"),
        ({"enqueued_at": 1e300}, "'enqueued_at'"),
        ({"enqueued_at": 100.0}, "'enqueued_at'"),
        ({"attempts": [{"at": -1e300, "status": 409}]}, "'attempts' entry 1: 'at'"),
        ({"attempts": [{"at": 1_700_000_000, "status": 9999}]}, "'attempts' entry 1: 'status'"),
        ({"attempts": ["boom"]}, "'attempts' entry 1"),
        ({"status": 999}, "'status'"),
        ({"status": 42}, "'status'"),
        ({"status": True}, "'status'"),
        ({"version": 0}, "'version'"),
        ({"version": 2**63}, "version: Integer out of range"),
        ({"id": "-000000001000-abcdef12"}, "'id'"),
        ({"reason": "bored"}, "'reason'"),
        ({"update_id": ""}, "'update_id'"),
    ],
)
def test_numbers_and_times_out_of_range_are_refused(run, store, tmp_path, changes, needle):
    """Times outside 2000-2100, statuses outside 100-599, versions outside 1..2^63-1 and ids
    the store could not have made are refused, naming the field; nothing is stored."""
    source = write(tmp_path, [line(), line(**changes)])
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 2", needle)
    assert store.stats().total == 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('"dead_at":NaN', "dead_at: Not a finite number"),
        ('"dead_at":Infinity', "dead_at: Not a finite number"),
        ('"version":1' + "0" * 40, "version: Integer out of range"),
        ('"payload":{"order":{"total":1e400}}', "payload.order.total: Not a finite number"),
    ],
)
def test_what_json_cannot_carry_is_refused_by_path(run, store, tmp_path, text, needle):
    """NaN, infinities and numbers no double or 64-bit integer holds are refused by the
    project's codec, naming their path in the line."""
    field = text.split(":", 1)[0]
    data = json.loads(line())
    data.pop(field.strip('"'))
    bad = json.dumps(data)[:-1] + "," + text + "}"
    source = write(tmp_path, [bad])
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 1", needle)
    assert store.stats().total == 0


def test_a_binary_file_is_one_line(run, store, tmp_path):
    """A file that is not UTF-8 text is refused on one line naming the line, no traceback."""
    source = tmp_path / "photo.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 1", "Not UTF-8")
    assert store.stats().total == 0


def test_a_deeply_nested_file_is_one_line(run, store, tmp_path):
    """A line nested 100,000 deep is refused on one line, without a RecursionError."""
    source = tmp_path / "deep.jsonl"
    source.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 1", "nests too deeply")
    deep_payload = line(payload=DROP)[:-1] + ', "payload": ' + "[" * 60 + "]" * 60 + "}"
    source.write_text(deep_payload + "\n", encoding="utf-8")
    assert_one_line_error(run("dlq", "import", str(source)), 1, "line 1", "nests too deeply")
    assert store.stats().total == 0


def test_a_line_longer_than_the_limit_is_refused_unread(run, store, tmp_path, monkeypatch):
    """A line (or a file without line ends) longer than the line limit is refused, naming the
    line and the limit, without being read whole."""
    monkeypatch.setattr(importfile, "MAX_LINE_BYTES", 4096)
    source = tmp_path / "long.jsonl"
    source.write_text(line() + "\n" + "x" * 10_000, encoding="utf-8")
    result = run("dlq", "import", str(source))
    assert_one_line_error(result, 1, "line 2", "longer than 4096 bytes")
    assert store.stats().total == 0


def test_a_dry_run_checks_the_whole_file(run, store, tmp_path):
    """--dry-run counts the valid letters and stores nothing; a bad line fails it the same."""
    source = write(tmp_path, [line(), line(order_ref="D-2")])
    result = run("dlq", "import", str(source), "--dry-run")
    assert "Dry run: 2 valid letter(s)" in result.output
    assert store.stats().total == 0
    source = write(tmp_path, [line(), line(status=7)])
    assert_one_line_error(run("dlq", "import", str(source), "--dry-run"), 1, "line 2")


# -- import: the store makes the ids; never a live update's ------------------------------------


def test_imported_letters_get_new_ids_and_remember_the_old(run, store, tmp_path):
    """An imported letter's id and update id are made by this store; its history keeps where
    it came from, and importing the file again, or a line without an id again, adds nothing."""
    source = write(tmp_path, [line(id="1700000000000-0000abcd", update_id="u-1"), line(id=DROP)])
    assert "Imported 2 letter(s); 0 already present." in run("dlq", "import", str(source)).output
    letters = {s.letter.history[-1]["letter"]: s.letter for s in store.scan(Filters())}
    assert set(letters) == {"1700000000000-0000abcd", None}
    kept = letters["1700000000000-0000abcd"]
    assert kept.id != "1700000000000-0000abcd"
    assert kept.id.startswith("1700000000000-")  # still sorted by its time of death
    assert kept.update_id == f"imported-{kept.id}"
    assert kept.history[-1]["update_id"] == "u-1"
    assert not store.holds_update("u-1")
    again = run("dlq", "import", str(source))
    assert "Imported 0 letter(s); 2 already present." in again.output


def test_an_imported_letter_never_shadows_a_live_update(
    run, tmp_path, settings, redis_client, shop_sandbox
):
    """A live update whose id an imported letter also carries is still sent when a worker
    takes it: the worker does not drop it as a duplicate of the parked one."""
    rt = Runtime(
        settings.with_overrides(
            sequra_url=shop_sandbox.url,
            sequra_username=SHOP.username,
            sequra_password=SHOP.password,
        )
    )
    try:
        body = fully_shipped(
            merchant=SHOP.ref, order_ref="LIVE-1", items=[Item("shirt", "Shirt", 1000)]
        )
        Producer(rt.settings, client=rt.redis).enqueue(body, update_id="shop-42")
        source = write(tmp_path, [line(update_id="shop-42", merchant=SHOP.ref)])
        assert run("dlq", "import", str(source)).exit_code == 0
        [member] = redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1)
        redis_client.zrem(keys.schedule(settings.key_prefix), member)
        assert process(member.decode(), rt) == "delivered"
        assert shop_sandbox.state.order(SHOP.ref, "LIVE-1") is not None
    finally:
        rt.client.close()


def test_an_imported_letter_replays_under_its_new_id(run, store, tmp_path, redis_client, settings):
    """Replaying an imported letter enqueues it under the update id of its id in this store."""
    source = write(tmp_path, [line(update_id="u-from-elsewhere")])
    run("dlq", "import", str(source))
    [stored] = store.scan(Filters())
    result = run("dlq", "replay", stored.letter.id, "--yes")
    assert "1 replayed, 0 refused, 0 failed." in result.output, result.output
    assert queued_update_ids(redis_client, settings) == [replay_update_id(stored.letter.id, 0)]
    assert store.stats().total == 0


def test_history_times_out_of_range_show_as_unknown(run, store, tmp_path):
    """A history entry with a time no letter may carry is kept as written and shown as ``?``."""
    source = write(tmp_path, [line(history=[{"at": 1e300, "action": "looked", "by": "x"}])])
    assert run("dlq", "import", str(source)).exit_code == 0
    [stored] = store.scan(Filters())
    result = run("dlq", "show", stored.letter.id)
    assert result.exit_code == 0, result.output
    assert "?  looked by x" in result.output


# -- the worker's letters always read back -----------------------------------------------------


def test_repair_replaces_what_would_not_read_back_and_says_so():
    """Parking a letter whose message carried impossible values stores stand-ins, and its
    history names and quotes what was replaced."""
    letter = make_letter(dead_at=1_700_000_000.0, status=409)
    letter.version = 0
    letter.status = 1000
    letter.enqueued_at = float("nan")
    letter.attempts = ["boom", {"at": 1e300, "status": 2, "latency_ms": -1, "errors": []}]  # type: ignore[list-item]
    fixed = repaired(letter, now=1_700_000_100.0)
    assert (fixed.version, fixed.status, fixed.enqueued_at) == (None, None, 1_700_000_000.0)
    assert fixed.attempts == [{"at": None, "status": None, "latency_ms": None, "errors": []}]
    [note] = fixed.history
    assert note["action"] == "repaired"
    assert note["reason"] == "out of range when parked: attempts, enqueued_at, status, version"
    assert note["was"]["version"] == "0"
    assert DeadLetter.from_dict(fixed.to_dict()) == fixed


def test_a_letter_parked_with_impossible_values_lists_and_shows(run, store):
    """A letter parked from a damaged message (version 0, a status of 1000, a time of 1e300)
    is stored repaired, and list and show work on it."""
    letter = make_letter(status=409)
    letter.version, letter.status, letter.enqueued_at = 0, 1000, 1e300
    letter_id = store.park(letter)
    assert run("dlq", "list").exit_code == 0
    result = run("dlq", "show", letter_id)
    assert result.exit_code == 0, result.output
    assert "repaired: out of range when parked: enqueued_at, status, version" in result.output


def test_the_worker_parks_a_corrupt_message_that_reads_back(settings, store):
    """A message too broken to decode, with a huge version and a time of 1e300, becomes a
    letter the store can read back."""
    rt = Runtime(settings)
    try:
        member = json.dumps(
            {"update_id": "u-x", "merchant": "m", "order_ref": "o", "version": 2**70,
             "enqueued_at": 1e300, "body": "not an object"}
        )  # fmt: skip
        assert process(member, rt) == "dead_lettered"
    finally:
        rt.client.close()
    [stored] = store.scan(Filters())
    assert (stored.letter.version, stored.letter.reason) == (None, "invalid")


# -- damaged letters: listed as such, everything else keeps working ----------------------------

#: Damaged letters as they come to be in Redis: (id, what is stored under it).
DAMAGED: dict[str, tuple[str, Any]] = {
    "not JSON": ("1700000000000-0000dead", zlib.compress(b'{"update_id": "u-')),
    "not compressed": ("1700000000000-0000beef", b"\x00\x01 not zlib at all"),
    # What an import before this change stored for a line without an id, dead at -1.
    "bad id": (
        "-000000001000-abcdef12",
        {**json.loads(line()), "id": "-000000001000-abcdef12", "dead_at": -1},
    ),
    "out of range": (
        "1700000000000-0000cafe",
        {**json.loads(line()), "id": "1700000000000-0000cafe", "dead_at": 1e300},
    ),
}


@pytest.fixture(params=sorted(DAMAGED))
def damaged(request, redis_client, settings, store):
    """A damaged letter (of merchant shop9) beside a good one (of shop1); its id."""
    letter_id, stored = DAMAGED[request.param]
    plant(redis_client, settings.key_prefix, letter_id, stored, merchant="shop9")
    store.park(make_letter(merchant="shop1", order_ref="GOOD-1"))
    return letter_id


def test_list_shows_a_damaged_letter_as_damaged(run, damaged):
    """list names the damaged letter as DAMAGED beside the good ones, and --json says why."""
    result = run("dlq", "list")
    assert result.exit_code == 0, result.output
    [row] = [text for text in result.stdout.splitlines() if text.startswith(damaged)]
    assert "DAMAGED" in row
    assert "GOOD-1" in result.stdout
    assert "1 damaged letter(s) on this page" in result.stderr
    as_json = [json.loads(text) for text in run("dlq", "list", "--json").stdout.splitlines()]
    assert {entry["id"]: "damaged" in entry for entry in as_json}[damaged] is True


def test_stats_status_and_metrics_go_on_working(run, damaged, store, redis_client, settings):
    """stats, cartsync status and a metrics scrape answer with a damaged letter in the store,
    the oldest age taken from the oldest letter the store could have made."""
    result = run("dlq", "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["total"] == 2
    assert stats["oldest_id"] is not None
    assert stats["oldest_id"] != "-000000001000-abcdef12"
    status = run("status", "--json")
    assert status.exit_code in (0, 1), status.output
    assert json.loads(status.stdout)["dead_letters"] == 2
    assert b"cartsync_redis_up 1.0" in generate_latest(registry_for(redis_client, settings))


def test_show_prints_what_is_stored(run, damaged):
    """show on a damaged letter says why it is damaged and prints what is stored."""
    result = run("dlq", "show", "--", damaged)
    assert result.exit_code == 0, result.output
    assert "Damaged:" in result.output
    assert f"cartsync dlq drop {'-- ' if damaged[0] == '-' else ''}{damaged}" in result.output
    shown = json.loads(run("dlq", "show", "--json", "--", damaged).stdout)
    assert shown["id"] == damaged
    assert shown["damaged"]


def test_drop_removes_a_damaged_letter_and_every_trace(run, damaged, store, redis_client, settings):
    """drop ID removes a damaged letter from the store, its indexes, the order and update-id
    lists and the counters; the good letter stays."""
    result = run("dlq", "drop", "--yes", "--", damaged)
    assert result.exit_code == 0, result.output
    assert "1 letter(s) dropped." in result.output
    prefix = settings.key_prefix
    assert redis_client.hget(keys.dlq_letters(prefix), damaged) is None
    for index in redis_client.keys(keys.pattern(keys.dlq_indexes(prefix))):
        assert redis_client.zscore(index, damaged) is None, index
    assert not [m for m in redis_client.zrange(keys.dlq_by_order(prefix), 0, -1) if b"PLANTED" in m]
    assert not store.holds_update("planted-update")
    stats = store.stats()
    assert (stats.total, stats.by_merchant, stats.by_reason) == (1, {"shop1": 1}, {"conflict": 1})
    assert [e.letter for e in store.audit_entries(limit=5, action="drop") if e.letter] == [damaged]


def test_bulk_commands_get_past_a_damaged_letter(run, damaged, store, redis_client, settings):
    """replay --all fails the damaged letter and replays the rest; export skips it; edit names
    it on one line; drop --all removes it with the rest."""
    exported = run("dlq", "export")
    assert exported.stdout.count("\n") == 1
    assert "Skipped 1 damaged letter(s)" in exported.stderr
    assert_one_line_error(run("dlq", "edit", "--", damaged), 1, "damaged")
    replay = run("dlq", "replay", "--all", "--yes")
    assert replay.exit_code == 1, replay.output
    assert "1 replayed, 0 refused, 1 failed." in replay.output
    assert [e.id for e in store.page(Filters(), limit=5).entries] == [damaged]
    assert "1 letter(s) dropped." in run("dlq", "drop", "--all", "--yes").output
    assert store.stats().total == 0


@pytest.mark.slow
def test_metrics_endpoint_answers_with_a_damaged_letter(redis_client, settings):
    """`cartsync metrics` answers 200 over HTTP with a damaged letter in the store."""
    letter_id, stored = DAMAGED["bad id"]
    plant(redis_client, settings.key_prefix, letter_id, stored)
    with metrics_command(settings.redis_url) as (url, process):
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        assert "cartsync_redis_up 1.0" in response.text
        assert 'cartsync_dead_letters{reason="conflict"} 1.0' in response.text
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


# -- options that once gave tracebacks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["list", "--since", "9" * 30 + "d"], "--since"),
        (["purge", "--older-than", "9" * 30 + "s"], "--older-than"),
        (["replay", "--all", "--rate", "nan"], "--rate"),
        (["replay", "--all", "--rate", "inf"], "--rate"),
    ],
)
def test_absurd_options_are_usage_errors(run, args, needle):
    """Durations beyond a century and rates that are not finite are one-line usage errors."""
    assert_one_line_error(run("dlq", *args), 2, needle)
