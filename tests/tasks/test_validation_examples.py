"""Every example body of the spec validates, and each contradiction in them is pinned down.

The examples: the five cart scenarios of order-update-api.txt (completed with the mandatory
merchant, merchant_reference and platform) and the PHP example of each payload reference,
under the contract options its page was generated for. Where an example contradicts its own
reference, a test shows what cartsync does with the example as published and which
correction (tests.examples.CORRECTIONS_A / _B) makes it valid.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cartsync.tasks import examples
from cartsync.tasks.validation import validate_update
from cartsync.worker.errors import InvalidUpdate


def errors_of(body: Any, **kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, **kwargs)
    return caught.value.errors


@pytest.mark.parametrize("name", examples.SCENARIOS)
def test_each_scenario_validates_without_warnings(name):
    """Each of the five cart scenarios of the API page is valid, with nothing to warn about."""
    body = examples.scenario_body(name)
    validated = validate_update(body)
    assert validated.body == body
    assert validated.warnings == {}


def test_the_spec_partial_shipment_example_is_not_json_as_printed():
    """The partial-shipment example has a trailing comma JSON refuses; the fixture drops it."""
    printed = '{"items": [{"reference": "shirt1234"},\n]}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(printed)
    items = examples.scenario_body("partial-shipment")["order"]["unshipped_cart"]["items"]
    assert [item["reference"] for item in items] == ["shirt1234"]


def test_the_cancellation_scenario_carries_its_reason_with_empty_carts():
    """The cancellation scenario empties both carts and gives a reason, which is no warning."""
    order = examples.scenario_body("cancellation")["order"]
    assert order["cancellation_reason"] == "out_of_stock"
    assert order["shipped_cart"]["items"] == order["unshipped_cart"]["items"] == []


@pytest.mark.parametrize(
    ("make", "options"),
    [(examples.full_body_a, examples.OPTIONS_A), (examples.full_body_b, examples.OPTIONS_B)],
    ids=["reference-a", "reference-b"],
)
def test_each_corrected_php_example_validates_under_its_contract_options(make, options):
    """Both full PHP examples, corrected, validate under their options and come back unchanged."""
    body = make()
    validated = validate_update(body, options=options, strict=True)
    assert validated.body == body
    assert json.dumps(validated.body, ensure_ascii=False) == json.dumps(body, ensure_ascii=False)


def test_the_php_examples_warn_about_what_seQura_may_accept():
    """The examples cancel an order holding items and price a service oddly: warnings only."""
    warnings_a = validate_update(examples.full_body_a(), options=examples.OPTIONS_A).warnings
    assert set(warnings_a) == {
        "order.cancellation_reason",
        # service: quantity 1 x price_with_tax 3030, yet total_with_tax 75020
        "order.unshipped_cart.items.6.total_with_tax",
        "order.shipped_cart.items.6.total_with_tax",
    }
    warnings_b = validate_update(examples.full_body_b(), options=examples.OPTIONS_B).warnings
    assert set(warnings_b) == {"order.cancellation_reason"}


def test_the_php_examples_as_printed_are_rejected_for_their_contradictions():
    """The examples as json_encode prints them fail on exactly the contradictions listed."""
    assert set(errors_of(examples.raw_full_body_a(), options=examples.OPTIONS_A)) == {
        "order.unshipped_cart.items",  # an object keyed 0-6, 10 (PHP array with a gap)
        "order.shipped_cart.items",
        "order.merchant.store_ref",  # commented out, yet the merchant is multistore
        "order.customer.vehicle",  # assigned although its block is commented out
        "order.subscription.discounts.0.type",  # ["percent", "amount"]
    }
    assert set(errors_of(examples.raw_full_body_b(), options=examples.OPTIONS_B)) == {
        "order.unshipped_cart.items",
        "order.shipped_cart.items",
        "order.customer.vehicle",
        "order.subscription.discounts.0.type",
    }


def _items_as_lists(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for cart in ("unshipped_cart", "shipped_cart"):
        items = body["order"][cart]["items"]
        body["order"][cart]["items"] = [items[key] for key in sorted(items, key=int)]
    return body


def test_the_php_examples_totals_do_not_add_up_the_way_seQura_reports_it():
    """With items as lists, total 6097 (items 0-5 only) fails in seQura's 409 wording."""
    body = _items_as_lists(examples.raw_full_body_a())
    errors = errors_of(body, options=examples.OPTIONS_A)
    assert errors["order.shipped_cart.order_total_with_tax"] == [
        "items' total_with_tax add up to 87177 (6060+242+295+-750+-750+1000+75020+6060) "
        "but order_total_with_tax is 6097. The diff is -81080."
    ]
    # 6097 is exactly the sum of items 0-5: the later items were added without updating it.
    items = body["order"]["shipped_cart"]["items"]
    assert sum(item["total_with_tax"] for item in items[:6]) == 6097


def test_the_php_example_of_reference_a_omits_the_shipment_refs_its_merchant_must_send():
    """Reference a is for a shipment_ref merchant, yet its example comments shipment_ref out."""
    body = _items_as_lists(examples.raw_full_body_a())
    errors = errors_of(body, options=examples.OPTIONS_A)
    missing = sorted(path for path in errors if path.endswith(".shipment_ref"))
    assert missing == [f"order.shipped_cart.items.{i}.shipment_ref" for i in range(8)]


def test_the_subscription_extra_of_the_php_examples_is_accepted_as_php_prints_it():
    """json_encode turns the examples' empty array() for extra into [], which cartsync accepts."""
    body = examples.full_body_b()
    assert body["order"]["subscription"]["cart"]["items"][0]["extra"] == []
    validate_update(body, options=examples.OPTIONS_B)


def test_the_corrections_are_documented_one_per_contradiction():
    """Every correction applied to an example is written down with its reason."""
    assert len(examples.CORRECTIONS_A) == 5
    assert len(examples.CORRECTIONS_B) == 4
    assert all(len(reason) > 40 for reason in examples.CORRECTIONS_A)
