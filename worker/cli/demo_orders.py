"""The demo's shop: its merchant, the orders it checks out, the updates it enqueues (the five
cart scenarios of seQura's Order Update API, and one that seQura refuses), and how carts,
orders and the worker's events read in the demo's story.

Pure data and formatting, no Redis or processes: worker/cli/demo.py runs the story.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: The merchant the demo's orders belong to, and its API account at the sandbox.
DEMO_MERCHANT = "demo-shop"
DEMO_USER = "demo-shop-api"
DEMO_PASSWORD = "demo-password"  # noqa: S105  (the local sandbox's made-up account)


def money(cents: int, currency: str = "EUR") -> str:
    """``154.50 EUR`` for 15450 cents."""
    return f"{cents / 100:.2f} {currency}"


def cart_summary(cart: dict[str, Any] | None) -> str:
    """``[shirt M + 2x jacket] 154.50 EUR`` for a cart of the API body; ``nothing`` when empty."""
    if not cart or not cart.get("items"):
        return "nothing"
    names = []
    for item in cart["items"]:
        quantity = int(item.get("quantity", 1))
        names.append(f"{quantity}x {item.get('name')}" if quantity != 1 else str(item.get("name")))
    total = money(int(cart["order_total_with_tax"]), cart.get("currency", "EUR"))
    return f"[{' + '.join(names)}] {total}"


def order_summary(state: dict[str, Any] | None) -> str:
    """What seQura holds for an order, in one line."""
    if state is None:
        return "nothing"
    text = (
        f"shipped {cart_summary(state.get('shipped_cart'))}; "
        f"unshipped {cart_summary(state.get('unshipped_cart'))}"
    )
    if state.get("cancellation_reason"):
        text += f"; cancelled ({state['cancellation_reason']})"
    return text


def describe_event(event: dict[str, Any]) -> str:
    """One worker ``order_update`` event as a line of the demo."""
    outcome = str(event.get("outcome"))
    detail = []
    if event.get("status") is not None:
        detail.append(f"HTTP {event['status']}")
    if event.get("reason"):
        detail.append(str(event["reason"]))
    if event.get("duration_ms") is not None:
        detail.append(f"{float(event['duration_ms']):.0f} ms")
    shown = f" ({', '.join(detail)})" if detail else ""
    return f"{event.get('order_ref')} v{event.get('version')}: {outcome}{shown}"


@dataclass(frozen=True)
class Step:
    """One update the demo enqueues: which scenario, for which order, and the body."""

    scenario: str
    order_ref: str
    body: dict[str, Any]


def checkout_and_updates() -> tuple[dict[str, dict[str, Any]], list[Step], Step]:
    """The orders as checked out, the updates of the five scenarios, and the one seQura
    refuses (its cart grows by more than the 15 % upselling seQura allows)."""
    from cartsync.tasks.builders import (
        Item,
        cancelled,
        cart_changed,
        fully_shipped,
        order_body,
        partial_return,
        partially_shipped,
    )

    shirt, jacket = Item("shirt-M", "shirt M", 1250), Item("jacket", "jacket", 7100)
    shirt_xl, coat = Item("shirt-XL", "shirt XL", 1250), Item("coat", "wool coat", 8900)
    m = DEMO_MERCHANT

    def checkout(ref: str, *items: Item) -> dict[str, Any]:
        order: dict[str, Any] = order_body(merchant=m, order_ref=ref, unshipped=items)["order"]
        return order

    orders = {
        "DEMO-1001": checkout("DEMO-1001", shirt, jacket),
        "DEMO-1002": checkout("DEMO-1002", shirt, jacket),
        "DEMO-1003": checkout("DEMO-1003", shirt, jacket),
        "DEMO-1004": checkout("DEMO-1004", shirt, jacket),
        "DEMO-1005": checkout("DEMO-1005", shirt, jacket),
        "DEMO-1006": checkout("DEMO-1006", shirt, jacket),
    }
    steps = [
        Step("full shipment", "DEMO-1001",
             fully_shipped(merchant=m, order_ref="DEMO-1001", items=[shirt, jacket])),
        Step("partial shipment", "DEMO-1002",
             partially_shipped(merchant=m, order_ref="DEMO-1002", shipped=[jacket],
                               unshipped=[shirt])),
        Step("full shipment", "DEMO-1003",
             fully_shipped(merchant=m, order_ref="DEMO-1003", items=[shirt, jacket])),
        Step("partial return", "DEMO-1003",
             partial_return(merchant=m, order_ref="DEMO-1003", kept=[jacket])),
        Step("cancellation", "DEMO-1004",
             cancelled(merchant=m, order_ref="DEMO-1004", reason="customer_cancel")),
        Step("cart update", "DEMO-1005",
             cart_changed(merchant=m, order_ref="DEMO-1005", unshipped=[shirt_xl, jacket])),
    ]  # fmt: skip
    refused = Step(
        "cart update, +107 %",
        "DEMO-1006",
        cart_changed(merchant=m, order_ref="DEMO-1006", unshipped=[shirt_xl, jacket, coat]),
    )
    return orders, steps, refused


def without_item(body: dict[str, Any], reference: str) -> dict[str, Any]:
    """``body`` with the item ``reference`` taken out of its carts, totals recomputed."""
    fixed = copy.deepcopy(body)
    for name in ("unshipped_cart", "shipped_cart"):
        cart = fixed["order"][name]
        cart["items"] = [i for i in cart["items"] if i.get("reference") != reference]
        cart["order_total_with_tax"] = sum(int(i["total_with_tax"]) for i in cart["items"])
    return fixed
