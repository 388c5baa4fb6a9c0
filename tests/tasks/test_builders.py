"""The scenario builders produce bodies that validate, with totals that add up."""

import pytest

from cartsync.tasks.builders import (
    Item,
    cancelled,
    cart_changed,
    fully_shipped,
    partial_return,
    partially_shipped,
)
from cartsync.tasks.validation import validate_update

PLATFORM = {"name": "custom", "version": "1", "uname": "Linux"}
SHIRT, JACKET = Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)
HANDLING = {"type": "handling", "reference": "seur24", "name": "SEUR 24h", "total_with_tax": 242}

BODIES = {
    "full": fully_shipped(merchant="m", order_ref="o", items=[SHIRT, JACKET], platform=PLATFORM),
    "partial": partially_shipped(
        merchant="m", order_ref="o", shipped=[JACKET, HANDLING], unshipped=[SHIRT],
        platform=PLATFORM,
    ),
    "return": partial_return(merchant="m", order_ref="o", kept=[JACKET], platform=PLATFORM),
    "cancel": cancelled(merchant="m", order_ref="o", reason="out_of_stock", platform=PLATFORM),
    "full return": cancelled(merchant="m", order_ref="o", platform=PLATFORM),
    "edit": cart_changed(
        merchant="m", order_ref="o", shipped=[Item("shirt_XL", "shirt XL", 1250, 2)],
        platform=PLATFORM,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", BODIES)
def test_each_scenario_validates(name):
    """Every builder's body passes validation as it is."""
    validate_update(BODIES[name])


def test_totals_are_computed_from_the_items():
    """Each cart's order_total_with_tax is the sum of its items' totals."""
    order = BODIES["partial"]["order"]
    assert order["shipped_cart"]["order_total_with_tax"] == 7100 + 242
    assert order["unshipped_cart"]["order_total_with_tax"] == 1250
    assert BODIES["edit"]["order"]["shipped_cart"]["items"][0]["total_with_tax"] == 2500


def test_cancellation_has_empty_carts_and_a_reason():
    """A cancellation empties both carts and carries its reason; a full return carries none."""
    order = BODIES["cancel"]["order"]
    assert order["shipped_cart"]["items"] == order["unshipped_cart"]["items"] == []
    assert order["cancellation_reason"] == "out_of_stock"
    assert "cancellation_reason" not in BODIES["full return"]["order"]


def test_an_unknown_cancellation_reason_is_refused():
    """A reason seQura does not list is refused when the body is built, naming the choices."""
    with pytest.raises(ValueError, match="out_of_stock"):
        cancelled(merchant="m", order_ref="o", reason="changed_mind")
