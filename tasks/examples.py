"""Example Order Update bodies for tests, all of them valid unless a name says otherwise.

- :func:`two_item_body`: the smallest realistic update (a product and its handling);
- :func:`scenario_body`: the five cart scenarios of seQura's guide (docs/SEQURA_API.md),
  completed with the mandatory ``merchant``, ``merchant_reference`` and ``platform``;
- :func:`full_body_a` / :func:`full_body_b`: the PHP examples of the two payload references,
  which set every field, with the corrections listed in :data:`CORRECTIONS_A` and
  :data:`CORRECTIONS_B` applied; :func:`raw_full_body_a` / :func:`raw_full_body_b` are the
  same examples exactly as PHP's ``json_encode`` prints them.

Every function returns a fresh copy: mutate it freely. :func:`with_value` and :func:`without`
return a copy changed at one dotted path (``order.shipped_cart.items.1.quantity``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "example_bodies"

#: The five scenarios of order-update-api.txt, by the name of their fixture file.
SCENARIOS = (
    "full-shipment",
    "partial-shipment",
    "partial-return",
    "cancellation",
    "cart-update",
)

#: Contract options each reference page was generated for (docs/SEQURA_API.md).
OPTIONS_A = frozenset({"services", "multistore", "shipment_ref"})
OPTIONS_B = frozenset({"travel"})

_CORRECTIONS_BOTH = (
    "items lists: the PHP example numbers items 0-6 and 10 (reference a) or 0-5, 7, 8 and 10 "
    "(reference b), so json_encode prints each cart's items as an object keyed by those "
    "numbers, while the reference says items is a list; converted to lists in the same order.",
    "order_total_with_tax: 6097 in both carts is the sum of items 0-5 only; the generator added "
    "the later items without updating it, so seQura would answer 409; set to the items' sum.",
    "customer.vehicle: its opening line is commented out ('// contract') but its fields are "
    "still assigned, so PHP creates it anyway; the merchant has no garage option, so removed.",
    "subscription.discounts.0.type: the example assigns the list of allowed values "
    '["percent", "amount"]; set to "percent" (5000 is 50.00 %, "three_month_half_off").',
)

#: What full_body_a() changes in the literal PHP example of payload-reference-a.txt, and why.
CORRECTIONS_A = (
    *_CORRECTIONS_BOTH,
    "merchant.store_ref and shipped_cart.items.*.shipment_ref: commented out in the example, "
    "yet the page was generated for a multistore, shipment_ref merchant, which must send "
    "them; uncommented.",
)

#: What full_body_b() changes in the literal PHP example of payload-reference-b.txt, and why.
CORRECTIONS_B = _CORRECTIONS_BOTH


def two_item_body(
    merchant: str | int = "s1",
    order_ref: str | int = "ORDER-1",
    *,
    shipped: bool = True,
    quantity: int = 2,
    price_with_tax: int = 3030,
    handling_with_tax: int = 242,
    currency: str = "EUR",
    store_ref: str | None = None,
    shipment_ref: str | None = None,
) -> dict[str, Any]:
    """A valid body with one product and one handling item, totals adding up.

    The items sit in ``shipped_cart`` (``shipped=True``) or ``unshipped_cart``; the other cart
    is empty. ``store_ref`` / ``shipment_ref`` add the fields the ``multistore`` /
    ``shipment_ref`` contract options require (shipment_ref only on shipped items).
    """
    product: dict[str, Any] = {
        "reference": "12-123-1234",
        "name": "Leather case",
        "price_with_tax": price_with_tax,
        "quantity": quantity,
        "total_with_tax": quantity * price_with_tax,
        "downloadable": False,
    }
    handling: dict[str, Any] = {
        "type": "handling",
        "reference": "seur24",
        "name": "SEUR 24h",
        "total_with_tax": handling_with_tax,
    }
    items = [product, handling]
    if shipment_ref is not None and shipped:
        for item in items:
            item["shipment_ref"] = shipment_ref
    full = {
        "currency": currency,
        "order_total_with_tax": quantity * price_with_tax + handling_with_tax,
        "items": items,
    }
    empty = {"currency": currency, "order_total_with_tax": 0, "items": []}
    merchant_part: dict[str, Any] = {"id": merchant}
    if store_ref is not None:
        merchant_part["store_ref"] = store_ref
    return {
        "order": {
            "merchant": merchant_part,
            "merchant_reference": {"order_ref_1": order_ref},
            "unshipped_cart": empty if shipped else full,
            "shipped_cart": full if shipped else empty,
            "platform": {"name": "custom", "version": "1.0", "uname": "Linux shop 6.1.0 x86_64"},
        }
    }


def scenario_body(name: str) -> dict[str, Any]:
    """One of :data:`SCENARIOS`, completed with merchant, merchant_reference and platform.

    The spec's partial-shipment example has a trailing comma after its only unshipped item,
    which JSON does not allow; the fixture leaves it out.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return _load(f"scenario-{name}.json")


def raw_full_body_a() -> dict[str, Any]:
    """payload-reference-a.txt's PHP example as json_encode prints it (not valid as is)."""
    return _load("reference-a-php.json")


def raw_full_body_b() -> dict[str, Any]:
    """payload-reference-b.txt's PHP example as json_encode prints it (not valid as is)."""
    return _load("reference-b-php.json")


def full_body_a() -> dict[str, Any]:
    """Reference a's example with :data:`CORRECTIONS_A`; valid under :data:`OPTIONS_A`."""
    body = _corrected(raw_full_body_a())
    order = body["order"]
    order["merchant"]["store_ref"] = "maquinista"
    for item in order["shipped_cart"]["items"]:
        item["shipment_ref"] = "1234-2345-45"
    return body


def full_body_b() -> dict[str, Any]:
    """Reference b's example with :data:`CORRECTIONS_B`; valid under :data:`OPTIONS_B`."""
    return _corrected(raw_full_body_b())


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at the dotted ``path`` (list indexes are numbers)."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    container = _walk(changed, parents)
    if isinstance(container, list):
        container[int(last)] = value
    else:
        container[last] = value
    return changed


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of ``body`` without the key (or list entry) at the dotted ``path``."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    container = _walk(changed, parents)
    del container[int(last) if isinstance(container, list) else last]
    return changed


def _walk(node: Any, keys: list[str]) -> Any:
    for key in keys:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _corrected(body: dict[str, Any]) -> dict[str, Any]:
    order = body["order"]
    for cart_name in ("unshipped_cart", "shipped_cart"):
        cart = order[cart_name]
        items = cart["items"]
        if isinstance(items, dict):
            cart["items"] = [items[key] for key in sorted(items, key=int)]
        cart["order_total_with_tax"] = sum(item["total_with_tax"] for item in cart["items"])
    del order["customer"]["vehicle"]
    order["subscription"]["discounts"][0]["type"] = "percent"
    return body


def _load(name: str) -> dict[str, Any]:
    return copy.deepcopy(_parsed(name))


@cache
def _parsed(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return parsed
