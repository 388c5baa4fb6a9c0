"""``cartsync dlq list`` grouped by order or by error, and its columns sized to the terminal,
against a real Redis (and a real terminal, a pseudo-terminal, where sizing is the point)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cartsync.worker.cli import cli
from cartsync.worker.cli.dlq.render import MIN_LAST_WIDTH, last_width
from tests.worker.dlq_support import make_letter, plant

LONG_ERROR = (
    "Invalid data: In shipped_cart, the sum of the items' total_with_tax exceeds the original "
    "total 125 of the order by 7460: refunds cannot add to an order (order_ref_1 A-1)."
)


def dlq(env, *args):
    result = CliRunner(env=env).invoke(cli, ["dlq", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_group_order_folds_older_versions_under_the_newest(store, env):
    """An order with three letters shows once, its newest letter first with the count, the
    older two under it marked obsolete; another order stands alone."""
    now = time.time()
    old = [make_letter(order_ref="A-1", version=v, dead_at=now - 10 + v) for v in (1, 2)]
    newest = make_letter(order_ref="A-1", version=3, dead_at=now - 5)
    other = make_letter(order_ref="B-2", version=1, dead_at=now - 1)
    store.park_many([*old, newest, other])
    lines = dlq(env, "list", "--group", "order").output.splitlines()
    assert lines[0].split() == [
        "ID", "AGE", "MERCHANT", "ORDER", "V", "LETTERS", "REASON", "STATUS", "ERROR",
    ]  # fmt: skip
    assert lines[1].startswith(other.id)
    assert lines[2].startswith(newest.id)
    assert lines[2].split()[4:6] == ["3", "3"]
    assert [line.split()[1] for line in lines[3:5]] == [old[1].id, old[0].id]
    assert all(line.startswith("└") and "obsolete" in line for line in lines[3:5])
    assert len(lines) == 5

    found = [
        json.loads(line)
        for line in dlq(env, "list", "--group", "order", "--json").stdout.splitlines()
    ]
    assert [(g["id"], g["order_letters"], g["obsolete"]) for g in found] == [
        (other.id, 1, False),
        (newest.id, 3, False),
    ]
    assert found[1]["older_ids"] == [old[1].id, old[0].id]


def test_group_order_marks_a_head_whose_newest_letter_is_elsewhere(store, env):
    """When the order's newest letter is filtered out, the shown one is marked obsolete and
    names it."""
    older = make_letter(order_ref="A-1", version=1, reason="rejected", status=400, dead_at=1.7e9)
    newest = make_letter(order_ref="A-1", version=2, dead_at=1.7e9 + 1)
    store.park_many([older, newest])
    output = dlq(env, "list", "--group", "order", "--reason", "rejected").output
    assert f"obsolete: newest is {newest.id} (v2)" in output


def test_group_error_counts_letters_by_signature(store, env):
    """Texts that differ only in their numbers count as one group, the largest first."""
    store.park_many(
        [
            make_letter(errors=["The diff is 125."], dead_at=1.7e9),
            make_letter(errors=["The diff is 7."], dead_at=1.7e9 + 1),
            make_letter(errors=["The diff is 1,250.50."], dead_at=1.7e9 + 2),
            make_letter(errors=["Order not found"], dead_at=1.7e9 + 3),
        ]
    )
    lines = dlq(env, "list", "--group", "error").output.splitlines()
    assert lines[0].split() == ["COUNT", "NEWEST", "SIGNATURE"]
    assert lines[1].split()[0] == "3"
    assert lines[1].endswith("The diff is N.")
    assert lines[2].split()[0] == "1"
    assert lines[2].endswith("Order not found")
    found = [
        json.loads(line)
        for line in dlq(env, "list", "--group", "error", "--json").stdout.splitlines()
    ]
    assert [(g["signature"], g["count"]) for g in found] == [
        ("The diff is N.", 3),
        ("Order not found", 1),
    ]


def test_the_last_column_gets_the_rest_but_never_less_than_its_minimum():
    """On a wide line the error gets what the other columns leave; on a narrow one it keeps
    its minimum (the line wraps) instead of vanishing."""
    assert last_width([10, 20, 0], 100) == 100 - 30 - 4
    assert last_width([50, 50, 0], 80) == MIN_LAST_WIDTH


def list_on_a_terminal(env, columns, *args):
    """``cartsync dlq list ARGS`` as a real process writing to a terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cartsync.worker.cli import main; main()",
            "dlq",
            "list",
            *args,
        ],
        env={
            **{k: v for k, v in {**os.environ, **env}.items() if v is not None},
            "COLUMNS": str(columns),
        },
        cwd=Path(__file__).resolve().parents[2],
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=30) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


def test_error_column_uses_the_terminal_width_and_nothing_is_cut_when_piped(store, env):
    """On a wide terminal the whole error shows (the numbers in it too); on a narrow one it
    is cut to fit the line, with an ellipsis; piped, or with --wide, it is never cut."""
    store.park(make_letter(errors=[LONG_ERROR]))
    wide = list_on_a_terminal(env, 250)
    assert LONG_ERROR in wide[1]

    narrow = list_on_a_terminal(env, 180)
    assert LONG_ERROR not in narrow[1]
    assert narrow[1].endswith("…")
    assert len(narrow[1]) == 180
    assert "exceeds the original total 125" in narrow[1]

    assert LONG_ERROR in list_on_a_terminal(env, 180, "--wide")[1]
    assert LONG_ERROR in dlq(env, "list").output.splitlines()[1]  # not a terminal


def test_group_order_lists_a_damaged_letter_on_its_own_row(store, env, redis_client, settings):
    """A damaged letter on the page (its order unknown) is listed as DAMAGED, not dropped
    and not a traceback."""
    store.park(make_letter(order_ref="A-1"))
    plant(redis_client, settings.key_prefix, "1700000000000-0badf00d", b"not zlib")
    result = dlq(env, "list", "--group", "order")
    assert "DAMAGED" in result.output
    assert "1700000000000-0badf00d" in result.output
    assert "A-1" in result.output
