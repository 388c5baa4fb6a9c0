"""Payload rules: mandatory fields, item types, contract options, cross-field checks, strict mode.

Each test breaks one rule of the references and checks the error's full dotted path and that
its message says what is wrong.
"""

from __future__ import annotations

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
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import ConfigurationError, InvalidUpdate

MISSING = "Missing data for required field."


def errors_of(body: Any, options: Any = (), strict: bool = False) -> dict[str, list[str]]:
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, options=options, strict=strict)
    return caught.value.errors


# --- mandatory and optional fields -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "order",
        "order.merchant",
        "order.merchant.id",
        "order.merchant_reference",
        "order.merchant_reference.order_ref_1",
        "order.unshipped_cart",
        "order.shipped_cart",
        "order.shipped_cart.currency",
        "order.shipped_cart.items",
        "order.platform",
        "order.platform.name",
        "order.platform.version",
        "order.platform.uname",
        "order.shipped_cart.items.0.reference",
        "order.shipped_cart.items.0.name",
        "order.shipped_cart.items.0.price_with_tax",
        "order.shipped_cart.items.0.quantity",
        "order.shipped_cart.items.0.downloadable",
        "order.shipped_cart.items.1.reference",
        "order.shipped_cart.items.1.name",
    ],
)
def test_each_mandatory_field_of_a_minimal_body_is_required(path):
    """Leaving out a field the reference marks "Yes" is an error at exactly that path."""
    assert errors_of(without(two_item_body(), path)) == {path: [MISSING]}


@pytest.mark.parametrize(
    "path",
    [
        "order.trackings.0.reference",
        "order.trackings.2.carrier",
        "order.delivery_method.name",
        "order.delivery_address.given_names",
        "order.delivery_address.country_code",
        "order.invoice_address.company",
        "order.customer.email",
        "order.customer.surnames",
        "order.subscription.cart.currency",
        "order.subscription.cart.items.0.unique_reference",
        "order.subscription.cart.items.1.monthly_price_with_tax",
        "order.subscription.discounts.0.amount",
        "order.unshipped_cart.items.2.total_with_tax",
        "order.shipped_cart.items.7.name",
    ],
)
def test_mandatory_fields_of_optional_objects_are_required_when_the_object_is_sent(path):
    """An optional object (a tracking, an address, the customer, ...) must be complete."""
    assert path in errors_of(without(full_body_a(), path), OPTIONS_A)


@pytest.mark.parametrize(
    "path",
    [
        "order.shipped_cart.items.6.departure_date",
        "order.shipped_cart.items.6.segments",
        "order.shipped_cart.items.6.segments.0.iata_destination_code",
        "order.shipped_cart.items.6.pax",
        "order.shipped_cart.items.6.pax.0.given_names",
        "order.shipped_cart.items.6.pax.0.identity_documentation.number",
        "order.shipped_cart.items.6.iata_carrier_code",
        "order.shipped_cart.items.7.establishment_name",
        "order.shipped_cart.items.7.checkout_date",
        "order.shipped_cart.items.7.city",
        "order.shipped_cart.items.7.coordinates.datum",
    ],
)
def test_mandatory_travel_fields_are_required(path):
    """Flights and lodgings need what the reference marks mandatory, down to segments and pax."""
    assert errors_of(without(full_body_b(), path), OPTIONS_B) == {path: [MISSING]}


@pytest.mark.parametrize(
    "path",
    [
        "order.trackings",
        "order.customer",
        "order.delivery_address",
        "order.subscription",
        "order.cancellation_reason",
        "order.merchant_reference.order_ref_2",
        "order.unshipped_cart.items.0.tracking_reference",
        "order.unshipped_cart.items.7.reference",
        "order.unshipped_cart.items.7.quantity",
    ],
)
def test_optional_fields_may_be_left_out(path):
    """What the reference marks "No" can go."""
    validate_update(without(full_body_a(), path), options=OPTIONS_A)


def test_errors_name_every_bad_field_at_once():
    """Three problems in one body give three paths, not just the first."""
    body = two_item_body()
    body = with_value(body, "order.shipped_cart.items.1.quantity", 2)
    body = without(body, "order.platform.uname")
    body = with_value(body, "order.merchant.id", 1.5)
    assert set(errors_of(body)) == {
        "order.shipped_cart.items.1.quantity",
        "order.platform.uname",
        "order.merchant.id",
    }


