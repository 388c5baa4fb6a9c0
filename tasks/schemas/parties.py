"""The people and places of an order: addresses, the customer (and a garage's vehicle)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cartsync.tasks.schemas.base import PayloadSchema, contract_field, raw_check
from cartsync.tasks.schemas.fields import Integer, IsoDate, StrOrInt, Sub, Text
from cartsync.tasks.schemas.options import GARAGE


class AddressSchema(PayloadSchema):
    """``delivery_address`` and ``invoice_address``. Mandatory fields may be empty strings:
    the reference's own invoice address example sends ``""`` for most of them."""

    given_names = Text(required=True)
    surnames = Text(required=True)
    company = Text(required=True)
    address_line_1 = Text(required=True)
    address_line_2 = Text(required=True)
    postal_code = Text(required=True)
    city = Text(required=True)
    country_code = Text(required=True)
    phone = Text()
    mobile_phone = Text()
    state = Text()
    extra = Text()
    vat_number = Text()


class VehicleSchema(PayloadSchema):
    plaque = Text(required=True)
    brand = Text()
    model = Text()
    frame = Text()
    first_registration_date = Text()


class CustomerSchema(PayloadSchema):
    """``customer``. The reference's table lost the name of the email row ("| Yes | Customer
    email ..."); its PHP example calls it ``email``."""

    given_names = Text(required=True)
    surnames = Text(required=True)
    title = Text()
    email = Text(required=True)
    ref = StrOrInt()
    # "(string)", but described as "in ISO-8601 format".
    date_of_birth = IsoDate()
    nin = Text()
    company = Text()
    vat_number = Text()
    # "0 to 100, inclusive".
    rating = Integer(minimum=0, maximum=100)
    nin_control = Text()
    vehicle = Sub(VehicleSchema)

    @raw_check
    def _vehicle_by_contract(self, original: Mapping[str, Any]) -> None:
        contract_field(original, "vehicle", option=GARAGE, has_option=GARAGE in self.options)
