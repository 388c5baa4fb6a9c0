"""``trackings``: how the order's parcels reach the shopper, by ``type``."""

from __future__ import annotations

from cartsync.tasks.schemas.base import PayloadSchema, Typed
from cartsync.tasks.schemas.fields import CountryCode, HttpsUrl, IsoTimestamp, Text


class PickupSchema(PayloadSchema):
    """``pickup_store`` and ``pickup_point``: the same fields in both references."""

    type = Text()
    reference = Text(required=True)
    operator_ref = Text()
    store_ref = Text()
    tracking_number = Text()
    available_at = IsoTimestamp()
    delivered_at = IsoTimestamp()
    address_line_1 = Text()
    address_line_2 = Text()
    postal_code = Text()
    city = Text()
    state = Text()
    country_code = CountryCode()


class PostalSchema(PayloadSchema):
    type = Text()
    reference = Text(required=True)
    carrier = Text(required=True)
    tracking_number = Text()
    tracking_url = HttpsUrl()
    delivered_at = IsoTimestamp()


def tracking() -> Typed:
    """One entry of ``trackings``; its ``type`` is required."""
    return Typed(
        {"pickup_store": PickupSchema, "pickup_point": PickupSchema, "postal": PostalSchema},
        what="tracking",
    )
