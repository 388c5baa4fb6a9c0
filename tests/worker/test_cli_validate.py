"""``cartsync validate`` end to end through the real command group, with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cartsync.config.settings import setting_names
from cartsync.tasks import codec
from cartsync.tasks.examples import OPTIONS_A, full_body_a, two_item_body, with_value
from cartsync.worker.cli import cli


def run(args: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None) -> Result:
    """Invoke ``cartsync`` with no CARTSYNC_* variable set but those in ``env``."""
    environment: dict[str, str | None] = dict.fromkeys(setting_names())
    environment.update(env or {})
    return CliRunner().invoke(cli, args, env=environment, input=stdin)


def write(tmp_path: Path, body: Any, name: str = "body.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return str(path)


def merchants_file(tmp_path: Path, **options: list[str]) -> str:
    lines = []
    for ref, opts in options.items():
        lines += [
            f"[merchants.{ref}]",
            f'username = "{ref}"',
            'password = "not-a-secret"',
            f"options = {json.dumps(opts)}",
        ]
    path = tmp_path / "merchants.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def assert_one_line_usage_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_a_valid_body_exits_0_with_one_short_line(tmp_path):
    """A valid file prints one line and nothing on standard error."""
    result = run(["validate", write(tmp_path, two_item_body())])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["valid (2 item(s), contract options: none)"]
    assert result.stderr == ""


def test_warnings_go_to_standard_error_and_keep_exit_0(tmp_path):
    """Warnings are printed apart, each starting "warning: ", and do not change the exit code."""
    body = with_value(two_item_body(), "order.cancellation_reason", "other")
    result = run(["validate", write(tmp_path, body)])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("warning: order.cancellation_reason: Set while a cart")


def test_an_invalid_body_exits_1_with_one_path_message_line_per_error(tmp_path):
    """Each error is one "path: message" line, items.2 before items.10."""
    body = two_item_body()
    items = body["order"]["shipped_cart"]["items"]
    items += [dict(items[1]) for _ in range(9)]
    body["order"]["shipped_cart"]["order_total_with_tax"] += 9 * 242
    items[2]["quantity"] = 1
    items[10]["price_with_tax"] = 1
    body["order"]["merchant"]["id"] = None
    result = run(["validate", write(tmp_path, body)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "order.merchant.id: Field may not be null.",
        'order.shipped_cart.items.2.quantity: Not allowed in an item of type "handling".',
        'order.shipped_cart.items.10.price_with_tax: Not allowed in an item of type "handling".',
    ]


def test_json_output_lists_errors_and_warnings_by_path(tmp_path):
    """--json prints {"errors": {path: [messages]}, "warnings": {...}} and exits 1 when invalid."""
    body = with_value(two_item_body(), "order.shipped_cart.items.0.quantity", 0)
    body = with_value(body, "order.cancellation_reason", "other")
    result = run(["validate", "--json", write(tmp_path, body)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["errors"] == {
        "order.shipped_cart.items.0.quantity": ["Must be a positive integer (at least 1), not 0."]
    }
    assert list(document["warnings"]) == ["order.cancellation_reason"]
    assert result.stderr == ""


def test_json_output_of_a_valid_body_has_no_errors(tmp_path):
    """--json on a valid body prints empty errors and exits 0."""
    result = run(["validate", "--json", write(tmp_path, two_item_body())])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"errors": {}, "warnings": {}}


def test_dash_reads_standard_input():
    """FILE "-" reads the body from standard input."""
    data = json.dumps(two_item_body()).encode()
    result = run(["validate", "-"], stdin=data)
    assert result.exit_code == 0
    assert result.stdout.startswith("valid")


def test_a_byte_order_mark_before_the_body_is_accepted(tmp_path):
    """A file starting with a UTF-8 byte order mark validates like the same file without."""
    path = tmp_path / "body.json"
    path.write_text(json.dumps(two_item_body()), encoding="utf-8-sig")
    result = run(["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid")


def test_a_missing_file_exits_2_with_one_line(tmp_path):
    """A file that does not exist is one line naming it, exit 2."""
    missing = str(tmp_path / "nope.json")
    assert_one_line_usage_error(run(["validate", missing]), "nope.json", "cannot read")


def test_a_directory_exits_2_with_one_line(tmp_path):
    """A directory is not a readable body."""
    assert_one_line_usage_error(run(["validate", str(tmp_path)]), "cannot read")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"order": ', "not JSON"),
        (b"", "not JSON"),
        (b'{"order": {}},', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["truncated", "empty", "trailing-comma", "not-utf8"],
)
def test_what_is_not_json_exits_2_with_one_line(tmp_path, data, words):
    """Broken JSON, an empty file and non-UTF-8 bytes each give one line and exit 2."""
    path = tmp_path / "body.json"
    path.write_bytes(data)
    assert_one_line_usage_error(run(["validate", str(path)]), words)


def test_nan_is_invalid_at_its_path(tmp_path):
    """NaN is readable but no JSON value seQura can take: exit 1 naming its path."""
    path = tmp_path / "body.json"
    path.write_bytes(b'{"order": NaN}')
    result = run(["validate", str(path)])
    assert (result.exit_code, result.stdout) == (1, f"order: {codec.NOT_FINITE}\n")


def test_a_json_value_that_is_not_an_object_is_invalid_not_unreadable(tmp_path):
    """A JSON list is readable but is no body: exit 1 with a path and a message."""
    result = run(["validate", write(tmp_path, [1, 2])])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["body: Must be an object."]


def test_a_bad_contract_option_exits_2(tmp_path):
    """--options with an unknown name is one line listing the known ones."""
    result = run(["validate", "--options", "multistore,garaje", write(tmp_path, two_item_body())])
    assert_one_line_usage_error(result, "'garaje'", "multistore", "shipment_ref")


def test_options_on_the_command_line_apply(tmp_path):
    """--options multistore makes store_ref mandatory."""
    result = run(["validate", "--options", "multistore", write(tmp_path, two_item_body())])
    assert result.exit_code == 1
    assert result.stdout.startswith("order.merchant.store_ref: Missing data")


def test_the_full_reference_example_validates_with_its_options(tmp_path):
    """The corrected PHP example of reference a passes under services,multistore,shipment_ref."""
    options = ",".join(sorted(OPTIONS_A))
    result = run(["validate", "--options", options, write(tmp_path, full_body_a())])
    assert result.exit_code == 0
    assert "16 item(s)" in result.stdout
    assert result.stderr.count("warning: ") == 3


def test_options_come_from_the_merchant_accounts_file(tmp_path):
    """Without --options, order.merchant.id's entry in CARTSYNC_MERCHANTS_FILE gives the options."""
    env = {"CARTSYNC_MERCHANTS_FILE": merchants_file(tmp_path, s1=["multistore"], s2=[])}
    body = write(tmp_path, two_item_body(merchant="s1"))
    result = run(["validate", body], env)
    assert result.exit_code == 1
    assert "order.merchant.store_ref" in result.stdout
    assert run(["validate", "--merchant", "s2", body], env).exit_code == 0
    assert run(["validate", "--options", "", body], env).exit_code == 0


