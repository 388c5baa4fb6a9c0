"""Field types: each accepts what the reference's type says and rejects the rest by full path."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from cartsync.tasks.examples import (
    OPTIONS_A,
    OPTIONS_B,
    full_body_a,
    full_body_b,
    two_item_body,
    with_value,
)
from cartsync.tasks.schemas.fields import LatLng
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import InvalidUpdate

PRODUCT = "order.shipped_cart.items.0"
SERVICE_A = "order.shipped_cart.items.6"
FLIGHT_B = "order.shipped_cart.items.6"
LODGING_B = "order.shipped_cart.items.7"


def messages_at(body: Any, path: str, options: Any = ()) -> list[str]:
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, options=options)
    assert path in caught.value.errors, caught.value.errors
    return caught.value.errors[path]


def accepted(body: Any, options: Any = ()) -> None:
    validate_update(body, options=options)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (12.5, "not a decimal number"),
        (1250.0, "not a decimal number"),
        ("1250", "not a string"),
        (True, "not true"),
        (False, "not false"),
        (None, "may not be null"),
        ([1250], "not a list"),
    ],
)
def test_money_is_an_integer_number_of_cents_only(value, words):
    """price_with_tax refuses floats (even 1250.0), numeric strings, booleans, null, lists."""
    body = with_value(two_item_body(), f"{PRODUCT}.price_with_tax", value)
    (message,) = messages_at(body, f"{PRODUCT}.price_with_tax")
    assert words in message
    if value is not None:
        assert message.startswith("Must be an integer number of cents")


def test_money_may_be_zero_or_negative_where_the_reference_says_int():
    """An other_payment pays with a negative amount and a voucher may be worth 0."""
    body = full_body_a()
    body = with_value(body, "order.unshipped_cart.items.5.total_with_tax", 0)
    body = with_value(body, "order.unshipped_cart.order_total_with_tax", 86177)
    validate_update(body, options=OPTIONS_A)


@pytest.mark.parametrize("path", ["order.merchant.id", "order.merchant_reference.order_ref_1"])
@pytest.mark.parametrize("value", ["s1", 1234, 0, " s1 "])
def test_string_or_int_accepts_both(path, value):
    """merchant.id and order_ref_1 take a string or an integer (not empty or blank:
    tests/tasks/test_hostile_input.py)."""
    accepted(with_value(two_item_body(), path, value))


@pytest.mark.parametrize("path", ["order.merchant.id", "order.merchant_reference.order_ref_1"])
@pytest.mark.parametrize(
    ("value", "kind"), [(1.5, "a decimal number"), (True, "true"), ([], "a list")]
)
def test_string_or_int_refuses_floats_booleans_and_containers(path, value, kind):
    """A string-or-int field names what it got instead."""
    body = with_value(two_item_body(), path, value)
    assert messages_at(body, path) == [f"Must be a string or an integer, not {kind}."]


@pytest.mark.parametrize("value", [0, -1])
def test_positive_int_means_greater_than_zero(value):
    """quantity 0 or below is refused: "positive int" means > 0."""
    body = with_value(two_item_body(), f"{PRODUCT}.quantity", value)
    assert messages_at(body, f"{PRODUCT}.quantity") == [
        f"Must be a positive integer (at least 1), not {value}."
    ]


def test_positive_int_refuses_a_boolean():
    """quantity true is not 1: booleans are not numbers in the payload."""
    body = with_value(two_item_body(), f"{PRODUCT}.quantity", True)
    assert messages_at(body, f"{PRODUCT}.quantity") == ["Must be an integer, not true."]


@pytest.mark.parametrize("value", [0, 1, "false", "true", None])
def test_booleans_are_true_or_false_only(value):
    """downloadable refuses 0/1, the strings "true"/"false" and null."""
    body = with_value(two_item_body(), f"{PRODUCT}.downloadable", value)
    (message,) = messages_at(body, f"{PRODUCT}.downloadable")
    assert message.startswith("Must be true or false") or message == "Field may not be null."


@pytest.mark.parametrize("value", [12, None, True, {"es": "x"}])
def test_strings_are_strings_only(value):
    """name refuses numbers, null, booleans and objects."""
    body = with_value(two_item_body(), f"{PRODUCT}.name", value)
    assert len(messages_at(body, f"{PRODUCT}.name")) == 1


def test_an_empty_string_is_a_string():
    """Mandatory strings may be empty: the reference's own invoice address sends "" for most."""
    body = full_body_a()
    assert body["order"]["invoice_address"]["city"] == ""
    validate_update(body, options=OPTIONS_A)


