"""``cartsync enqueue``: queue a body from a file or stdin, or refuse it in one clear line."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

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
