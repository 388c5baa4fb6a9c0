"""The commands that read JSON agree with each other and with the worker on hostile input.

``validate`` and ``enqueue`` read a file through the one codec: what it refuses, both refuse
with one error line naming the path (exit 2, as unreadable input), never a traceback.
``dlq edit`` and ``dlq import`` read the same way, so no NaN is saved into a letter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cartsync.config.settings import setting_names
from cartsync.tasks import codec
from cartsync.tasks.examples import two_item_body, with_value
from cartsync.tasks.message import MAX_VERSION
from cartsync.tasks.schemas.fields import BLANK_IDENTIFIER
from cartsync.worker import keys
from cartsync.worker.cli import cli
from cartsync.worker.cli.common import UnreadableJson, loads_json
from cartsync.worker.cli.dlq.change import check_payload
from cartsync.worker.cli.dlq.importfile import parse_line
from tests.worker.dlq_support import make_letter

#: A body with ``{{NOTE}}`` where a hostile value goes, as a producer's JSON text.
TEMPLATE = json.dumps(with_value(two_item_body(), "order.note", "{{NOTE}}"))
#: More digits than Python turns into text by default (4300).
HUGE = "9" * 5000


def body_text(note: str) -> str:
    return TEMPLATE.replace('"{{NOTE}}"', note)


@pytest.fixture
def cartsync(redis_url, redis_client):
    """Runs ``cartsync ARGS...`` with the test Redis and one merchant, and nothing else set."""
    env: dict[str, str | None] = dict.fromkeys(setting_names())
    env.update({name: None for name in os.environ if name.startswith("CARTSYNC_")})
    env.update(CARTSYNC_REDIS_URL=redis_url, CARTSYNC_SEQURA_USERNAME="u",
               CARTSYNC_SEQURA_PASSWORD="p")  # fmt: skip

    def invoke(*args: str, input: str | None = None) -> Result:
        result = CliRunner(env=env).invoke(cli, list(args), input=input)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert "Traceback" not in result.output
        return result

    return invoke


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def nothing_queued(redis_client) -> bool:
    return int(redis_client.zcard(keys.schedule("cartsync"))) == 0


@pytest.mark.parametrize(
    ("note", "path", "message"),
    [
        ("NaN", "order.note", codec.NOT_FINITE),
        ("-Infinity", "order.note", codec.NOT_FINITE),
        ("1e400", "order.note", codec.NOT_FINITE),
        (HUGE, "order.note", codec.OUT_OF_RANGE),
        (str(2**63), "order.note", codec.OUT_OF_RANGE),
        ("[" * 981 + "]" * 981, "body", codec.TOO_DEEP),
        ("[" * 985 + "]" * 985, "body", codec.TOO_DEEP),
    ],
    ids=["nan", "-infinity", "1e400", "5000-digits", "2**63", "981-deep", "985-deep"],
)
def test_validate_and_enqueue_refuse_alike_naming_the_path(
    cartsync, tmp_path, redis_client, note, path, message
):
    """What the worker could never send, validate and enqueue both refuse as invalid (exit 1),
    with the path and the rule, as for any invalid body; nothing is queued."""
    source = tmp_path / "order.json"
    source.write_text(body_text(note), encoding="utf-8")
    expected = f"{path}: {message}"
    validated = cartsync("validate", str(source))
    assert (validated.exit_code, validated.stdout) == (1, f"{expected}\n")
    enqueued = cartsync("enqueue", str(source))
    assert (enqueued.exit_code, enqueued.stderr) == (1, f"{expected}\n")
    assert nothing_queued(redis_client)


def test_a_file_past_the_size_limit_is_refused_unread(cartsync, tmp_path):
    """A file larger than the codec's limit is refused in one line naming the limit."""
    source = tmp_path / "big.json"
    source.write_text(body_text('"' + "x" * codec.MAX_BODY_BYTES + '"'), encoding="utf-8")
    result = cartsync("validate", str(source))
    assert result.exit_code == 2
    assert f"at most {codec.MAX_BODY_BYTES} are accepted" in one_error_line(result)


def test_each_refused_value_is_a_line_in_path_order(cartsync, tmp_path):
    """Many refused values are one line each, in natural path order (items.2 before items.10)."""
    source = tmp_path / "order.json"
    source.write_text(body_text("[" + ", ".join(["NaN"] * 11) + "]"), encoding="utf-8")
    lines = cartsync("validate", str(source)).stdout.splitlines()
    assert lines == [f"order.note.{n}: {codec.NOT_FINITE}" for n in range(11)]


