"""``cartsync enqueue``: queue a body from a file or stdin, or refuse it in one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cartsync.tasks import codec
from cartsync.tasks.examples import two_item_body
from cartsync.worker import keys
from cartsync.worker.cli import cli


@pytest.fixture
def run(redis_url, redis_client):
    cleared = {name: None for name in os.environ if name.startswith("CARTSYNC_")}
    env = {**cleared, "CARTSYNC_REDIS_URL": redis_url, "CARTSYNC_SEQURA_USERNAME": "u",
           "CARTSYNC_SEQURA_PASSWORD": "p"}  # fmt: skip

    def invoke(*args: str, input: str | None = None, **extra: str):
        result = CliRunner(env={**env, **extra}).invoke(cli, ["enqueue", *args], input=input)
        assert "Traceback" not in result.output
        return result

    return invoke


def queue_length(redis_client, settings) -> int:
    """Updates accepted and waiting for a worker (in cartsync's schedule, due now)."""
    return int(redis_client.zcard(keys.schedule(settings.key_prefix)))


def test_valid_body_from_stdin_prints_the_update_id(run, redis_client, settings):
    """A valid body read from standard input is queued and its update id printed."""
    result = run("-", input=json.dumps(two_item_body()))
    assert result.exit_code == 0, result.output
    update_id = result.output.strip().splitlines()[-1]
    assert len(update_id) == 32
    assert queue_length(redis_client, settings) == 1


def test_valid_body_from_a_file(run, tmp_path, redis_client, settings):
    """A file path works like standard input."""
    path = tmp_path / "order.json"
    path.write_text(json.dumps(two_item_body()), encoding="utf-8")
    assert run(str(path)).exit_code == 0
    assert queue_length(redis_client, settings) == 1


def test_invalid_body_lists_every_bad_field_and_queues_nothing(run, redis_client, settings):
    """Exit 1 with one `path: message` line per error; nothing reaches the queue."""
    body = two_item_body()
    body["order"]["shipped_cart"]["items"][0]["quantity"] = "2"
    del body["order"]["merchant_reference"]
    result = run("-", input=json.dumps(body))
    assert result.exit_code == 1
    assert "order.shipped_cart.items.0.quantity: " in result.output
    assert "order.merchant_reference: " in result.output
    assert queue_length(redis_client, settings) == 0


def test_not_json_is_a_usage_error(run):
    """Input that is not JSON exits 2 with one line saying where it broke."""
    result = run("-", input="{not json")
    assert result.exit_code == 2
    assert "is not JSON" in result.output


def test_a_byte_order_mark_before_the_body_is_accepted(run, tmp_path, redis_client, settings):
    """A file starting with a UTF-8 byte order mark is read as validate reads it: queued."""
    path = tmp_path / "order.json"
    path.write_text(json.dumps(two_item_body()), encoding="utf-8-sig")
    assert run(str(path)).exit_code == 0
    assert queue_length(redis_client, settings) == 1


def test_unreachable_redis_exits_2_with_one_line(run):
    """With Redis down: exit 2, one line, and the password in the URL is not shown."""
    result = run("-", input=json.dumps(two_item_body()),
                 CARTSYNC_REDIS_URL="redis://:hunter2@127.0.0.1:1/0")  # fmt: skip
    assert result.exit_code == 2
    assert "unreachable" in result.output
    assert "nothing was enqueued" in result.output
    assert "hunter2" not in result.output


def test_unknown_merchant_exits_1(run, tmp_path):
    """A merchant missing from the merchants file is named in one line, exit 1."""
    accounts = tmp_path / "merchants.toml"
    accounts.write_text('[merchants.other]\nusername = "o"\npassword = "p"\n', encoding="utf-8")
    result = run("-", input=json.dumps(two_item_body("s1")), CARTSYNC_MERCHANTS_FILE=str(accounts),
                 CARTSYNC_SEQURA_USERNAME="", CARTSYNC_SEQURA_PASSWORD="")  # fmt: skip
    assert result.exit_code == 1
    assert "'s1'" in result.output


def test_same_update_id_twice_is_queued_once(run, redis_client, settings):
    """A retried enqueue with the same --update-id does nothing the second time."""
    body = json.dumps(two_item_body())
    assert run("-", "--update-id", "row-1", input=body).exit_code == 0
    again = run("-", "--update-id", "row-1", input=body)
    assert again.exit_code == 0
    assert "enqueued before" in again.output
    assert queue_length(redis_client, settings) == 1


def test_standard_output_holds_the_update_id_alone(redis_url, redis_client, tmp_path):
    """Run as a shell would (``ID=$(cartsync enqueue f)``): standard output is the update id
    and a newline, nothing else; the log goes to standard error."""
    path = tmp_path / "order.json"
    path.write_text(json.dumps(two_item_body()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update(CARTSYNC_REDIS_URL=redis_url, CARTSYNC_SEQURA_USERNAME="u",
               CARTSYNC_SEQURA_PASSWORD="p", CARTSYNC_LOG_LEVEL="info")  # fmt: skip
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cartsync")), "enqueue", str(path)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", done.stdout)
    assert '"event": "enqueue"' in done.stderr


def test_a_bad_redis_url_option_is_named_in_one_line(run):
    """--redis-url with a wrong scheme or port is a usage error naming the option."""
    for url in ("http://127.0.0.1:6379/0", "nonsense", "redis://127.0.0.1:99999/0"):
        result = run("-", "--redis-url", url, input=json.dumps(two_item_body()))
        assert result.exit_code == 2
        assert "Invalid value for '--redis-url'" in result.output


def test_a_bad_setting_in_the_environment_is_named_in_one_line(run):
    """A wrong CARTSYNC_* variable stops the command with exit 2, naming the variable."""
    for name, value in (("CARTSYNC_RETRY_CAP_S", "nan"), ("CARTSYNC_REDIS_URL", "http://x")):
        result = run("-", input=json.dumps(two_item_body()), **{name: value})
        assert result.exit_code == 2
        assert name in result.output


def body_for(order_ref: str, **changes) -> dict:
    body = two_item_body()
    body["order"]["merchant_reference"]["order_ref_1"] = order_ref
    body["order"].update(changes)
    return body


def test_json_lines_enqueue_each_good_line_and_answer_each_line(run, redis_client, settings):
    """--lines takes one body a line: each line gets one JSON result, a bad line is refused
    by path without stopping the rest, and the exit status says one was refused."""
    lines = [
        json.dumps(body_for("L-1")),
        json.dumps(body_for("L-2", note=None)).replace("null", "NaN"),
        "",
        "not json",
        json.dumps(body_for("L-3")),
    ]
    result = run("--lines", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 1, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["line"] for a in answers] == [1, 2, 4, 5]
    assert answers[0]["status"] == answers[3]["status"] == "enqueued"
    assert answers[1]["errors"] == {"order.note": [codec.NOT_FINITE]}
    assert list(answers[2]["errors"]) == ["body"]
    assert queue_length(redis_client, settings) == 2


def test_json_lines_all_good_exit_0(run, redis_client, settings):
    """A file of good lines is queued whole, with exit status 0."""
    text = "\n".join(json.dumps(body_for(f"G-{n}")) for n in range(5))
    result = run("--lines", "-", input=text)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5
    assert queue_length(redis_client, settings) == 5


def test_json_lines_stop_when_redis_is_unreachable(run):
    """With Redis gone, the first line says so on stderr and the command exits 2."""
    result = run(
        "--lines", "-", input=json.dumps(body_for("R-1")), CARTSYNC_REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert result.exit_code == 2
    assert "line 1:" in result.stderr


def test_json_lines_take_no_version_or_update_id(run):
    """--version and --update-id name one update, so --lines refuses them."""
    result = run("--lines", "--version", "3", "-", input="")
    assert result.exit_code == 2
    assert "not with --lines" in result.stderr