@pytest.mark.parametrize("body", [[], "order", 3, None, {"order": []}, {"order": "x"}])
def test_a_body_that_is_not_an_order_object_is_refused(body):
    """A list, a string or an order that is not an object is refused with one clear message."""
    errors = errors_of(body)
    assert list(errors.values()) == [["Must be an object."]]


# --- item types ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("key", ["quantity", "price_with_tax"])
def test_item_types_without_quantity_and_price_reject_them(index, key):
    """handling, invoice_fee, discount, other_payment and voucher refuse quantity and price."""
    body = full_body_a()
    item = body["order"]["unshipped_cart"]["items"][index]
    item[key] = 1
    path = f"order.unshipped_cart.items.{index}.{key}"
    assert errors_of(body, OPTIONS_A) == {
        path: [f'Not allowed in an item of type "{item["type"]}".']
    }


@pytest.mark.parametrize("total", [0, 750])
def test_a_discount_is_negative(total):
    """A discount of 0 or more is refused: it "should be negative"."""
    path = "order.shipped_cart.items.3.total_with_tax"
    errors = errors_of(with_value(full_body_a(), path, total), OPTIONS_A)
    assert errors[path] == [f"Must be negative (at most -1), not {total}."]


def test_items_without_a_type_are_products():
    """An item with no type is a product and needs what a product needs."""
    item = two_item_body()["order"]["shipped_cart"]["items"][0]
    assert "type" not in item
    body = with_value(two_item_body(), "order.shipped_cart.items.0.type", "product")
    validate_update(body)
    errors = errors_of(without(body, "order.shipped_cart.items.0.downloadable"))
    assert errors == {"order.shipped_cart.items.0.downloadable": [MISSING]}


@pytest.mark.parametrize("item_type", ["gift_card", "Product", "", 3, None])
def test_an_unknown_item_type_is_refused_at_its_type(item_type):
    """An item type outside the references is named at items.N.type with the known types."""
    path = "order.shipped_cart.items.1.type"
    (message,) = errors_of(with_value(two_item_body(), path, item_type))[path]
    assert message.startswith("Unknown cart item type: must be one of discount, flight, handling")


def test_an_item_that_is_not_an_object_is_refused_at_its_index():
    """An item that is a string is refused at items.N."""
    errors = errors_of(with_value(two_item_body(), "order.shipped_cart.items.1", "seur24"))
    assert errors == {
        "order.shipped_cart.items.1": ["Must be an object (cart item), not a string."]
    }


def test_items_sent_as_an_object_say_why():
    """A PHP array with gaps in its keys arrives as an object; the message explains it."""
    body = two_item_body()
    items = body["order"]["shipped_cart"]["items"]
    body["order"]["shipped_cart"]["items"] = {"0": items[0], "2": items[1]}
    (message,) = errors_of(body)["order.shipped_cart.items"]
    assert "not an object" in message
    assert "PHP" in message


def test_a_tracking_needs_a_known_type():
    """trackings.N.type is required and must be pickup_store, pickup_point or postal."""
    body = full_body_a()
    assert errors_of(without(body, "order.trackings.1.type"), OPTIONS_A) == {
        "order.trackings.1.type": [
            "Missing data for required field: one of pickup_point, pickup_store, postal."
        ]
    }
    assert "order.trackings.1.type" in errors_of(
        with_value(body, "order.trackings.1.type", "drone"), OPTIONS_A
    )


# --- services -----------------------------------------------------------------------------

SERVICE = "order.shipped_cart.items.6"


def test_a_service_needs_an_end():
    """A service with neither ends_on nor ends_in is refused at ends_on, naming both."""
    (message,) = errors_of(without(full_body_a(), f"{SERVICE}.ends_in"), OPTIONS_A)[
        f"{SERVICE}.ends_on"
    ]
    assert "exactly one of ends_on" in message
    assert "ends_in" in message


def test_a_service_cannot_have_both_ends():
    """A service with both ends_on and ends_in is refused at ends_in."""
    body = with_value(full_body_a(), f"{SERVICE}.ends_on", "2017-06-30")
    (message,) = errors_of(body, OPTIONS_A)[f"{SERVICE}.ends_in"]
    assert "only one of ends_on and ends_in" in message