@pytest.mark.parametrize("path", ["order.merchant.id", "order.merchant_reference.order_ref_1"])
def test_validate_and_enqueue_refuse_a_blank_identifier_by_path(
    cartsync, tmp_path, redis_client, path
):
    """An empty merchant-ref or order-ref is invalid for both commands (exit 1, the path named),
    never an assertion's traceback."""
    source = tmp_path / "order.json"
    source.write_text(json.dumps(with_value(two_item_body(), path, "")), encoding="utf-8")
    validated = cartsync("validate", str(source))
    assert (validated.exit_code, validated.stdout) == (1, f"{path}: {BLANK_IDENTIFIER}\n")
    enqueued = cartsync("enqueue", str(source))
    assert (enqueued.exit_code, enqueued.stderr) == (1, f"{path}: {BLANK_IDENTIFIER}\n")
    assert nothing_queued(redis_client)


@pytest.mark.parametrize("version", [str(MAX_VERSION + 1), "0", "1.5"])
def test_enqueue_refuses_a_version_out_of_range_naming_the_option(cartsync, redis_client, version):
    """--version takes whole numbers from 1 to 2**63-1 only: a usage error naming it."""
    result = cartsync("enqueue", "-", "--version", version, input=json.dumps(two_item_body()))
    assert result.exit_code == 2
    assert "'--version'" in result.stderr
    assert nothing_queued(redis_client)


def test_enqueue_takes_the_highest_version_exactly(cartsync, redis_client):
    """--version 2**63-1 is queued with that very version."""
    body = json.dumps(two_item_body())
    result = cartsync("enqueue", "-", "--version", str(MAX_VERSION), input=body)
    assert result.exit_code == 0, result.output
    [member] = redis_client.zrange(keys.schedule("cartsync"), 0, -1)
    assert f',"version":{MAX_VERSION},'.encode() in member


def test_loads_json_names_where_text_stops_being_json():
    """The shared reader's message is where the text breaks, as before the codec."""
    with pytest.raises(UnreadableJson, match=r"^Expecting value at line 1 column 11$"):
        loads_json('{"order": }')


def test_a_dead_letter_edit_cannot_save_nan(settings):
    """An edited payload holding NaN is a problem naming its path; nothing could be saved."""
    text = body_text("NaN").replace('"s1"', '"shop1"')
    body, problems, _ = check_payload(text, ("shop1", "ORDER-1"), frozenset(), settings)
    assert body is None
    assert problems == [f"not JSON: order.note: {codec.NOT_FINITE.removesuffix('.')}"]


def test_a_dead_letter_import_refuses_a_letter_holding_nan():
    """A letter line whose payload holds NaN stops the import, naming the line and the path."""
    line = make_letter().to_json().replace('"payload":{', '"payload":{"note":NaN,', 1)
    with pytest.raises(click.ClickException, match=r"line 1: payload\.note: Not a finite"):
        parse_line(line.encode(), "letters.jsonl", 1)


def test_a_dead_letter_import_takes_a_payload_as_deep_as_a_body_may_be():
    """A letter's own nesting does not count against its payload: a payload nested to the
    codec's limit, and an edit's previous payload as deep, import."""
    deep = "[" * (codec.MAX_DEPTH - 2) + "]" * (codec.MAX_DEPTH - 2)
    payload = body_text(deep)
    letter = json.loads(make_letter().to_json())
    letter["payload"] = json.loads(payload)
    letter["history"] = [{"at": 1.0, "action": "edit", "revision": 1,
                          "previous_payload": json.loads(payload)}]  # fmt: skip
    imported, _ = parse_line(json.dumps(letter).encode(), "letters.jsonl", 1)
    assert imported.payload == json.loads(payload)



def test_the_source_file_is_named_for_unreadable_input(cartsync, tmp_path):
    """Text that is not UTF-8 or not JSON keeps its message: the file named, and where."""
    source: Path = tmp_path / "order.json"
    source.write_bytes(b'{"a": "\xff"}')
    assert one_error_line(cartsync("validate", str(source))) == (
        f"Error: {source} is not UTF-8 text (byte 8)"
    )