def test_a_merchant_missing_from_the_accounts_file_exits_2(tmp_path):
    """A merchant with no entry is a configuration problem, not an invalid body."""
    env = {"CARTSYNC_MERCHANTS_FILE": merchants_file(tmp_path, s2=[])}
    result = run(["validate", write(tmp_path, two_item_body(merchant="s1"))], env)
    assert_one_line_usage_error(result, "'s1'")


def test_without_merchant_accounts_the_contract_options_setting_applies(tmp_path):
    """With no merchants configured at all, CARTSYNC_CONTRACT_OPTIONS gives the options."""
    env = {"CARTSYNC_CONTRACT_OPTIONS": "multistore"}
    result = run(["validate", write(tmp_path, two_item_body())], env)
    assert result.exit_code == 1
    assert "order.merchant.store_ref" in result.stdout
    body = write(tmp_path, two_item_body(store_ref="maquinista"))
    assert run(["validate", body], env).exit_code == 0


def test_the_single_merchant_set_up_gives_its_options_to_any_merchant(tmp_path):
    """With CARTSYNC_SEQURA_USERNAME/PASSWORD, CARTSYNC_CONTRACT_OPTIONS applies to every body."""
    env = {
        "CARTSYNC_SEQURA_USERNAME": "shop",
        "CARTSYNC_SEQURA_PASSWORD": "not-a-secret",
        "CARTSYNC_CONTRACT_OPTIONS": "shipment_ref",
    }
    result = run(["validate", write(tmp_path, two_item_body(merchant=991))], env)
    assert result.exit_code == 1
    assert "order.shipped_cart.items.0.shipment_ref" in result.stdout
    assert "not-a-secret" not in result.output


def test_strict_mode_comes_from_the_setting_or_the_flag(tmp_path):
    """CARTSYNC_STRICT or --strict refuse unknown keys; --no-strict overrides the setting."""
    body = write(tmp_path, with_value(two_item_body(), "order.shipped_cart.gift", True))
    assert run(["validate", body]).exit_code == 0
    strict = run(["validate", "--strict", body])
    assert strict.exit_code == 1
    assert strict.stdout.splitlines() == ["order.shipped_cart.gift: Unknown field."]
    assert run(["validate", body], {"CARTSYNC_STRICT": "true"}).exit_code == 1
    assert run(["validate", "--no-strict", body], {"CARTSYNC_STRICT": "true"}).exit_code == 0


def test_a_broken_setting_exits_2_with_one_line(tmp_path):
    """A CARTSYNC_* value that does not parse is named in one line."""
    result = run(["validate", write(tmp_path, two_item_body())], {"CARTSYNC_STRICT": "maybe"})
    assert_one_line_usage_error(result, "CARTSYNC_STRICT")


def test_text_utf8_cannot_carry_is_reported_not_crashed_on(tmp_path):
    """A "\\ud800" escape in a value or a key gives error lines that print, never a traceback."""
    body = with_value(two_item_body(), "order.shipped_cart.items.0.name", "x\ud800")
    body["order"]["\udc00key"] = 1
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body), encoding="ascii")  # escapes, as a producer would send
    result = run(["validate", "--strict", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "order.\\udc00key: Unknown field.",
        "order.shipped_cart.items.0.name: Must be valid Unicode text: it holds a lone "
        "surrogate escape such as \\ud800.",
    ]


def test_json_nested_too_deeply_is_one_invalid_line(tmp_path):
    """A file of a hundred thousand nested brackets is one line naming the body, exit 1."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="ascii")
    result = run(["validate", str(path)])
    assert (result.exit_code, result.stdout) == (1, f"body: {codec.TOO_DEEP}\n")