def test_a_service_may_end_on_a_date_instead():
    """ends_on alone is as good as ends_in alone."""
    body = with_value(
        without(full_body_a(), f"{SERVICE}.ends_in"), f"{SERVICE}.ends_on", "2017-06-30"
    )
    validate_update(body, options=OPTIONS_A)


# --- contract options ---------------------------------------------------------------------


def test_multistore_makes_store_ref_mandatory():
    """A multistore merchant must send merchant.store_ref."""
    errors = errors_of(two_item_body(), {"multistore"})
    assert errors == {
        "order.merchant.store_ref": [
            "Missing data for required field: merchants with the multistore contract option "
            "must send it."
        ]
    }
    validate_update(two_item_body(store_ref="maquinista"), options={"multistore"})


def test_store_ref_is_forbidden_without_multistore():
    """Other merchants may not send merchant.store_ref."""
    errors = errors_of(two_item_body(store_ref="maquinista"))
    assert errors == {
        "order.merchant.store_ref": [
            "Not permitted: only merchants with the multistore contract option may send it."
        ]
    }


def test_shipment_ref_makes_every_shipped_item_carry_one():
    """With shipment_ref, each shipped item without shipment_ref is named."""
    errors = errors_of(two_item_body(), {"shipment_ref"})
    assert set(errors) == {
        "order.shipped_cart.items.0.shipment_ref",
        "order.shipped_cart.items.1.shipment_ref",
    }
    validate_update(two_item_body(shipment_ref="1234-2345-45"), options={"shipment_ref"})


def test_shipment_ref_is_forbidden_without_the_option():
    """Without the option, a shipped item's shipment_ref is refused."""
    body = two_item_body(shipment_ref="1234-2345-45")
    assert errors_of(body)["order.shipped_cart.items.1.shipment_ref"] == [
        "Not permitted: only merchants with the shipment_ref contract option may send it."
    ]


def test_shipment_ref_does_not_apply_to_unshipped_items():
    """Even with the option, unshipped items need no shipment_ref: it is for shipped ones."""
    validate_update(two_item_body(shipped=False), options={"shipment_ref"})


def test_garage_requires_the_vehicle_and_is_also_multistore():
    """A garage's customer carries a vehicle, and a garage needs store_ref like any multistore."""
    body = full_body_b()
    vehicle = {"plaque": "0000AAA"}
    garage_body = with_value(
        with_value(body, "order.customer.vehicle", vehicle), "order.merchant.store_ref", "m"
    )
    validate_update(garage_body, options={"travel", "garage"})
    errors = errors_of(without(garage_body, "order.customer.vehicle"), {"travel", "garage"})
    assert list(errors) == ["order.customer.vehicle"]
    errors = errors_of(without(garage_body, "order.merchant.store_ref"), {"travel", "garage"})
    assert list(errors) == ["order.merchant.store_ref"]


def test_a_vehicle_is_forbidden_without_garage():
    """Non-garage merchants may not send customer.vehicle."""
    body = with_value(full_body_b(), "order.customer.vehicle", {"plaque": "0000AAA"})
    assert errors_of(body, OPTIONS_B) == {
        "order.customer.vehicle": [
            "Not permitted: only merchants with the garage contract option may send it."
        ]
    }


def test_a_vehicle_needs_its_plaque():
    """Garages "have to inform the vehicle's plaque"."""
    body = with_value(full_body_b(), "order.customer.vehicle", {"brand": "Volkswagen"})
    body = with_value(body, "order.merchant.store_ref", "m")
    assert errors_of(body, {"travel", "garage"}) == {"order.customer.vehicle.plaque": [MISSING]}


@pytest.mark.parametrize(
    ("make", "options", "path", "option"),
    [
        (full_body_a, OPTIONS_A - {"services"}, "order.unshipped_cart.items.6.type", "services"),
        (full_body_b, OPTIONS_B - {"travel"}, "order.unshipped_cart.items.6.type", "travel"),
        (full_body_b, OPTIONS_B - {"travel"}, "order.shipped_cart.items.7.type", "travel"),
    ],
    ids=["service", "flight", "lodging"],
)
def test_items_behind_a_contract_option_need_it(make, options, path, option):
    """service items need the services option; flight and lodging items need travel."""
    (message,) = errors_of(make(), options)[path]
    assert f"needs the {option} contract option" in message


