"""The API body ``{"order": {...}}`` and the order's own fields.

:func:`body_schema` hands out one schema tree per (contract options, strict), built on first
use and kept: building one costs milliseconds, validating with it microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from marshmallow import ValidationError

from cartsync.tasks.schemas.base import PayloadSchema, contract_field, raw_check
from cartsync.tasks.schemas.carts import CartSchema
from cartsync.tasks.schemas.fields import Bool, Choice, Identifier, ListOf, StrOrInt, Sub, Text
from cartsync.tasks.schemas.options import MULTISTORE
from cartsync.tasks.schemas.parties import AddressSchema, CustomerSchema
from cartsync.tasks.schemas.subscription import SubscriptionSchema
from cartsync.tasks.schemas.trackings import tracking

#: The values the reference allows for ``cancellation_reason`` (besides null).
CANCELLATION_REASONS = (
    "change",
    "change_payment_method",
    "customer_cancel",
    "out_of_stock",
    "other",
)


class MerchantSchema(PayloadSchema):
    id = Identifier(required=True)
    store_ref = Text()

    @raw_check
    def _store_ref_by_contract(self, original: Mapping[str, Any]) -> None:
        contract_field(
            original, "store_ref", option=MULTISTORE, has_option=MULTISTORE in self.options
        )


class MerchantReferenceSchema(PayloadSchema):
    order_ref_1 = Identifier(required=True)
    order_ref_2 = StrOrInt()
    subscription_ref_1 = StrOrInt()


class DeliveryMethodSchema(PayloadSchema):
    name = Text(required=True)
    days = Text()
    provider = Text()
    home_delivery = Bool()


class PlatformSchema(PayloadSchema):
    name = Text(required=True)
    version = Text(required=True)
    plugin_version = Text()
    uname = Text(required=True)
    db_name = Text()
    db_version = Text()


class OrderSchema(PayloadSchema):
    merchant = Sub(MerchantSchema, required=True)
    merchant_reference = Sub(MerchantReferenceSchema, required=True)
    unshipped_cart = Sub(CartSchema, required=True, schema_kwargs={"shipped": False})
    shipped_cart = Sub(CartSchema, required=True, schema_kwargs={"shipped": True})
    cancellation_reason = Choice(CANCELLATION_REASONS, allow_none=True)
    trackings = ListOf(tracking())
    delivery_method = Sub(DeliveryMethodSchema)
    delivery_address = Sub(AddressSchema)
    invoice_address = Sub(AddressSchema)
    customer = Sub(CustomerSchema)
    platform = Sub(PlatformSchema, required=True)
    subscription = Sub(SubscriptionSchema)

    @raw_check
    def _one_currency(self, original: Mapping[str, Any]) -> None:
        unshipped, shipped = original.get("unshipped_cart"), original.get("shipped_cart")
        if not (isinstance(unshipped, Mapping) and isinstance(shipped, Mapping)):
            return
        first, second = unshipped.get("currency"), shipped.get("currency")
        if isinstance(first, str) and isinstance(second, str) and first != second:
            both = f" ({second} and {first})" if _code_like(first) and _code_like(second) else ""
            message = (
                f"Differs from unshipped_cart.currency{both}: both carts must use one currency."
            )
            raise ValidationError({"shipped_cart": {"currency": [message]}})


def _code_like(value: str) -> bool:
    """Short enough and plain enough to repeat in a message (a currency code, not prose)."""
    return len(value) <= 4 and value.isascii() and value.isalnum()


class BodySchema(PayloadSchema):
    """The API body: ``{"order": {...}}``."""

    order = Sub(OrderSchema, required=True)


@cache
def body_schema(options: frozenset[str], strict: bool) -> BodySchema:
    """The schema for a merchant with these (normalized) contract options."""
    return BodySchema(options=options, strict=strict)
