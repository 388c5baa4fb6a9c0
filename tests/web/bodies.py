"""Update bodies for the HTTP tests."""

from __future__ import annotations

from typing import Any

from cartsync.tasks.builders import Item, cancelled, fully_shipped

SHIRT, JACKET = Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)


def shipped(merchant: str, order_ref: str, *items: Item) -> dict[str, Any]:
    """A valid body: everything shipped (shirt and jacket unless ``items`` are given)."""
    return fully_shipped(
        merchant=merchant, order_ref=order_ref, items=list(items or (SHIRT, JACKET))
    )


def cancel(merchant: str, order_ref: str) -> dict[str, Any]:
    """A valid body: cancelled before shipping."""
    return cancelled(merchant=merchant, order_ref=order_ref, reason="out_of_stock")


def with_bad_quantity(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its second shipped item's quantity a string (one error, by path)."""
    order = dict(body["order"])
    cart = dict(order["shipped_cart"])
    items = [dict(item) for item in cart["items"]]
    items[1]["quantity"] = "1"
    order["shipped_cart"] = {**cart, "items": items}
    return {**body, "order": order}


def without_identity(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without ``order.merchant`` and ``order.merchant_reference``."""
    order = {k: v for k, v in body["order"].items() if k not in ("merchant", "merchant_reference")}
    return {**body, "order": order}
