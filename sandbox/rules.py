"""The rules the sandbox applies to an update, as seQura states them: pure functions.

- The body is ``{"order": {...}}`` with an ``unshipped_cart`` and a ``shipped_cart``, each with
  ``currency``, an integer ``order_total_with_tax`` and a list of ``items`` that each have an
  integer ``total_with_tax``. Other keys are accepted, as seQura accepts them.
- A cart's items add up to its ``order_total_with_tax`` (the 409 text is worded like the one
  quoted in ``docs/SEQURA_API.md``, "Status codes").
- The new order total (both carts) may exceed the order's original total by 15 % at most
  (``docs/SEQURA_API.md``, "Upselling limit").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The two carts of an update, in the order seQura reports on them.
CARTS = ("unshipped_cart", "shipped_cart")
#: Largest accepted increase over the original total, in percent.
UPSELLING_LIMIT_PERCENT = 15


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def shape_errors(body: Any) -> list[str]:
    """Why ``body`` is not an Order Update body (empty when it is one)."""
    if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
        return ["Invalid data: order is missing or not an object"]
    order = body["order"]
    errors: list[str] = []
    for name in CARTS:
        cart = order.get(name)
        if not isinstance(cart, dict):
            errors.append(f"Invalid data: {name} is missing or not an object")
            continue
        if not isinstance(cart.get("currency"), str):
            errors.append(f"Invalid data: {name}.currency is missing or not a string")
        if not _is_int(cart.get("order_total_with_tax")):
            errors.append(f"Invalid data: {name}.order_total_with_tax must be an integer")
        items = cart.get("items")
        if not isinstance(items, list):
            errors.append(f"Invalid data: {name}.items is missing or not a list")
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not _is_int(item.get("total_with_tax")):
                errors.append(
                    f"Invalid data: {name}.items.{index}.total_with_tax must be an integer"
                )
    return errors


def total_errors(order: Mapping[str, Any]) -> list[str]:
    """A seQura-worded error for each cart whose items do not add up to its total.

    ``order`` must have passed :func:`shape_errors`.
    """
    errors = []
    for name in CARTS:
        cart = order[name]
        amounts = [int(item["total_with_tax"]) for item in cart["items"]]
        added = sum(amounts)
        declared = int(cart["order_total_with_tax"])
        if added != declared:
            terms = "+".join(str(a) for a in amounts) or "0"
            errors.append(
                f"Invalid data: In {name}, items' total_with_tax add up to {added} ({terms}) "
                f"but order_total_with_tax is {declared}. The diff is {declared - added}."
            )
    return errors


def order_total(order: Mapping[str, Any]) -> int:
    """The order's value: both carts' ``order_total_with_tax`` (missing carts count 0)."""
    total = 0
    for name in CARTS:
        cart = order.get(name)
        if isinstance(cart, dict) and _is_int(cart.get("order_total_with_tax")):
            total += int(cart["order_total_with_tax"])
    return total


def upselling_error(original_total: int | None, new_total: int) -> str | None:
    """The 409 text when ``new_total`` exceeds ``original_total`` by more than 15 %."""
    if original_total is None:
        return None
    if new_total * 100 <= original_total * (100 + UPSELLING_LIMIT_PERCENT):
        return None
    limit = original_total * (100 + UPSELLING_LIMIT_PERCENT) // 100
    return (
        f"Invalid data: The new order total {new_total} exceeds the original total "
        f"{original_total} by more than {UPSELLING_LIMIT_PERCENT}% (at most {limit})."
    )


def update_errors(body: Any, original_total: int | None) -> list[str]:
    """Every reason to answer 409 to ``body``, given the order's original total."""
    errors = shape_errors(body)
    if errors:
        return errors
    order = body["order"]
    errors = total_errors(order)
    if errors:
        return errors
    upselling = upselling_error(original_total, order_total(order))
    return [upselling] if upselling else []
