"""``--as NAME``: who the audit log names for every change the CLI makes (replay, edit, drop,
purge, import), against a real Redis; the login name otherwise, and the command says which."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from cartsync.tasks.examples import two_item_body
from cartsync.worker.cli import cli
from cartsync.worker.cli.dlq.session import who
from tests.worker.dlq_support import make_letter


@pytest.fixture
def dlq(env):
    def run(*args, extra_env=None, code=0):
        result = CliRunner(env={**env, **(extra_env or {})}).invoke(cli, ["dlq", *args])
        assert result.exit_code == code, result.output
        return result

    return run


def entries_by(dlq):
    return {
        (e["action"], e["letter"], e["by"])
        for e in map(json.loads, dlq("audit", "--json", "--limit", "500").stdout.splitlines())
    }


def test_every_change_records_the_name_given(dlq, store, tmp_path, monkeypatch):
    """replay, edit, drop, purge and import each record --as's name (per letter and in the
    run's summary) and say on stderr which name they recorded."""
    a, b, c, d = (make_letter(order_ref=f"AS-{n}") for n in range(4))
    old = make_letter(order_ref="AS-old", dead_at=1.7e9)
    store.park_many([a, b, c, d, old])
    editor = tmp_path / "editor.py"
    body = json.dumps(two_item_body("shop1", "AS-0", quantity=3))
    editor.write_text(f"import sys, pathlib\npathlib.Path(sys.argv[-1]).write_text({body!r})\n")
    edited = dlq("edit", a.id, "--as", "ana", extra_env={"EDITOR": f"{sys.executable} {editor}"})
    assert "Recorded in the audit log as 'ana' (--as)" in edited.stderr
    replayed = dlq("replay", a.id, "--yes", "--as", "bob")
    assert "as 'bob' (--as)" in replayed.stderr
    dlq("drop", b.id, "--yes", "--as", "cy")
    dlq("purge", "--older-than", "30d", "--yes", "--as", "dee")
    export = tmp_path / "out.jsonl"
    dlq("export", "--merchant", "shop1", "--order", "AS-2", "-o", str(export))
    dlq("drop", c.id, "--yes", "--as", "cy")
    imported = dlq("import", str(export), "--as", "eve")
    assert "as 'eve' (--as)" in imported.stderr
    found = entries_by(dlq)
    assert ("edit", a.id, "ana") in found
    assert ("replay", a.id, "bob") in found
    assert ("drop", b.id, "cy") in found
    assert ("purge", old.id, "dee") in found
    assert ("import", "", "eve") in found
    summaries = {(action, by) for action, letter, by in found if not letter}
    assert {("replay", "bob"), ("drop", "cy"), ("purge", "dee"), ("import", "eve")} <= summaries
    assert {by for _, _, by in found} == {"ana", "bob", "cy", "dee", "eve"}


def test_the_variable_stands_in_for_the_option_and_the_login_name_is_the_default(dlq, store):
    """CARTSYNC_DLQ_AS names who acts when --as is not given (and the command says it came
    from there); with neither, the login name is recorded and the command says so."""
    a, b = make_letter(), make_letter()
    store.park_many([a, b])
    result = dlq("drop", a.id, "--yes", extra_env={"CARTSYNC_DLQ_AS": "oncall-ana"})
    assert "as 'oncall-ana' (CARTSYNC_DLQ_AS)" in result.stderr
    result = dlq("drop", b.id, "--yes")
    assert f"as {who()!r} (the login name" in result.stderr
    found = entries_by(dlq)
    assert ("drop", a.id, "oncall-ana") in found
    assert ("drop", b.id, who()) in found


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101])
def test_a_bad_name_is_a_usage_error_naming_the_option(dlq, store, name):
    """An empty, multi-line or overlong name is refused before anything changes."""
    letter = make_letter()
    store.park(letter)
    result = dlq("drop", letter.id, "--yes", "--as", name, code=2)
    assert "--as" in result.output
    assert "Traceback" not in result.output
    assert store.stats().total == 1


def test_a_dry_run_records_nothing_and_says_no_name(dlq, store):
    """A dry run changes nothing, so it names no one."""
    store.park(make_letter())
    result = dlq("replay", "--all", "--dry-run", "--as", "ana")
    assert "Recorded in the audit log" not in result.stderr