@pytest.mark.parametrize("value", ["2017-06-30", "2000-02-29"])
def test_iso_dates_are_accepted(value):
    """A service's ends_on takes a calendar date YYYY-MM-DD."""
    body = with_value(full_body_a(), SERVICE_A, _service_ending("ends_on", value))
    validate_update(body, options=OPTIONS_A)


@pytest.mark.parametrize(
    "value", ["2017-6-30", "30/06/2017", "2017-02-30", "2017-06-30T10:00:00", "20170630", 20170630]
)
def test_iso_dates_refuse_other_shapes_and_impossible_days(value):
    """ends_on refuses other date formats, 30 February, timestamps and numbers."""
    body = with_value(full_body_a(), SERVICE_A, _service_ending("ends_on", value))
    assert messages_at(body, f"{SERVICE_A}.ends_on", OPTIONS_A) == [
        "Must be an ISO 8601 date (YYYY-MM-DD), such as 2017-06-30."
    ]


@pytest.mark.parametrize("value", ["P3M15D", "P1Y", "P2W", "PT36H", "P1DT12H", "PT0.5S"])
def test_iso_periods_are_accepted(value):
    """A service's ends_in takes an ISO 8601 duration."""
    body = with_value(full_body_a(), SERVICE_A, _service_ending("ends_in", value))
    validate_update(body, options=OPTIONS_A)


@pytest.mark.parametrize("value", ["P", "PT", "3M", "P3X", "P1DT", "p3m", "", 90])
def test_iso_periods_refuse_what_is_not_a_duration(value):
    """ends_in refuses an empty period, a missing P, unknown units and numbers."""
    body = with_value(full_body_a(), SERVICE_A, _service_ending("ends_in", value))
    assert messages_at(body, f"{SERVICE_A}.ends_in", OPTIONS_A) == [
        "Must be an ISO 8601 period, such as P3M15D or P1Y."
    ]


def _service_ending(key: str, value: Any) -> dict[str, Any]:
    service: dict[str, Any] = full_body_a()["order"]["shipped_cart"]["items"][6]
    del service["ends_in"]
    service[key] = value
    return service


@pytest.mark.parametrize(
    "value",
    [
        "2014-02-05T13:21:22+01:00",
        "2014-02-05T13:21:22Z",
        "2014-02-05T13:21:22.250+01:00",
        "2014-02-05T13:21",
    ],
)
def test_iso_timestamps_are_accepted(value):
    """A tracking's delivered_at takes an ISO 8601 date and time, offset optional."""
    accepted(with_value(full_body_a(), "order.trackings.2.delivered_at", value), OPTIONS_A)


@pytest.mark.parametrize(
    "value", ["2014-02-05", "2014-02-05 13:21:22", "2014-02-30T13:21:22Z", "yesterday", 1391602882]
)
def test_iso_timestamps_refuse_dates_other_shapes_and_epoch_numbers(value):
    """delivered_at refuses a bare date, a space separator, impossible days and Unix times."""
    body = with_value(full_body_a(), "order.trackings.2.delivered_at", value)
    assert messages_at(body, "order.trackings.2.delivered_at", OPTIONS_A) == [
        "Must be an ISO 8601 timestamp, such as 2014-02-05T13:21:22+01:00."
    ]


@pytest.mark.parametrize("value", ["2017-06-30", "2002-12-23T12:00:00+01:00"])
def test_a_flight_destination_date_is_a_date_or_a_timestamp(value):
    """destination_date takes either, as the reference says."""
    accepted(with_value(full_body_b(), f"{FLIGHT_B}.destination_date", value), OPTIONS_B)


@pytest.mark.parametrize(
    "path",
    [
        "order.trackings.0.country_code",
        f"{LODGING_B}.country_code",
        f"{FLIGHT_B}.pax.0.nationality",
        f"{FLIGHT_B}.pax.0.identity_documentation.country_code",
    ],
)
@pytest.mark.parametrize("value", ["es", "Spain", "XX", "ESPA", "E", 724])
def test_country_codes_are_iso_3166_alpha_2_or_3(path, value):
    """Fields typed as ISO-3166 codes refuse lower case, names and unassigned codes."""
    options = OPTIONS_B
    body = with_value(full_body_b(), path, value)
    assert messages_at(body, path, options) == [
        "Must be an ISO 3166 alpha-2 or alpha-3 country code in capitals, such as ES or ESP."
    ]


@pytest.mark.parametrize("value", ["ES", "ESP", "PT", "PRT", "FR", "FRA"])
def test_alpha_2_and_alpha_3_codes_are_both_accepted(value):
    """ES and ESP both name Spain."""
    accepted(with_value(full_body_b(), f"{LODGING_B}.country_code", value), OPTIONS_B)


def test_address_country_codes_are_plain_strings_as_the_reference_types_them():
    """delivery_address.country_code is typed "(string)", so it is not checked against ISO 3166."""
    accepted(with_value(two_item_body(), "order.delivery_address", _address("Spain")))


