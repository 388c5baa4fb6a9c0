"""Builders for the five cart scenarios of seQura's Order Update API.

Each takes a plain description of the order's items and returns the API body, with each
cart's ``order_total_with_tax`` computed from its items::

    from cartsync.tasks.builders import Item, fully_shipped
    body = fully_shipped(
        merchant="camisasonline", order_ref="A14/12345",
        items=[Item("shirt1234", "shirt", 1250), Item("jacket9876", "jacket", 7100)],
    )

Items are :class:`Item` (a product) or plain dicts for other item types (``handling``,
``discount``, ...), which are copied as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cartsync.tasks.schemas.order import CANCELLATION_REASONS

#: Currency of the carts unless a builder is told otherwise.
DEFAULT_CURRENCY = "EUR"


@dataclass(frozen=True)
class Item:
    """A product line: ``quantity`` units at ``price_with_tax`` cents each."""

    reference: str | int
    name: str
    price_with_tax: int
    quantity: int = 1
    downloadable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "name": self.name,
            "price_with_tax": self.price_with_tax,
            "quantity": self.quantity,
            "total_with_tax": self.price_with_tax * self.quantity,
            "downloadable": self.downloadable,
        }


CartItem = Item | Mapping[str, Any]


def cart(items: Sequence[CartItem], currency: str = DEFAULT_CURRENCY) -> dict[str, Any]:
    """A cart whose ``order_total_with_tax`` is the sum of its items' ``total_with_tax``."""
    lines = [item.to_dict() if isinstance(item, Item) else dict(item) for item in items]
    return {
        "currency": currency,
        "order_total_with_tax": sum(int(line["total_with_tax"]) for line in lines),
        "items": lines,
    }


def order_body(
    *,
    merchant: str | int,
    order_ref: str | int,
    shipped: Sequence[CartItem] = (),
    unshipped: Sequence[CartItem] = (),
    currency: str = DEFAULT_CURRENCY,
    cancellation_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The API body for an order whose carts now hold ``shipped`` and ``unshipped``.

    ``extra`` adds other top-level order fields (``platform``, ``trackings``, ``customer``, ...).
    """
    order: dict[str, Any] = {
        "merchant": {"id": merchant},
        "merchant_reference": {"order_ref_1": order_ref},
        "unshipped_cart": cart(unshipped, currency),
        "shipped_cart": cart(shipped, currency),
    }
    if cancellation_reason is not None:
        order["cancellation_reason"] = cancellation_reason
    order.update(extra)
    return {"order": order}


def fully_shipped(
    *, merchant: str | int, order_ref: str | int, items: Sequence[CartItem], **extra: Any
) -> dict[str, Any]:
    """Everything shipped: all items in the shipped cart, the unshipped cart empty."""
    return order_body(merchant=merchant, order_ref=order_ref, shipped=items, **extra)


def partially_shipped(
    *,
    merchant: str | int,
    order_ref: str | int,
    shipped: Sequence[CartItem],
    unshipped: Sequence[CartItem],
    **extra: Any,
) -> dict[str, Any]:
    """Part shipped: shipped items in the shipped cart, the rest still in the unshipped cart."""
    return order_body(
        merchant=merchant, order_ref=order_ref, shipped=shipped, unshipped=unshipped, **extra
    )


def partial_return(
    *, merchant: str | int, order_ref: str | int, kept: Sequence[CartItem], **extra: Any
) -> dict[str, Any]:
    """A partial return: the items the shopper kept stay in the shipped cart."""
    return order_body(merchant=merchant, order_ref=order_ref, shipped=kept, **extra)


def cancelled(
    *, merchant: str | int, order_ref: str | int, reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A full return (``reason`` None) or a cancellation (never shipped): both carts empty."""
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise ValueError(f"reason must be one of {', '.join(CANCELLATION_REASONS)}, not {reason!r}")
    return order_body(merchant=merchant, order_ref=order_ref, cancellation_reason=reason, **extra)


def cart_changed(
    *,
    merchant: str | int,
    order_ref: str | int,
    shipped: Sequence[CartItem] = (),
    unshipped: Sequence[CartItem] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The shopper changed the cart: send the new content of both carts."""
    return order_body(
        merchant=merchant, order_ref=order_ref, shipped=shipped, unshipped=unshipped, **extra
    )