def test_an_unknown_contract_option_is_a_configuration_error():
    """Options are checked by name: a typo is not silently ignored."""
    with pytest.raises(ConfigurationError, match="'multistores'"):
        validate_update(two_item_body(), options={"multistores"})


# --- cross-field --------------------------------------------------------------------------


def test_cart_totals_must_add_up_as_seQura_says_it():
    """A wrong order_total_with_tax gives seQura's 409 wording: both sums, terms, diff."""
    body = two_item_body()
    items = body["order"]["shipped_cart"]["items"]
    items.insert(1, {"type": "invoice_fee", "total_with_tax": 295})
    items.insert(2, {"type": "discount", "reference": "D", "name": "D", "total_with_tax": -1500})
    items[0].update(price_with_tax=200, quantity=1, total_with_tax=200)
    items[3]["total_with_tax"] = 6060
    body["order"]["shipped_cart"]["order_total_with_tax"] = 5097
    assert errors_of(body) == {
        "order.shipped_cart.order_total_with_tax": [
            "items' total_with_tax add up to 5055 (200+295+-1500+6060) but "
            "order_total_with_tax is 5097. The diff is 42."
        ]
    }


def test_an_empty_cart_must_total_zero():
    """An empty cart with a total is refused, saying there are no items."""
    body = with_value(two_item_body(), "order.unshipped_cart.order_total_with_tax", 100)
    assert errors_of(body) == {
        "order.unshipped_cart.order_total_with_tax": [
            "items' total_with_tax add up to 0 (no items) but order_total_with_tax is 100. "
            "The diff is 100."
        ]
    }


def test_totals_are_checked_even_when_another_field_of_the_cart_is_wrong():
    """A bad item name does not hide a wrong total."""
    body = with_value(two_item_body(), "order.shipped_cart.items.0.name", 7)
    body = with_value(body, "order.shipped_cart.order_total_with_tax", 1)
    assert set(errors_of(body)) == {
        "order.shipped_cart.items.0.name",
        "order.shipped_cart.order_total_with_tax",
    }


def test_both_carts_share_one_currency():
    """Different currencies in the two carts are refused at shipped_cart.currency."""
    body = with_value(two_item_body(), "order.unshipped_cart.currency", "USD")
    (message,) = errors_of(body)["order.shipped_cart.currency"]
    assert "EUR" in message
    assert "USD" in message
    assert "one currency" in message


# --- unknown keys and strict mode ---------------------------------------------------------

UNKNOWN = {
    "order.shipped_cart.gift": True,
    "order.shipped_cart.cart_ref": "c-1",
    "order.shipped_cart.created_at": "2024-01-01T10:00:00Z",
    "order.shipped_cart.items.0.gift_wrap": {"paper": "red"},
    "order.platform.php_version": "8.3.1",
    "order.customer_extra": [1, 2],
    "vendor": "x",
}


def _with_unknown_keys() -> dict[str, Any]:
    body = two_item_body()
    for path, value in UNKNOWN.items():
        body = with_value(body, path, value)
    return body


def test_unknown_keys_are_accepted_and_forwarded_unchanged():
    """Keys the references do not list (gift, cart_ref, php_version, ...) pass through as sent."""
    body = _with_unknown_keys()
    validated = validate_update(body)
    assert validated.body == body
    assert validated.body["order"]["shipped_cart"]["items"][0]["gift_wrap"] == {"paper": "red"}


def test_strict_mode_names_each_unknown_key():
    """Strict mode refuses every unlisted key, each at its own path."""
    errors = errors_of(_with_unknown_keys(), strict=True)
    assert errors == {path: ["Unknown field."] for path in UNKNOWN}


def test_strict_mode_reaches_into_typed_items_and_optional_objects():
    """Strict mode applies inside items, trackings, customer and subscription too."""
    body = full_body_a()
    paths = [
        "order.unshipped_cart.items.6.gift",
        "order.trackings.2.signature",
        "order.customer.logged_in",
        "order.subscription.cart.items.1.colour",
        "order.unshipped_cart.items.0.shipment_ref",
    ]
    for path in paths:
        body = with_value(body, path, "x")
    assert errors_of(body, OPTIONS_A, strict=True) == {path: ["Unknown field."] for path in paths}
    validate_update(body, options=OPTIONS_A)