def _address(country: str) -> dict[str, str]:
    fields = ("given_names", "surnames", "company", "address_line_1", "address_line_2")
    address = dict.fromkeys(fields, "x")
    address.update(postal_code="08013", city="Barcelona", country_code=country)
    return address


@pytest.mark.parametrize(
    "value",
    [
        "http://logistics.es/TX123",
        "logistics.es/TX123",
        "https://",
        "https:///TX123",
        "ftp://logistics.es",
        "https://logistics .es/x",
        42,
    ],
)
def test_tracking_url_is_an_https_url(value):
    """A postal tracking_url must be https with a host."""
    body = with_value(full_body_a(), "order.trackings.2.tracking_url", value)
    (message,) = messages_at(body, "order.trackings.2.tracking_url", OPTIONS_A)
    assert "https://" in message or "string" in message


@pytest.mark.parametrize("value", [[0, 0], [90, 180], [-90, -180], [1.2948883, 103.8543904]])
def test_lat_lng_accepts_a_valid_pair(value):
    """A lodging's lat_lng takes [latitude, longitude] within range, ints or decimals."""
    body = with_value(full_body_b(), f"{LODGING_B}.coordinates.lat_lng", value)
    accepted(body, OPTIONS_B)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([91, 0], "Latitude"),
        ([-90.5, 0], "Latitude"),
        ([0, 180.1], "Longitude"),
        ([1.29], "two numbers"),
        ([1, 2, 3], "two numbers"),
        (["1.29", "103.85"], "two numbers"),
        ([True, 0], "two numbers"),
        ({"lat": 1, "lng": 2}, "two numbers"),
        ("1.29,103.85", "two numbers"),
    ],
)
def test_lat_lng_refuses_anything_but_a_pair_in_range(value, words):
    """lat_lng refuses out-of-range values, wrong lengths, strings and booleans."""
    body = with_value(full_body_b(), f"{LODGING_B}.coordinates.lat_lng", value)
    (message,) = messages_at(body, f"{LODGING_B}.coordinates.lat_lng", OPTIONS_B)
    assert words in message


def test_lat_lng_refuses_nan_at_the_number_itself():
    """NaN is refused at the number's own path, as anywhere in a body (tasks/codec.py); the
    field alone refuses it too."""
    body = with_value(full_body_b(), f"{LODGING_B}.coordinates.lat_lng", [float("nan"), 0])
    (message,) = messages_at(body, f"{LODGING_B}.coordinates.lat_lng.0", OPTIONS_B)
    assert "finite" in message
    with pytest.raises(ValidationError, match="finite"):
        LatLng().deserialize([float("nan"), 0])


@pytest.mark.parametrize(
    "value", ["change", "change_payment_method", "customer_cancel", "out_of_stock", "other", None]
)
def test_cancellation_reason_is_one_of_five_values_or_null(value):
    """The five reasons of the reference and null are accepted."""
    accepted(with_value(two_item_body(), "order.cancellation_reason", value))


@pytest.mark.parametrize("value", ["cancelled", "Customer_cancel", "", 3, True])
def test_cancellation_reason_refuses_anything_else(value):
    """Any other reason is refused with the list of allowed ones."""
    body = with_value(two_item_body(), "order.cancellation_reason", value)
    assert messages_at(body, "order.cancellation_reason") == [
        "Must be one of: change, change_payment_method, customer_cancel, out_of_stock, other "
        "or null."
    ]


def test_customer_rating_runs_from_0_to_100():
    """rating is "0 to 100, inclusive"."""
    accepted(with_value(full_body_b(), "order.customer.rating", 0), OPTIONS_B)
    body = with_value(full_body_b(), "order.customer.rating", 101)
    assert messages_at(body, "order.customer.rating", OPTIONS_B) == [
        "Must be at most 100, not 101."
    ]


@pytest.mark.parametrize("path", [f"{FLIGHT_B}.reference", f"{LODGING_B}.reference"])
def test_travel_references_have_no_spaces(path):
    """Flight and lodging references are "without spaces"."""
    body = with_value(full_body_b(), path, "ASDF 345345")
    assert messages_at(body, path, OPTIONS_B) == ["Must be a reference without spaces."]


def test_error_messages_never_repeat_the_string_that_was_sent():
    """A refused value that may be personal data does not appear in the message."""
    secret = "13003009L María"
    paths = ["order.cancellation_reason", "order.trackings.0.country_code", f"{PRODUCT}.quantity"]
    body = full_body_a()
    for path in paths:
        body = with_value(body, path, secret)
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, options=OPTIONS_A)
    text = str(caught.value.errors) + str(caught.value)
    assert secret not in text
    assert "María" not in text
