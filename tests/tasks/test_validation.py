"""validate_update's contract: what goes on the wire, warnings, and the load/dump round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cartsync.tasks.examples import (
    OPTIONS_A,
    OPTIONS_B,
    full_body_a,
    full_body_b,
    two_item_body,
    with_value,
    without,
)
from cartsync.tasks.schemas.warnings import rounding_tolerance
from cartsync.tasks.validation import dump_update, validate_update, wire_bytes
from cartsync.worker.errors import InvalidUpdate

PRODUCT = "order.shipped_cart.items.0"


def test_the_validated_body_is_the_producers_json_unchanged():
    """Values, types, key order and unicode of the body come back exactly as sent."""
    body = full_body_a()
    body["order"]["platform"] = {"uname": "Darwin ñandú 13.0", "name": "custom", "version": "1"}
    raw = json.dumps(body, ensure_ascii=False)
    validated = validate_update(body, options=OPTIONS_A)
    assert json.dumps(validated.body, ensure_ascii=False) == raw
    assert json.dumps(body, ensure_ascii=False) == raw, "the input was modified"


def test_the_validated_body_is_a_copy_the_caller_can_fill_in():
    """Filling in Validated.body (as the producer does for platform) leaves the input alone."""
    body = two_item_body()
    validated = validate_update(body)
    validated.body["order"]["platform"]["uname"] = "filled"
    validated.body["order"]["shipped_cart"]["items"].append({})
    assert body["order"]["platform"]["uname"] == "Linux shop 6.1.0 x86_64"
    assert len(body["order"]["shipped_cart"]["items"]) == 2


def test_ints_stay_ints_and_strings_stay_strings():
    """A string order_ref stays a string and an int merchant id stays an int."""
    body = with_value(two_item_body(merchant=42), "order.merchant_reference.order_ref_1", "0042")
    order = validate_update(body).body["order"]
    assert order["merchant"]["id"] == 42
    assert order["merchant_reference"]["order_ref_1"] == "0042"


def test_wire_bytes_are_compact_utf8_without_escapes():
    """What is sent is UTF-8 JSON with non-ASCII letters as they are."""
    body = with_value(two_item_body(), f"{PRODUCT}.name", "Camiseta niño – talla M")
    data = wire_bytes(validate_update(body).body)
    assert "Camiseta niño – talla M".encode() in data
    assert b"\\u" not in data
    assert json.loads(data) == body


@pytest.mark.parametrize(
    ("make", "options"),
    [(full_body_a, OPTIONS_A), (full_body_b, OPTIONS_B), (two_item_body, frozenset())],
    ids=["reference-a", "reference-b", "two-item"],
)
def test_a_load_followed_by_a_dump_round_trips(make, options):
    """dump_update(validate_update(b).body) is b again, key order and unknown keys included."""
    body = with_value(make(), "order.shipped_cart.cart_ref", "c-1")
    validated = validate_update(body, options=options)
    dumped = dump_update(validated.body, options=options)
    assert json.dumps(dumped, ensure_ascii=False) == json.dumps(body, ensure_ascii=False)


def test_invalid_updates_carry_errors_warnings_and_a_short_message():
    """InvalidUpdate holds errors by path, warnings, and a one-line summary."""
    body = with_value(two_item_body(), f"{PRODUCT}.quantity", 0)
    body = with_value(body, f"{PRODUCT}.tracking_reference", "nowhere")
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body)
    assert list(caught.value.errors) == [f"{PRODUCT}.quantity"]
    assert list(caught.value.warnings) == [f"{PRODUCT}.tracking_reference"]
    assert str(caught.value).startswith("1 validation error(s), first: order.shipped_cart")


# --- warnings -----------------------------------------------------------------------------


def test_a_tracking_reference_that_names_no_tracking_is_a_warning():
    """An item pointing at a tracking that is not in trackings validates with a warning."""
    body = with_value(full_body_a(), "order.unshipped_cart.items.0.tracking_reference", "fourth")
    warnings = validate_update(body, options=OPTIONS_A).warnings
    assert warnings["order.unshipped_cart.items.0.tracking_reference"] == [
        "Names no tracking in order.trackings."
    ]


def test_a_tracking_reference_without_any_trackings_is_a_warning():
    """With no trackings at all, every tracking_reference is a warning."""
    body = without(full_body_a(), "order.trackings")
    warnings = validate_update(body, options=OPTIONS_A).warnings
    assert "order.shipped_cart.items.0.tracking_reference" in warnings


def test_a_known_tracking_reference_is_no_warning():
    """The examples' "first" names their first tracking: nothing to say."""
    warnings = validate_update(full_body_b(), options=OPTIONS_B).warnings
    assert not any(path.endswith("tracking_reference") for path in warnings)


