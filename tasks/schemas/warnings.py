"""Things worth a warning that must not block delivery: seQura may well accept them.

Pure functions over the raw body, guarded against any shape: they run on invalid bodies too
(an InvalidUpdate carries them), so they never assume a field is what the schema wants.

"More than rounding explains": when a line's total is worked out from a unit price rounded
to the cent (or a discount spread over the units), each unit may be a cent off. So a line
whose total_with_tax differs from quantity x price_with_tax by at most ``quantity`` cents is
rounding; more than that earns a warning. Only integers within 64 bits are worked with (the
fields refuse the others): a product of integers of thousands of digits is never computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cartsync.tasks.schemas.fields import is_int64

CARTS = ("unshipped_cart", "shipped_cart")

#: Item types whose total_with_tax is worked out from quantity and price_with_tax.
PRICED_TYPES = frozenset({"product", "service", "subscriber_fee"})


def rounding_tolerance(quantity: int) -> int:
    """Cents by which a line total may differ from quantity x price: one per unit."""
    return max(1, quantity)


def _items(order: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, item) for every item-shaped entry of both carts."""
    found = []
    for cart_name in CARTS:
        cart = order.get(cart_name)
        items = cart.get("items") if isinstance(cart, Mapping) else None
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                found.append((f"order.{cart_name}.items.{index}", item))
    return found


def collect_warnings(body: Any) -> dict[str, list[str]]:
    """Warnings for ``body`` by dotted path, in a stable order."""
    order = body.get("order") if isinstance(body, Mapping) else None
    if not isinstance(order, Mapping):
        return {}
    warnings: dict[str, list[str]] = {}
    items = _items(order)

    trackings = order.get("trackings")
    known: set[str] = set()
    if isinstance(trackings, list):
        for tracking in trackings:
            reference = tracking.get("reference") if isinstance(tracking, Mapping) else None
            if isinstance(reference, str):
                known.add(reference)
    for path, item in items:
        reference = item.get("tracking_reference")
        if isinstance(reference, str) and reference not in known:
            warnings.setdefault(f"{path}.tracking_reference", []).append(
                "Names no tracking in order.trackings."
            )

    reason = order.get("cancellation_reason")
    if reason is not None and items:
        warnings.setdefault("order.cancellation_reason", []).append(
            "Set while a cart still holds items: seQura expects a cancellation reason "
            "only when both carts are empty."
        )

    for path, item in items:
        item_type = item.get("type", "product")
        if not isinstance(item_type, str) or item_type not in PRICED_TYPES:
            continue
        quantity = item.get("quantity")
        price = item.get("price_with_tax")
        total = item.get("total_with_tax")
        if not (is_int64(quantity) and is_int64(price) and is_int64(total)) or quantity < 1:
            continue
        expected = quantity * price
        tolerance = rounding_tolerance(quantity)
        if abs(total - expected) > tolerance:
            cents = "cent" if tolerance == 1 else "cents"
            warnings.setdefault(f"{path}.total_with_tax", []).append(
                f"{total} differs from quantity × price_with_tax ({quantity} × {price} = "
                f"{expected}) by {abs(total - expected)} cents, more than rounding explains "
                f"(at most {tolerance} {cents}, one per unit)."
            )
    return warnings
