"""Property-based tests: generated valid bodies round-trip unchanged; garbage only ever fails
validation with InvalidUpdate.

The generators build bodies from the references' field lists (every item type, trackings,
addresses, customer, subscription), for a random set of contract options, with unknown keys
sprinkled in and keys in random order. Example counts stay modest to keep the suite fast.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartsync.tasks.examples import OPTIONS_A, OPTIONS_B, full_body_a, full_body_b, two_item_body
from cartsync.tasks.schemas.countries import COUNTRY_CODES
from cartsync.tasks.validation import CONTRACT_OPTIONS, dump_update, validate_update, wire_bytes
from cartsync.worker.errors import InvalidUpdate

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8"), max_size=12)
ints = st.integers(-(10**12), 10**12)
str_or_int = st.one_of(text, ints)
#: merchant.id and order_ref_1: not empty, not only whitespace.
identifier = st.one_of(text.filter(str.strip), ints)
#: Integers past signed 64 bits (past 4300 digits, which Python will not print, hypothesis
#: cannot show an example: tests/tasks/test_hostile_input.py has those).
huge_ints = st.sampled_from([2**63, -(2**63) - 1, 10**400, -(10**400)])
money = st.integers(-(10**9), 10**9)
positive = st.integers(1, 10**6)
booleans = st.booleans()
countries = st.sampled_from(sorted(COUNTRY_CODES))
dates = st.dates().map(dt.date.isoformat)
offsets = st.one_of(
    st.none(),
    st.integers(-48, 56).map(lambda q: dt.timezone(dt.timedelta(minutes=15 * q))),
)
timestamps = st.builds(
    lambda moment, zone, spec: moment.replace(tzinfo=zone).isoformat(timespec=spec),
    st.datetimes(),
    offsets,
    st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
)
periods = st.builds(
    lambda y, m, d, h: (
        "P"
        + "".join(f"{n}{u}" for n, u in ((y, "Y"), (m, "M"), (d, "D")) if n)
        + (f"T{h}H" if h else "")
    ),
    st.integers(0, 5),
    st.integers(0, 11),
    st.integers(0, 30),
    st.integers(0, 23),
).filter(lambda p: p != "P")
no_space_refs = st.text(st.characters(whitelist_categories=("Lu", "Nd")), min_size=1, max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
# Dots would make an unknown key's dotted path ambiguous; real keys have none.
key_text = st.text(st.characters(codec="utf-8", exclude_characters="."))
# Anything JSON can carry, lone surrogates ("\\ud800") and NaN included.
garbage = st.recursive(
    st.none() | st.booleans() | ints | huge_ints | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
extras = st.dictionaries(key_text.map(lambda k: "x_" + k), json_values, max_size=2)


@st.composite
def obj(draw: Any, required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    """An object with the required keys, some optional ones, unknown ones, in random order."""
    values = draw(st.fixed_dictionaries(required, optional=optional or {}))
    values.update(draw(extras))
    keys = draw(st.permutations(list(values)))
    return {key: values[key] for key in keys}


def product(shipment: bool) -> Any:
    required = {
        "reference": str_or_int,
        "name": text,
        "price_with_tax": money,
        "quantity": positive,
        "total_with_tax": money,
        "downloadable": booleans,
    }
    if shipment:
        required["shipment_ref"] = text
    optional = {
        "type": st.just("product"),
        "subscription_period": positive,
        "subscription_price_per_item": positive,
        "subscription_vat_rate": positive,
        "perishable": booleans,
        "category": text,
        "product_id": str_or_int,
        "url": text,
        "tracking_reference": text,
    }
    return obj(required, optional)


def simple(kind: str, total: Any, shipment: bool, named: bool = True) -> Any:
    required: dict[str, Any] = {"type": st.just(kind), "total_with_tax": total}
    if named:
        required.update(reference=str_or_int, name=text)
    if shipment:
        required["shipment_ref"] = text
    return obj(required)


def service(shipment: bool) -> Any:
    ending = st.one_of(
        st.fixed_dictionaries({"ends_on": dates}), st.fixed_dictionaries({"ends_in": periods})
    )
    required = {
        "type": st.just("service"),
        "reference": str_or_int,
        "name": text,
        "price_with_tax": money,
        "quantity": positive,
        "total_with_tax": money,
        "downloadable": booleans,
    }
    if shipment:
        required["shipment_ref"] = text
    return st.tuples(obj(required, {"supplier": text, "rendered": booleans}), ending).map(
        lambda pair: {**pair[0], **pair[1]}
    )


def flight(shipment: bool) -> Any:
    segment = obj(
        {"iata_departure_code": text, "iata_destination_code": text},
        {"departure_time": timestamps, "cabin_class": text, "ancillaries": booleans},
    )
    passenger = obj(
        {"given_names": text, "surnames": text},
        {
            "date_of_birth": dates,
            "nationality": countries,
            "identity_documentation": obj({"number": text}, {"country_code": countries}),
        },
    )
    required = {
        "type": st.just("flight"),
        "reference": no_space_refs,
        "name": text,
        "departure_date": dates,
        "total_with_tax": positive,
        "downloadable": booleans,
        "iata_carrier_code": text,
        "iata_departure_code": text,
        "iata_destination_code": text,
        "segments": st.lists(segment, max_size=2),
        "pax": st.lists(passenger, max_size=2),
    }
    if shipment:
        required["shipment_ref"] = text
    return obj(required, {"destination_date": st.one_of(dates, timestamps)})


def lodging(shipment: bool) -> Any:
    lat_lng = st.tuples(
        st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)
    ).map(list)
    required = {
        "type": st.just("lodging"),
        "reference": no_space_refs,
        "name": text,
        "checkin_date": dates,
        "checkout_date": dates,
        "total_with_tax": positive,
        "downloadable": booleans,
        "establishment_name": text,
        "city": text,
        "country_code": countries,
    }
    if shipment:
        required["shipment_ref"] = text
    optional = {
        "capacity": positive,
        "coordinates": obj({"datum": st.just("WGS84"), "lat_lng": lat_lng}),
        "url": st.just("https://hotel.example/es?a=1"),
    }
    return obj(required, optional)


def cart_item(options: frozenset[str], shipment: bool) -> Any:
    kinds = [
        product(shipment),
        simple("handling", money, shipment),
        simple("invoice_fee", money, shipment, named=False),
        simple("discount", st.integers(-(10**6), -1), shipment),
        simple("other_payment", money, shipment),
        simple("voucher", money, shipment),
        simple("subscriber_fee", money, shipment),
    ]
    if "services" in options:
        kinds.append(service(shipment))
    if "travel" in options:
        kinds += [flight(shipment), lodging(shipment)]
    return st.one_of(kinds)


@st.composite
def cart(draw: Any, options: frozenset[str], shipped: bool, currency: str) -> Any:
    shipment = shipped and "shipment_ref" in options
    items = draw(st.lists(cart_item(options, shipment), max_size=4))
    total = sum(item["total_with_tax"] for item in items)
    body = {"currency": currency, "order_total_with_tax": total, "items": items}
    body.update(draw(extras))
    return body


@st.composite
def valid_bodies(draw: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A valid body and the contract options it is valid under."""
    options = frozenset(draw(st.sets(st.sampled_from(sorted(CONTRACT_OPTIONS)))))
    multistore = "multistore" in options or "garage" in options
    currency = draw(st.sampled_from(["EUR", "GBP"]))
    merchant = {"id": draw(identifier)}
    if multistore:
        merchant["store_ref"] = draw(text)
    address = obj(
        {
            k: text
            for k in (
                "given_names",
                "surnames",
                "company",
                "address_line_1",
                "address_line_2",
                "postal_code",
                "city",
                "country_code",
            )
        },
        {"phone": text, "vat_number": text},
    )
    customer_required = {"given_names": text, "surnames": text, "email": text}
    if "garage" in options:
        customer_required["vehicle"] = obj({"plaque": text}, {"brand": text})
    tracking = st.one_of(
        obj({"type": st.just("pickup_store"), "reference": text}, {"country_code": countries}),
        obj(
            {"type": st.just("postal"), "reference": text, "carrier": text},
            {"tracking_url": st.just("https://track.example/X1"), "delivered_at": timestamps},
        ),
    )
    subscription_item = obj(
        {
            "type": st.sampled_from(["product", "subscriber_fee"]),
            "unique_reference": text,
            "name": text,
            "monthly_price_with_tax": money,
            "vat_rate": st.integers(0, 10000),
            "minimum_period": st.integers(0, 60),
            "extension_period": st.integers(0, 60),
        },
        {"start_on": text, "extra": st.just([]) | st.dictionaries(text, text, max_size=2)},
    )
    order = draw(
        obj(
            {
                "merchant": st.just(merchant),
                "merchant_reference": obj({"order_ref_1": identifier}, {"order_ref_2": str_or_int}),
                "unshipped_cart": cart(options, False, currency),
                "shipped_cart": cart(options, True, currency),
                "platform": obj({"name": text, "version": text, "uname": text}),
            },
            {
                "cancellation_reason": st.sampled_from(["other", "out_of_stock", None]),
                "trackings": st.lists(tracking, max_size=2),
                "delivery_method": obj({"name": text}, {"home_delivery": booleans}),
                "delivery_address": address,
                "invoice_address": address,
                "customer": obj(customer_required, {"rating": st.integers(0, 100)}),
                "subscription": obj(
                    {},
                    {
                        "cart": obj(
                            {"currency": st.just(currency), "items": st.lists(subscription_item)}
                        ),
                        "initial_payment_amount": positive,
                    },
                ),
            },
        )
    )
    return {"order": order}, options