def test_a_cancellation_reason_while_a_cart_holds_items_is_a_warning():
    """cancellation_reason with items left is accepted with a warning."""
    body = with_value(two_item_body(), "order.cancellation_reason", "customer_cancel")
    (message,) = validate_update(body).warnings["order.cancellation_reason"]
    assert "still holds items" in message


def test_a_null_cancellation_reason_is_no_warning():
    """null is the absence of a reason."""
    body = with_value(two_item_body(), "order.cancellation_reason", None)
    assert validate_update(body).warnings == {}


@pytest.mark.parametrize(("quantity", "off_by"), [(1, 1), (3, 3), (3, -3), (10, 10)])
def test_a_line_total_off_by_rounding_is_no_warning(quantity, off_by):
    """A product total within one cent per unit of quantity x price is rounding."""
    body = _product_total_off_by(quantity, off_by)
    assert validate_update(body).warnings == {}


@pytest.mark.parametrize(("quantity", "off_by"), [(1, 2), (3, 4), (3, -4), (2, 6000)])
def test_a_line_total_off_by_more_than_rounding_is_a_warning(quantity, off_by):
    """A product total further off than one cent per unit is a warning, not an error."""
    body = _product_total_off_by(quantity, off_by)
    (message,) = validate_update(body).warnings[f"{PRODUCT}.total_with_tax"]
    assert f"{quantity} × 1000 = {quantity * 1000}" in message
    assert f"by {abs(off_by)} cents" in message


def _product_total_off_by(quantity: int, off_by: int) -> dict[str, Any]:
    body = two_item_body(quantity=quantity, price_with_tax=1000)
    cart = body["order"]["shipped_cart"]
    cart["items"][0]["total_with_tax"] += off_by
    cart["order_total_with_tax"] += off_by
    return body


def test_rounding_allows_one_cent_per_unit():
    """The tolerance is quantity cents, and at least one."""
    assert [rounding_tolerance(q) for q in (0, 1, 2, 25)] == [1, 1, 2, 25]


def test_warnings_never_block_delivery():
    """A body with every kind of warning still validates."""
    body = _product_total_off_by(2, 500)
    body = with_value(body, "order.cancellation_reason", "other")
    body = with_value(body, f"{PRODUCT}.tracking_reference", "nowhere")
    assert len(validate_update(body).warnings) == 3


# --- text UTF-8 can carry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("order.shipped_cart.items.0.name", "bad \ud800"),
        ("order.merchant.id", "bad \ud800"),
        ("order.shipped_cart.gift_note", "bad \ud800"),
        ("order.shipped_cart.items.1.extra_data", {"note": ["ok", "bad \udfff"]}),
    ],
)
def test_a_lone_surrogate_is_refused_in_known_and_unknown_keys(path, value):
    """JSON's "\\ud800" escape cannot be sent as UTF-8: refused wherever it sits."""
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(with_value(two_item_body(), path, value))
    assert caught.value.errors == {
        path: ["Must be valid Unicode text: it holds a lone surrogate escape such as \\ud800."]
    }


def test_a_key_with_a_lone_surrogate_is_named_with_an_escape():
    """An unknown key that is not valid text appears escaped in its path, printable anywhere."""
    body = two_item_body()
    body["order"]["\udc00x"] = 1
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, strict=True)
    assert caught.value.errors == {"order.\\udc00x": ["Unknown field."]}
    json.dumps(caught.value.errors, ensure_ascii=False).encode("utf-8")


def test_wire_bytes_fall_back_to_escapes_for_text_utf8_cannot_carry():
    """A body that never went through validation still serializes, with \\u escapes."""
    data = wire_bytes({"order": {"note": "ñ \ud800"}})
    assert data == b'{"order":{"note":"\\u00f1 \\ud800"}}'


def test_error_lines_list_list_items_in_number_order():
    """InvalidUpdate.lines() puts items.2 before items.10, as ``cartsync validate`` does."""
    from cartsync.worker.errors import InvalidUpdate

    error = InvalidUpdate({"order.items.10.name": ["bad"], "order.items.2.name": ["bad"]})
    assert error.lines() == ["order.items.2.name: bad", "order.items.10.name: bad"]
