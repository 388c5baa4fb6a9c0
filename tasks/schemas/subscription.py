"""``subscription``: what a subscription merchant charges each month, and its discounts."""

from __future__ import annotations

from cartsync.tasks.schemas.base import PayloadSchema, Typed
from cartsync.tasks.schemas.fields import Choice, Extra, Integer, ListOf, Money, Sub, Text


class SubscriptionItemSchema(PayloadSchema):
    """Subscription ``product`` and ``subscriber_fee`` items: the same fields in both."""

    type = Text()
    unique_reference = Text(required=True)
    catalogue_reference = Text()
    name = Text(required=True)
    monthly_price_with_tax = Money(required=True)
    # "multiplied by 100: 2100 for 21%"
    vat_rate = Integer(required=True, minimum=0)
    minimum_period = Integer(required=True, minimum=0)
    extension_period = Integer(required=True, minimum=0)
    # "(string)" in the reference, unlike the ISO 8601 dates elsewhere.
    start_on = Text()
    end_on = Text()
    extra = Extra()


class SubscriptionCartSchema(PayloadSchema):
    currency = Text(required=True)
    items = ListOf(
        Typed(
            {"product": SubscriptionItemSchema, "subscriber_fee": SubscriptionItemSchema},
            what="subscription item",
        ),
        required=True,
    )


class SubscriptionDiscountSchema(PayloadSchema):
    """The reference describes ``type`` as '["percent", "amount"]': one of the two."""

    type = Choice(("percent", "amount"), required=True)
    unique_reference = Text(required=True)
    promotion_reference = Text()
    # "in cents or 1/100 of percent", by type.
    amount = Integer(required=True)
    start_month = Integer(required=True)
    period_in_months = Integer(required=True)


class SubscriptionSchema(PayloadSchema):
    cart = Sub(SubscriptionCartSchema)
    discounts = ListOf(Sub(SubscriptionDiscountSchema))
    initial_payment_amount = Money(minimum=1)
