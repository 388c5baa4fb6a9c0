"""``cartsync dlq`` end to end against a real Redis: what on-call engineers see and can do."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cartsync.tasks.examples import two_item_body
from cartsync.worker.cli import cli
from cartsync.worker.deadletters import Filters, replay_update_id
from tests.support import wait_for
from tests.worker.dlq_support import (
    TOTALS_409,
    make_letter,
    producer_for,
    queued_messages,
    queued_update_ids,
    scheduled_update_ids,
)

DAY = 86400.0


@pytest.fixture
def dlq(env):
    """Runs ``cartsync dlq ARGS...``; returns click's Result."""

    def run(*args, input=None, extra_env=None):
        runner = CliRunner(env={**env, **(extra_env or {})})
        return runner.invoke(cli, ["dlq", *args], input=input, catch_exceptions=False)

    return run


def park(store, **fields):
    letter = make_letter(**fields)
    store.park(letter)
    return letter


def assert_one_line_error(result, code, *needles):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(message) == 1, result.output
    for needle in needles:
        assert needle in message[0]


# -- list, show, stats -------------------------------------------------------------------------


def test_list_is_a_table_newest_first(dlq, store):
    """The table has the issue's columns and shows the newest letter first."""
    old = park(store, merchant="shop1", order_ref="A-1", version=2, dead_at=time.time() - 7200)
    new = park(
        store,
        merchant="shop2",
        order_ref="B-7",
        version=5,
        reason="exhausted",
        status=503,
        errors=["Service Unavailable\nupstream timed out"],
    )
    result = dlq("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "AGE", "MERCHANT", "ORDER", "V", "REASON", "STATUS", "ERROR"]
    assert lines[1].split()[:8] == [
        new.id,
        "0s",
        "shop2",
        "B-7",
        "5",
        "exhausted",
        "503",
        "Service",
    ]
    assert "upstream" not in lines[1]  # first line of the error only
    assert lines[2].split()[:3] == [old.id, "2h", "00m"]
    assert "Invalid data: In shipped_cart" in lines[2]


def test_list_json_prints_one_object_per_line(dlq, store):
    """--json prints one parseable object per letter, with the error texts in full."""
    letter = park(store, order_ref="J-1", version=4)
    result = dlq("list", "--json")
    [line] = result.stdout.splitlines()
    row = json.loads(line)
    assert (row["id"], row["order_ref"], row["version"], row["errors"]) == (
        letter.id,
        "J-1",
        4,
        [TOTALS_409],
    )


def test_list_pages_with_a_cursor(dlq, store):
    """--limit cuts the page and names the cursor; the cursor continues where it stopped."""
    letters = [park(store, dead_at=1_700_000_000.0 + i) for i in range(5)]
    first = dlq("list", "--limit", "2", "--json")
    assert [json.loads(x)["id"] for x in first.stdout.splitlines()] == [
        letters[4].id,
        letters[3].id,
    ]
    assert f"--cursor {letters[3].id}" in first.stderr
    rest = dlq("list", "--limit", "5", "--cursor", letters[3].id, "--json")
    assert [json.loads(x)["id"] for x in rest.stdout.splitlines()] == [
        letters[2].id,
        letters[1].id,
        letters[0].id,
    ]
    assert "--cursor" not in rest.stderr


def test_list_filters(dlq, store):
    """Each filter option narrows the listing to the letters that match it."""
    a = park(store, merchant="shop1", order_ref="F-1", dead_at=time.time() - 3 * DAY)
    b = park(
        store,
        merchant="shop2",
        order_ref="F-2",
        reason="unauthorized",
        status=401,
        errors=["Access denied"],
    )
    c = park(
        store,
        merchant="shop1",
        order_ref="F-3",
        reason="invalid",
        status=None,
        errors=["order.merchant.id: Missing data for required field."],
    )

    def ids(*args):
        result = dlq("list", "--json", *args)
        assert result.exit_code == 0, result.output
        return {json.loads(x)["id"] for x in result.stdout.splitlines()}

    assert ids("--merchant", "shop1") == {a.id, c.id}
    assert ids("--reason", "unauthorized") == {b.id}
    assert ids("--status", "none") == {c.id}
    assert ids("--status", "409") == {a.id}
    assert ids("--order", "F-2") == {b.id}
    assert ids("--since", "1d") == {b.id, c.id}
    assert ids("--until", "2d") == {a.id}
    assert ids("--grep", "access DENIED") == {b.id}
    assert ids("--merchant", "shop1", "--grep", "missing") == {c.id}


def test_options_fall_back_to_the_environment(dlq, store):
    """CARTSYNC_DLQ_LIST_MERCHANT filters like --merchant does."""
    park(store, merchant="shop1")
    wanted = park(store, merchant="shop2")
    result = dlq("list", "--json", extra_env={"CARTSYNC_DLQ_LIST_MERCHANT": "shop2"})
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == [wanted.id]


@pytest.mark.parametrize("variable", ["CARTSYNC_DLQ_REPLAY_FORCE", "CARTSYNC_DLQ_REPLAY_YES"])
def test_force_and_yes_never_come_from_the_environment(dlq, store, variable):
    """A variable cannot switch on --force or --yes: the replay still asks, and is declined."""
    park(store, merchant="shop1")
    result = dlq("replay", "--all", input="n\n", extra_env={variable: "1"})
    assert "[y/N]" in result.output
    assert len(list(store.scan(Filters()))) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--status", "abc"], "--status"),
        (["--reason", "bored"], "--reason"),
        (["--since", "last tuesday"], "--since"),
        (["--since", "1h", "--until", "2h"], "--since"),
        (["--cursor", "nope"], "--cursor"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_filters_are_usage_errors(dlq, args, needle):
    """A bad filter is one line naming the option, exit status 2, no traceback."""
    assert_one_line_error(dlq("list", *args), 2, needle)


def test_unreachable_redis_is_one_line(dlq):
    """With Redis down, a command says so on one line, without the password, and exits 1."""
    result = dlq("stats", "--redis-url", "redis://:hunter2@127.0.0.1:1/0")
    assert_one_line_error(result, 1, "redis://127.0.0.1:1/0", "does not answer")
    assert "hunter2" not in result.output


def test_unknown_id_is_one_line(dlq, store):
    """show, edit and replay of an id that is not there exit 1 naming the id."""
    for command in ("show", "edit", "replay"):
        result = dlq(command, "1700000000000-deadbeef")
        assert_one_line_error(result, 1, "1700000000000-deadbeef")


def test_since_takes_the_ago_form_the_help_shows(dlq, store):
    """--since "2h ago" keeps the letters that died in the last two hours."""
    park(store, order_ref="OLD-1", dead_at=time.time() - 3 * 3600)
    recent = park(store, order_ref="NEW-1", dead_at=time.time() - 600)
    result = dlq("list", "--json", "--since", "2h ago")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [recent.id]


def test_show_has_everything_and_the_payload_pretty_printed(dlq, store):
    """show prints the letter's facts, errors, attempts, history and indented payload."""
    letter = park(store, merchant="shop1", order_ref="S-1", version=3)
    result = dlq("show", letter.id)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        letter.id,
        "shop1",
        "S-1",
        "conflict (HTTP 409)",
        TOTALS_409,
        "HTTP 409",
        letter.update_id,
        replay_update_id(letter.id, 0),
        '    "merchant_reference": {',
    ):
        assert text in out
    assert json.loads(out[out.index("Payload:\n") + 9 :]) == letter.payload


def test_show_json_is_the_whole_letter(dlq, store):
    """show --json prints the letter exactly as stored."""
    letter = park(store)
    result = dlq("show", letter.id, "--json")
    assert json.loads(result.stdout) == store.get(letter.id).to_dict()


def test_stats_counts_and_oldest_age(dlq, store):
    """stats gives the total, counts by reason, status and merchant, and the oldest age."""
    park(store, merchant="shop1", dead_at=time.time() - 3 * DAY - 60)
    park(store, merchant="shop1")
    park(store, merchant="shop2", reason="rejected", status=404, errors=["Not found"])
    result = dlq("stats", "--json")
    data = json.loads(result.stdout)
    assert data["total"] == 3
    assert data["by_reason"] == {"conflict": 2, "rejected": 1}
    assert data["by_status"] == {"409": 2, "404": 1}
    assert data["by_merchant"] == {"shop1": 2, "shop2": 1}
    assert 3 * DAY < data["oldest_age_s"] < 3 * DAY + 600
    text = dlq("stats").output
    assert "Dead letters: 3" in text
    assert "(3d 00h old)" in text


# -- replay ------------------------------------------------------------------------------------


def test_replay_with_nothing_matching_says_so(dlq, store):
    """A replay whose filters match nothing says "Nothing to do." and exits 0."""
    park(store, merchant="shop1")
    result = dlq("replay", "--merchant", "nobody")
    assert (result.exit_code, result.output.strip()) == (0, "Nothing to do.")


def test_replay_needs_a_selection(dlq):
    """replay without ids, --all or a filter is a usage error; ids with --all too."""
    assert_one_line_error(dlq("replay"), 2, "ids, --all, or filters")
    assert_one_line_error(dlq("replay", "1700000000000-deadbeef", "--all"), 2, "not both")


def test_replay_asks_first_and_a_no_changes_nothing(dlq, store, redis_client, settings):
    """replay says how many letters match and asks; answering no leaves everything as it was."""
    park(store)
    park(store)
    result = dlq("replay", "--all", input="n\n")
    assert "Replay 2 dead letter(s)?" in result.output
    assert result.exit_code == 1
    assert store.stats().total == 2
    assert queued_update_ids(redis_client, settings) == []


def test_replay_sends_letters_and_counts(dlq, store, redis_client, settings):
    """Confirmed, replay queues each letter under its replay id, empties the store, counts."""
    letters = [park(store, order_ref=f"R-{i}") for i in range(3)]
    result = dlq("replay", "--all", input="y\n")
    assert result.exit_code == 0, result.output
    assert "3 replayed, 0 refused, 0 failed." in result.output
    assert sorted(queued_update_ids(redis_client, settings)) == sorted(
        replay_update_id(letter.id, 0) for letter in letters
    )
    assert store.stats().total == 0


def test_replay_by_id_refuses_superseded_and_force_sends_it(dlq, store, redis_client, settings):
    """A letter whose order moved on is refused (and kept); --force queues it as the newest."""
    letter = park(store, order_ref="SUP-1", version=1)
    producer = producer_for(settings, redis_client)
    producer.enqueue(two_item_body("shop1", "SUP-1"), version=2)
    refused = dlq("replay", letter.id, "--yes")
    assert refused.exit_code == 0, refused.output
    assert "0 replayed, 1 refused, 0 failed." in refused.output
    assert "superseded: the order has v2" in refused.output
    assert store.get(letter.id).history[-1]["action"] == "replay_refused"
    forced = dlq("replay", letter.id, "--yes", "--force")
    assert "1 replayed, 0 refused, 0 failed." in forced.output
    [sent] = [m for m in queued_messages(redis_client, settings) if m.get("replay_of")]
    assert (sent["version"], sent["replay_of"]) == (3, letter.id)
    assert store.stats().total == 0


def test_dry_run_tells_replay_from_refusal_and_changes_nothing(dlq, store, redis_client, settings):
    """--dry-run lists what would be replayed and what refused, and why, writing nothing."""
    ok = park(store, order_ref="D-1", version=1)
    stale = park(store, order_ref="D-2", version=1)
    broken_payload = two_item_body("shop1", "D-3")
    del broken_payload["order"]["shipped_cart"]["currency"]
    broken = park(store, order_ref="D-3", payload=broken_payload)
    producer_for(settings, redis_client).enqueue(two_item_body("shop1", "D-2"), version=2)
    before = {key: redis_client.dump(key) for key in redis_client.keys("*")}
    result = dlq("replay", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"would replay  {ok.id}" in out
    assert f"would refuse  {stale.id} shop1/D-2 v1: superseded: the order has v2 enqueued" in out
    assert f"would fail    {broken.id}" in out
    assert "order.shipped_cart.currency" in out
    assert "1 would be replayed, 1 refused, 1 would fail" in out
    assert {key: redis_client.dump(key) for key in redis_client.keys("*")} == before


def test_failed_replays_exit_non_zero(dlq, store):
    """A letter that fails validation is counted as failed and the command exits 1."""
    payload = two_item_body("shop1", "X-1")
    payload["order"]["shipped_cart"]["items"][0]["quantity"] = "two"
    letter = park(store, order_ref="X-1", payload=payload)
    result = dlq("replay", letter.id, "--yes")
    assert result.exit_code == 1
    assert "0 replayed, 0 refused, 1 failed." in result.output
    assert store.stats().total == 1


def test_rate_caps_letters_per_second(dlq, store):
    """--rate 20 spaces four letters at least 0.15 s apart in total."""
    for i in range(4):
        park(store, order_ref=f"RT-{i}")
    started = time.monotonic()
    result = dlq("replay", "--all", "--yes", "--rate", "20")
    assert "4 replayed" in result.output
    assert time.monotonic() - started >= 0.15


# -- edit --------------------------------------------------------------------------------------


@pytest.fixture
def editor(tmp_path):
    """A fake $EDITOR that writes the next queued text into the file it is given."""
    queue = tmp_path / "edits"
    queue.mkdir()
    script = tmp_path / "editor.py"
    script.write_text(
        "import pathlib, sys\n"
        f"queue = sorted(pathlib.Path({str(queue)!r}).glob('*.json'))\n"
        "if queue:\n"
        "    pathlib.Path(sys.argv[-1]).write_text(queue[0].read_text(encoding='utf-8'),"
        " encoding='utf-8')\n"
        "    queue[0].unlink()\n"
    )

    class Editor:
        def __init__(self):
            self.env = {"EDITOR": f"{sys.executable} {script}", "VISUAL": None}

        def will_write(self, *texts):
            for n, text in enumerate(texts):
                (queue / f"{n:03d}.json").write_text(text, encoding="utf-8")

    return Editor()


def test_edit_validates_reopens_and_keeps_the_original(dlq, store, editor, redis_client, settings):
    """A 409 for bad totals is fixed in the editor after one invalid try, then replays."""
    bad = two_item_body("shop1", "E-1")
    bad["order"]["shipped_cart"]["order_total_with_tax"] += 42  # seQura: "The diff is 42."
    letter = park(store, order_ref="E-1", payload=bad)
    invalid = json.loads(json.dumps(bad))
    invalid["order"]["shipped_cart"]["items"][0]["quantity"] = "two"
    fixed = two_item_body("shop1", "E-1")
    editor.will_write(json.dumps(invalid), json.dumps(fixed, indent=2))
    result = dlq("edit", letter.id, input="y\n", extra_env=editor.env)
    assert result.exit_code == 0, result.output
    assert "order.shipped_cart.items.0.quantity" in result.output
    assert f"Saved revision 1 of letter {letter.id}" in result.output
    saved = store.get(letter.id)
    assert saved.payload == fixed
    assert saved.revision == 1
    assert saved.history[-1]["previous_payload"] == bad
    replayed = dlq("replay", letter.id, "--yes")
    assert "1 replayed" in replayed.output
    [sent] = queued_messages(redis_client, settings)
    assert sent["update_id"] == replay_update_id(letter.id, 1)
    assert sent["body"]["order"]["shipped_cart"] == fixed["order"]["shipped_cart"]


def test_edit_can_be_aborted(dlq, store, editor):
    """Declining to edit again after an invalid save leaves the letter exactly as it was."""
    letter = park(store, order_ref="E-2")
    before = store.load(letter.id).token
    editor.will_write("{not json")
    result = dlq("edit", letter.id, input="n\n", extra_env=editor.env)
    assert_one_line_error(result, 1, "aborted")
    assert "not JSON" in result.output
    assert store.load(letter.id).token == before


def test_edit_cannot_move_a_letter_to_another_order(dlq, store, editor):
    """An edit that changes the order-ref is refused as invalid."""
    letter = park(store, order_ref="E-3")
    editor.will_write(json.dumps(two_item_body("shop1", "E-OTHER")))
    result = dlq("edit", letter.id, input="n\n", extra_env=editor.env)
    assert result.exit_code == 1
    assert "cannot move to another order" in result.output
    assert store.get(letter.id).revision == 0


def test_edit_without_changes_saves_nothing(dlq, store, editor):
    """Closing the editor without saving leaves the letter as it was."""
    letter = park(store, order_ref="E-4")
    result = dlq("edit", letter.id, extra_env=editor.env)
    assert result.exit_code == 0
    assert "No changes" in result.output
    assert store.get(letter.id).history == []


# -- drop, purge -------------------------------------------------------------------------------


def test_drop_by_id_and_dry_run_by_filter(dlq, store):
    """drop --dry-run lists without deleting; drop IDs --yes deletes exactly those."""
    a = park(store, merchant="shop1")
    b = park(store, merchant="shop2")
    dry = dlq("drop", "--merchant", "shop1", "--dry-run")
    assert f"would drop {a.id}" in dry.output
    assert b.id not in dry.output
    assert store.stats().total == 2
    result = dlq("drop", a.id, "--yes")
    assert result.exit_code == 0, result.output
    assert "1 letter(s) dropped." in result.output
    assert [s.letter.id for s in store.scan(Filters())] == [b.id]


def test_drop_by_filter_removes_every_match(dlq, store):
    """drop with a filter and --yes deletes every matching letter and no other."""
    doomed = [park(store, merchant="closed-shop") for _ in range(3)]
    kept = park(store, merchant="shop1")
    result = dlq("drop", "--merchant", "closed-shop", "--yes")
    assert "3 letter(s) dropped." in result.output
    assert [s.letter.id for s in store.scan(Filters())] == [kept.id]
    dropped = {e.letter for e in store.audit_entries(limit=10, action="drop") if e.letter}
    assert dropped == {letter.id for letter in doomed}


def test_purge_removes_only_older_letters(dlq, store):
    """purge --older-than 2d deletes letters older than two days and keeps the rest."""
    old = park(store, dead_at=time.time() - 3 * DAY)
    recent = park(store, dead_at=time.time() - DAY)
    asked = dlq("purge", "--older-than", "2d", input="n\n")
    assert "Purge 1 dead letter(s) for good?" in asked.output
    assert store.stats().total == 2
    result = dlq("purge", "--older-than", "2d", "--yes")
    assert "1 letter(s) purged." in result.output
    assert [s.letter.id for s in store.scan(Filters())] == [recent.id]
    assert old.id in {e.letter for e in store.audit_entries(limit=10, action="purge")}


def test_purge_needs_a_valid_duration(dlq):
    """purge without --older-than, or with a bad one, is a usage error."""
    assert dlq("purge").exit_code == 2
    assert_one_line_error(dlq("purge", "--older-than", "soon"), 2, "--older-than")


# -- export, import, audit ---------------------------------------------------------------------


def test_export_import_round_trip_keeps_all_but_the_ids(dlq, store, tmp_path, redis_client):
    """Exported letters imported into an empty store export again the same, but for their new
    ids and update ids and a history entry naming where each came from; importing the file
    again adds nothing."""
    park(store, merchant="shop1", order_ref="Ñ-1")
    park(
        store,
        merchant="shop2",
        reason="exhausted",
        status=None,
        version=None,
        errors=["ConnectTimeout"],
    )
    edited = park(store, order_ref="X-2")
    store.note(store.load(edited.id), {"at": 1.5, "action": "edit", "revision": 1})
    first = tmp_path / "letters.jsonl"
    assert dlq("export", "-o", str(first)).exit_code == 0
    redis_client.flushdb()
    result = dlq("import", str(first))
    assert "Imported 3 letter(s); 0 already present." in result.output
    second = tmp_path / "again.jsonl"
    dlq("export", "-o", str(second))
    before = {json.loads(line)["order_ref"]: json.loads(line) for line in first.open()}
    for line in second.open():
        letter = json.loads(line)
        old = before[letter["order_ref"]]
        assert letter["id"] != old["id"]
        assert letter["update_id"] == f"imported-{letter['id']}"
        *kept, entry = letter["history"]
        assert (entry["action"], entry["letter"], entry["update_id"]) == (
            "imported",
            old["id"],
            old["update_id"],
        )
        unchanged = {**letter, "id": old["id"], "update_id": old["update_id"], "history": kept}
        assert json.dumps(unchanged, ensure_ascii=False, separators=(",", ":")) == json.dumps(
            old, ensure_ascii=False, separators=(",", ":")
        )
    again = dlq("import", str(first))
    assert "Imported 0 letter(s); 3 already present." in again.output


def test_import_reads_standard_input(dlq, store, redis_client):
    """import - reads the letters from standard input."""
    park(store, order_ref="IN-1")
    exported = dlq("export").stdout
    redis_client.flushdb()
    result = dlq("import", "-", input=exported)
    assert "Imported 1 letter(s); 0 already present." in result.output
    assert [s.letter.order_ref for s in store.scan(Filters())] == ["IN-1"]


def test_import_accepts_a_byte_order_mark(dlq, store, tmp_path):
    """A file of letters saved with a UTF-8 byte order mark imports like one without."""
    source = tmp_path / "letters.jsonl"
    source.write_text(make_letter(order_ref="BOM-1").to_json() + "\n", encoding="utf-8-sig")
    result = dlq("import", str(source))
    assert result.exit_code == 0, result.output
    assert [s.letter.order_ref for s in store.scan(Filters())] == ["BOM-1"]


def test_import_names_a_bad_line_and_imports_nothing(dlq, store, tmp_path):
    """A malformed line stops the import before anything is stored, naming line and field."""
    good = make_letter().to_json()
    bad = json.dumps({**json.loads(make_letter().to_json()), "version": "three"})
    source = tmp_path / "letters.jsonl"
    source.write_text(good + "\n" + bad + "\n", encoding="utf-8")
    result = dlq("import", str(source))
    assert_one_line_error(result, 1, "line 2", "'version'")
    assert store.stats().total == 0


def test_audit_records_who_did_what(dlq, store, editor, tmp_path):
    """Replays, edits, drops and imports appear in the audit log with the login name."""
    from cartsync.worker.cli.dlq.session import who

    a = park(store, order_ref="AU-1")
    b = park(store, order_ref="AU-2")
    editor.will_write(json.dumps(two_item_body("shop1", "AU-1", quantity=3)))
    dlq("edit", a.id, extra_env=editor.env)
    dlq("replay", a.id, "--yes")
    dlq("drop", b.id, "--yes")
    result = dlq("audit", "--json")
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    by_letter = {(e["action"], e["letter"]): e for e in entries if e["letter"]}
    assert by_letter[("edit", a.id)]["result"] == "saved revision 1"
    assert by_letter[("replay", a.id)]["result"] == "replayed"
    assert by_letter[("drop", b.id)]["result"] == "dropped"
    assert {e["by"] for e in entries} == {who()}
    summaries = [e for e in entries if not e["letter"]]
    assert {e["action"] for e in summaries} >= {"replay", "drop"}
    table = dlq("audit", "--action", "drop").output
    assert b.id in table
    assert a.id not in table


# -- interrupted bulk replays ------------------------------------------------------------------


def start_replay(env, *extra):
    """``cartsync dlq replay --all --yes`` in a child process (its own process group)."""
    command = [
        sys.executable,
        "-c",
        "from cartsync.worker.cli import main; main()",
        "dlq",
        "replay",
        "--all",
        "--yes",
        *extra,
    ]
    return subprocess.Popen(
        command,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("how", "workers"), [(signal.SIGKILL, "2"), (signal.SIGKILL, "1"), (signal.SIGINT, "2")]
)
def test_a_bulk_replay_killed_midway_and_rerun_sends_every_letter_once(
    env, store, redis_client, settings, how, workers
):
    """Killed halfway (SIGKILL or Ctrl-C, one process or several) and run again, a replay
    queues each letter exactly once and empties the store."""
    count = 120
    letters = [make_letter(order_ref=f"K-{i}", version=1) for i in range(count)]
    store.park_many(letters)
    # Paced to take about 2.4 s, so that the signal lands midway even on a busy machine.
    first = start_replay(env, "--rate", "50", "--workers", workers)
    wait_for(lambda: store.stats().total <= count - 30, timeout=30, what="a third replayed")
    os.killpg(first.pid, how)
    output = first.communicate(timeout=30)[0].decode()
    left = store.stats().total
    assert 0 < left < count, output
    if how == signal.SIGINT:
        assert first.returncode == 130, output
        assert "Run the same command again" in output
    second = start_replay(env, "--workers", "2")
    output = second.communicate(timeout=60)[0].decode()
    assert second.returncode == 0, output
    assert f"{left} replayed, 0 refused, 0 failed." in output
    assert store.stats().total == 0
    expected = {replay_update_id(letter.id, 0) for letter in letters}
    in_queue = queued_update_ids(redis_client, settings)
    assert len(in_queue) == len(set(in_queue))  # nothing queued twice
    assert set(in_queue) | set(scheduled_update_ids(redis_client, settings)) == expected
    replayed = store.audit_entries(limit=1000, action="replay")
    assert sorted(e.letter for e in replayed if e.result == "replayed") == sorted(
        letter.id for letter in letters
    )


def replay_children(pid):
    """Process ids of the replay processes a ``cartsync dlq replay`` started (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_replay_process_dying_stops_the_run_with_one_line(env, store):
    """If one replay process is killed, the command says so on one line and exits 1; running
    it again finishes the job."""
    letters = [make_letter(order_ref=f"P-{i}", version=1) for i in range(120)]
    store.park_many(letters)
    first = start_replay(env, "--rate", "100", "--workers", "2")
    wait_for(lambda: store.stats().total <= 100, timeout=30, what="some letters replayed")
    children = wait_for(lambda: replay_children(first.pid), timeout=10, what="the children")
    os.kill(children[0], signal.SIGKILL)
    output = first.communicate(timeout=60)[0].decode()
    assert first.returncode == 1, output
    assert "Traceback" not in output
    assert "a replay process stopped unexpectedly" in output
    second = start_replay(env, "--workers", "2")
    assert second.communicate(timeout=60)[0] is not None
    assert second.returncode == 0
    assert store.stats().total == 0


def alive(pid):
    """Whether a process exists and is not a zombie waiting to be reaped (Linux /proc)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def descendants(pid):
    """Every process below ``pid`` (its children, theirs, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("count", "extra"),
    [(200, ("--rate", "20")), (3000, ())],
    ids=["paced: children waiting for letters", "unpaced: children holding hundreds"],
)
def test_replay_processes_die_with_a_sigkilled_parent(
    env, store, redis_client, settings, count, extra
):
    """SIGKILL to the `dlq replay` process alone (not its group) leaves none of its replay
    processes running after a few seconds, also while they hold hundreds of letters (which
    they went on replaying, then hung on a full pipe); a second run replays the rest once."""
    letters = [make_letter(order_ref=f"O-{i}", version=1) for i in range(count)]
    store.park_many(letters)
    first = start_replay(env, *extra, "--workers", "2")
    children = wait_for(
        lambda: len(replay_children(first.pid)) == 2 and replay_children(first.pid),
        timeout=30,
        what="the replay processes",
    )
    wait_for(lambda: store.stats().total <= count - 10, timeout=30, what="some replayed")
    below = descendants(first.pid)
    assert set(children) <= set(below)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in below), timeout=5, what="the children to stop")
    left = store.stats().total
    assert 0 < left < count
    second = start_replay(env, "--workers", "2")
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output
    assert f"{left} replayed, 0 refused, 0 failed." in output
    assert store.stats().total == 0
    queued = queued_update_ids(redis_client, settings)
    assert len(queued) == len(set(queued)) == count
    assert set(queued) == {replay_update_id(letter.id, 0) for letter in letters}