@FAST
@given(valid_bodies())
def test_generated_valid_bodies_validate_and_round_trip_unchanged(case):
    """A valid body comes back equal, with identical JSON bytes, and a dump gives it back."""
    body, options = case
    raw = json.dumps(body, ensure_ascii=False)
    validated = validate_update(body, options=options)
    assert validated.body == body
    assert json.dumps(validated.body, ensure_ascii=False) == raw
    assert wire_bytes(validated.body) == json.dumps(
        body, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    assert json.dumps(dump_update(validated.body, options=options), ensure_ascii=False) == raw


@FAST
@given(valid_bodies())
def test_generated_valid_bodies_also_pass_strict_mode_without_their_unknown_keys(case):
    """Strict mode refuses exactly the unknown keys: without them, the same body passes."""
    body, options = case
    errors = _errors(body, options, strict=True)
    if errors is not None:
        assert errors
        assert all(messages == ["Unknown field."] for messages in errors.values())
        assert all(path.rsplit(".", 1)[-1].startswith("x_") for path in errors)


def _errors(body: Any, options: frozenset[str], strict: bool) -> dict[str, list[str]] | None:
    """The errors of an invalid body, None for a valid one (whose wire bytes must encode)."""
    try:
        validated = validate_update(body, options=options, strict=strict)
    except InvalidUpdate as exc:
        return exc.errors
    wire_bytes(validated.body)
    return None


def _all_paths(node: Any, prefix: str = "") -> list[str]:
    paths = []
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in children:
        path = f"{prefix}.{key}" if prefix else str(key)
        paths.append(path)
        if isinstance(child, dict | list):
            paths += _all_paths(child, path)
    return paths


BASES = [
    (two_item_body(), frozenset()),
    (full_body_a(), OPTIONS_A),
    (full_body_b(), OPTIONS_B),
]


def _replace(node: Any, keys: list[str], value: Any, delete: bool) -> None:
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if delete:
        del node[last]
    else:
        node[last] = value


@st.composite
def mutated_bodies(draw: Any) -> tuple[Any, frozenset[str]]:
    base, options = draw(st.sampled_from(BASES))
    body = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _all_paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        value = draw(garbage)
        _replace(body, path.split("."), value, delete=draw(st.booleans()))
    options = draw(st.sampled_from([options, frozenset(), CONTRACT_OPTIONS]))
    return body, options


def _judge(body: Any, options: frozenset[str], strict: bool) -> None:
    errors = _errors(body, options, strict)
    if errors is not None:
        assert errors
        assert all(isinstance(path, str) and messages for path, messages in errors.items())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bodies(), st.booleans())
def test_damaged_bodies_only_ever_fail_with_invalid_update(case, strict):
    """Replacing or deleting random parts of valid bodies raises nothing but InvalidUpdate."""
    body, options = case
    _judge(body, options, strict)


@FAST
@given(garbage, st.booleans())
def test_arbitrary_json_only_ever_fails_with_invalid_update(value, strict):
    """Any JSON value at all, as the body or as the order, is judged without a crash."""
    _judge(value, frozenset(), strict)
    _judge({"order": value}, CONTRACT_OPTIONS, strict)
