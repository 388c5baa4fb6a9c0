"""Cart item types of ``unshipped_cart.items`` and ``shipped_cart.items``.

One schema per ``type``: ``product`` (also when ``type`` is missing), ``handling``,
``invoice_fee``, ``discount``, ``other_payment``, ``voucher``, ``service`` (contract option
``services``), ``flight`` and ``lodging`` (contract option ``travel``), ``subscriber_fee``.
Items in ``shipped_cart`` also take ``shipment_ref`` (contract option ``shipment_ref``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from marshmallow import ValidationError

from cartsync.tasks.schemas.base import PayloadSchema, Typed, contract_field, raw_check
from cartsync.tasks.schemas.fields import (
    Bool,
    CountryCode,
    Forbidden,
    IsoDate,
    IsoDateOrTimestamp,
    IsoPeriod,
    IsoTimestamp,
    LatLng,
    ListOf,
    Money,
    PositiveInt,
    Reference,
    StrOrInt,
    Sub,
    Text,
    Url,
)
from cartsync.tasks.schemas.options import SERVICES, SHIPMENT_REF, TRAVEL

PRODUCT = "product"


def _not_allowed(item_type: str) -> Forbidden:
    return Forbidden(f'Not allowed in an item of type "{item_type}".')


class CartItemSchema(PayloadSchema):
    """What every cart item shares: its ``type`` and, in ``shipped_cart``, ``shipment_ref``."""

    type = Text()
    shipment_ref = Text()

    def __init__(
        self, *, options: Collection[str] = frozenset(), strict: bool = False, shipped: bool
    ) -> None:
        self.shipped = shipped
        super().__init__(options=options, strict=strict)

    @raw_check
    def _shipment_ref_by_contract(self, original: Mapping[str, Any]) -> None:
        if self.shipped:
            contract_field(
                original,
                "shipment_ref",
                option=SHIPMENT_REF,
                has_option=SHIPMENT_REF in self.options,
            )
        elif self.strict and "shipment_ref" in original:
            # The references list shipment_ref for shipped items only.
            raise ValidationError("Unknown field.", "shipment_ref")


class ProductSchema(CartItemSchema):
    """``type`` "product" or missing."""

    reference = StrOrInt(required=True)
    name = Text(required=True)
    price_with_tax = Money(required=True)
    quantity = PositiveInt(required=True)
    subscription_period = PositiveInt()
    subscription_price_per_item = Money(minimum=1)
    subscription_price = Money(minimum=1)
    subscription_vat_rate = PositiveInt()
    total_with_tax = Money(required=True)
    downloadable = Bool(required=True)
    perishable = Bool()
    personalized = Bool()
    restockable = Bool()
    category = Text()
    description = Text()
    manufacturer = Text()
    supplier = Text()
    product_id = StrOrInt()
    url = Text()
    tracking_reference = Text()


class HandlingSchema(CartItemSchema):
    reference = StrOrInt(required=True)
    name = Text(required=True)
    total_with_tax = Money(required=True)
    quantity = _not_allowed("handling")
    price_with_tax = _not_allowed("handling")


class InvoiceFeeSchema(CartItemSchema):
    total_with_tax = Money(required=True)
    quantity = _not_allowed("invoice_fee")
    price_with_tax = _not_allowed("invoice_fee")


class DiscountSchema(CartItemSchema):
    reference = StrOrInt(required=True)
    name = Text(required=True)
    # "Should be negative" / "(negative int)": a discount lowers the cart's value.
    total_with_tax = Money(required=True, maximum=-1)
    quantity = _not_allowed("discount")
    price_with_tax = _not_allowed("discount")


class OtherPaymentSchema(CartItemSchema):
    reference = StrOrInt(required=True)
    name = Text(required=True)
    total_with_tax = Money(required=True)
    quantity = _not_allowed("other_payment")
    price_with_tax = _not_allowed("other_payment")


class VoucherSchema(CartItemSchema):
    reference = StrOrInt(required=True)
    name = Text(required=True)
    total_with_tax = Money(required=True)
    quantity = _not_allowed("voucher")
    price_with_tax = _not_allowed("voucher")


class ServiceSchema(CartItemSchema):
    """A service: the references mark both ``ends_on`` and ``ends_in`` mandatory, but a
    service ends on a date or after a period, and their own example sends ``ends_in`` alone:
    exactly one of the two is required."""

    reference = StrOrInt(required=True)
    name = Text(required=True)
    ends_on = IsoDate()
    ends_in = IsoPeriod()
    price_with_tax = Money(required=True)
    quantity = PositiveInt(required=True)
    total_with_tax = Money(required=True)
    downloadable = Bool(required=True)
    supplier = Text()
    rendered = Bool()

    @raw_check
    def _ends_on_or_ends_in(self, original: Mapping[str, Any]) -> None:
        has_on, has_in = "ends_on" in original, "ends_in" in original
        if not has_on and not has_in:
            raise ValidationError(
                "Missing data for required field: a service needs exactly one of ends_on "
                "(an ISO 8601 date) and ends_in (an ISO 8601 period).",
                "ends_on",
            )
        if has_on and has_in:
            raise ValidationError(
                "Give only one of ends_on and ends_in: a service needs exactly one of them.",
                "ends_in",
            )


class SegmentSchema(PayloadSchema):
    iata_departure_code = Text(required=True)
    iata_destination_code = Text(required=True)
    departure_time = IsoTimestamp()
    destination_time = IsoTimestamp()
    iata_carrier_code = Text()
    iata_flight_code = Text()
    cabin_class = Text()
    rbd = Text()
    fare_basis = Text()
    ancillaries = Bool()


class IdentityDocumentationSchema(PayloadSchema):
    number = Text(required=True)
    type = Text()
    country_code = CountryCode()


class PassengerSchema(PayloadSchema):
    given_names = Text(required=True)
    surnames = Text(required=True)
    title = Text()
    sex = Text()
    date_of_birth = IsoDate()
    age_class = Text()
    nationality = CountryCode()
    identity_documentation = Sub(IdentityDocumentationSchema)


class FlightSchema(CartItemSchema):
    reference = Reference(required=True)
    name = Text(required=True)
    description = Text()
    departure_date = IsoDate(required=True)
    destination_date = IsoDateOrTimestamp()
    total_with_tax = Money(required=True, minimum=1)
    downloadable = Bool(required=True)
    iata_carrier_code = Text(required=True)
    iata_departure_code = Text(required=True)
    iata_destination_code = Text(required=True)
    country_departure_code = Text()
    country_destination_code = Text()
    customer_travel_insurance = Bool()
    customer_loyalty_card = Text()
    customer_card_level = Text()
    customer_member_since = IsoTimestamp()
    url = Text()
    segments = ListOf(Sub(SegmentSchema), required=True)
    pax = ListOf(Sub(PassengerSchema), required=True)


class CoordinatesSchema(PayloadSchema):
    datum = Text(required=True)
    lat_lng = LatLng(required=True)


class LodgingSchema(CartItemSchema):
    reference = Reference(required=True)
    name = Text(required=True)
    checkin_date = IsoDate(required=True)
    checkout_date = IsoDate(required=True)
    total_with_tax = Money(required=True, minimum=1)
    downloadable = Bool(required=True)
    capacity = PositiveInt()
    establishment_name = Text(required=True)
    address_line_1 = Text()
    address_line_2 = Text()
    postal_code = Text()
    city = Text(required=True)
    state = Text()
    country_code = CountryCode(required=True)
    coordinates = Sub(CoordinatesSchema)
    url = Url()


class SubscriberFeeSchema(CartItemSchema):
    reference = StrOrInt()
    name = Text(required=True)
    price_with_tax = Money()
    quantity = PositiveInt()
    subscription_period = PositiveInt()
    subscription_price_per_item = Money(minimum=1)
    subscription_price = Money(minimum=1)
    subscription_vat_rate = PositiveInt()
    total_with_tax = Money(required=True)


#: Item types every merchant may send.
BASIC_ITEMS: dict[str, type[PayloadSchema]] = {
    PRODUCT: ProductSchema,
    "handling": HandlingSchema,
    "invoice_fee": InvoiceFeeSchema,
    "discount": DiscountSchema,
    "other_payment": OtherPaymentSchema,
    "voucher": VoucherSchema,
    "subscriber_fee": SubscriberFeeSchema,
}

#: Item types that need a contract option: type -> (option, schema).
OPTIONAL_ITEMS: dict[str, tuple[str, type[PayloadSchema]]] = {
    "service": (SERVICES, ServiceSchema),
    "flight": (TRAVEL, FlightSchema),
    "lodging": (TRAVEL, LodgingSchema),
}


class CartItem(Typed):
    """One item of ``unshipped_cart.items`` or ``shipped_cart.items``, by its ``type``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            BASIC_ITEMS, what="cart item", default=PRODUCT, optional=OPTIONAL_ITEMS, **kwargs
        )

    def schema_kwargs(self, owner: Any) -> dict[str, Any]:
        return {"shipped": bool(getattr(owner, "shipped", False))}
