"""``unshipped_cart`` and ``shipped_cart``: a currency, a total and the items that make it up."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from marshmallow import ValidationError

from cartsync.tasks.schemas.base import PayloadSchema, raw_check
from cartsync.tasks.schemas.fields import ListOf, Money, Text, is_int64
from cartsync.tasks.schemas.items import CartItem


def totals_mismatch(cart: Mapping[str, Any]) -> str | None:
    """seQura's 409 text when a cart's items do not add up to its total, else None.

    Only judged when the total and every item's ``total_with_tax`` are integers within 64
    bits: otherwise the field errors already say what is wrong (and a sum of integers of
    thousands of digits is never worked out, nor printed). The wording follows seQura's own
    409 (whose "In shipped_cart, " the error's path already says): "items' total_with_tax add
    up to 5055 (200+295+-1500+6060) but order_total_with_tax is 5097. The diff is 42."
    """
    total = cart.get("order_total_with_tax")
    items = cart.get("items")
    if not is_int64(total) or not isinstance(items, Sequence) or isinstance(items, str):
        return None
    amounts: list[int] = []
    for item in items:
        amount = item.get("total_with_tax") if isinstance(item, Mapping) else None
        if not is_int64(amount):
            return None
        amounts.append(amount)
    added = sum(amounts)
    if added == total:
        return None
    terms = "+".join(str(amount) for amount in amounts) if amounts else "no items"
    return (
        f"items' total_with_tax add up to {added} ({terms}) but "
        f"order_total_with_tax is {total}. The diff is {total - added}."
    )


class CartSchema(PayloadSchema):
    """A cart. ``shipped`` tells the shipped cart, whose items take ``shipment_ref``."""

    currency = Text(required=True)
    order_total_with_tax = Money(required=True)
    items = ListOf(CartItem(), required=True)

    def __init__(
        self, *, options: Collection[str] = frozenset(), strict: bool = False, shipped: bool
    ) -> None:
        self.shipped = shipped
        super().__init__(options=options, strict=strict)

    # Judged on the raw input so that a bad name or flag elsewhere in an item does not hide
    # a wrong total: an on-call engineer fixing one field should see every problem at once.
    @raw_check
    def _totals_add_up(self, original: Mapping[str, Any]) -> None:
        message = totals_mismatch(original)
        if message is not None:
            raise ValidationError(message, "order_total_with_tax")
