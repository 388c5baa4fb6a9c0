"""Accepted means sendable: what the door lets in, the worker can send, whoever hands it over.

Hostile bodies (NaN, numbers past 64 bits, deep nesting, blank identifiers, odd versions) are
refused by the producer and by validation, naming the path; the schemas cannot raise on them
even without the codec in front; and a message an older release let through is parked as
``invalid`` by the worker instead of failing forever.
"""

from __future__ import annotations

import json
import math

import pytest
from marshmallow import ValidationError

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.tasks import codec
from cartsync.tasks.examples import two_item_body, with_value
from cartsync.tasks.message import MAX_VERSION
from cartsync.tasks.order_update import process
from cartsync.tasks.producer import Producer, order_identity
from cartsync.tasks.schemas.carts import totals_mismatch
from cartsync.tasks.schemas.fields import BLANK_IDENTIFIER, LatLng
from cartsync.tasks.schemas.order import body_schema
from cartsync.tasks.schemas.warnings import collect_warnings
from cartsync.tasks.validation import validate_update, wire_bytes
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetterStore, Filters
from cartsync.worker.errors import InvalidUpdate
from cartsync.worker.runtime import Runtime
from tests.conftest import CLAIM_KEY
from tests.sandbox_fixtures import SHOP

#: More digits than Python turns into text by default (4300): str() of it raises ValueError.
HUGE = 10**5000
TOTAL = "order.shipped_cart.order_total_with_tax"
ITEM = "order.shipped_cart.items.0"


def errors_of(body, **options) -> dict[str, list[str]]:
    with pytest.raises(InvalidUpdate) as caught:
        validate_update(body, **options)
    return caught.value.errors


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, codec.NOT_FINITE),
        (math.inf, codec.NOT_FINITE),
        (-math.inf, codec.NOT_FINITE),
        (HUGE, codec.OUT_OF_RANGE),
        (2**63, codec.OUT_OF_RANGE),
        (-(2**63) - 1, codec.OUT_OF_RANGE),
    ],
    ids=["nan", "inf", "-inf", "5000-digits", "2**63", "-2**63-1"],
)
def test_a_value_json_cannot_carry_under_an_unknown_key_is_refused_by_path(value, message):
    """NaN, Infinity and integers past 64 bits under a key the reference does not list are
    refused naming that key, as the worker could never send them."""
    body = with_value(two_item_body(), "order.note", {"n": [value]})
    assert errors_of(body) == {"order.note.n.0": [message]}


@pytest.mark.parametrize("depth", [981, 985, 100_000])
def test_deep_nesting_is_refused_by_path_without_a_recursion_error(depth):
    """A value nested hundreds of levels deep is refused as too deep, not met as a
    RecursionError in the validator or the worker's encoder."""
    errors = errors_of(with_value(two_item_body(), "order.note", nested(depth)))
    [(path, messages)] = errors.items()
    assert path.startswith("order.note.0.0")
    assert messages == [codec.TOO_DEEP]


def test_the_deepest_body_the_codec_accepts_validates():
    """Nesting up to the codec's limit, counted from the body, is accepted."""
    body = with_value(two_item_body(), "order.note", nested(codec.MAX_DEPTH - 2))
    assert validate_update(body).body == body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (TOTAL, HUGE),
        (f"{ITEM}.total_with_tax", HUGE),
        (f"{ITEM}.quantity", HUGE),
        (f"{ITEM}.price_with_tax", -HUGE),
        ("order.merchant.id", HUGE),
        ("order.merchant_reference.order_ref_2", -HUGE),
    ],
    ids=lambda value: value if isinstance(value, str) else "5000-digits",
)
def test_the_schemas_alone_refuse_integers_past_64_bits_without_raising(path, value):
    """Without the codec in front, a field holding a 5000-digit integer is refused by path:
    no totals check, line-total warning or message ever works it out or prints it."""
    body = with_value(two_item_body(), path, value)
    errors = body_schema(frozenset(), False).validate(body)
    assert errors
    assert collect_warnings(body) == {}
    assert totals_mismatch(body["order"]["shipped_cart"]) is None
    assert codec.OUT_OF_RANGE in json.dumps(errors)


def test_coordinates_past_a_double_are_refused_not_raised_on():
    """A latitude of 5000 digits is out of range, not an OverflowError in the finiteness check."""
    with pytest.raises(ValidationError) as caught:
        LatLng().deserialize([HUGE, 0])
    assert caught.value.messages == ["Latitude (the first number) must be between -90 and 90."]


def test_a_line_total_past_64_bits_earns_no_warning_and_raises_nothing():
    """The line-total warning only works with 64-bit integers: a huge one is the field's error."""
    body = with_value(two_item_body(), f"{ITEM}.total_with_tax", HUGE)
    body = with_value(body, f"{ITEM}.quantity", HUGE)
    assert collect_warnings(body) == {}


@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u3000"])
@pytest.mark.parametrize("path", ["order.merchant.id", "order.merchant_reference.order_ref_1"])
def test_a_blank_merchant_or_order_ref_is_refused_by_path(path, blank):
    """merchant.id and order_ref_1 name the order: empty or only whitespace, they are refused."""
    body = with_value(two_item_body(), path, blank)
    assert errors_of(body) == {path: [BLANK_IDENTIFIER]}
    assert order_identity(body) is None


def test_refs_are_never_stripped():
    """A ref with spaces around it is the producer's ref, kept as sent."""
    body = with_value(two_item_body(), "order.merchant_reference.order_ref_1", " A1 ")
    assert order_identity(body) == ("s1", " A1 ")
    assert order_identity(with_value(body, "order.merchant.id", 0)) == ("0", " A1 ")


def test_wire_bytes_refuse_nan():
    """The body's wire form never holds NaN, which is not JSON and which seQura cannot read."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        wire_bytes({"order": {"note": math.nan}})


# -- the producer ---------------------------------------------------------------------------

ACCOUNT = MerchantAccount(ref="", username="user", password="secret-pw")


@pytest.fixture
def producer(settings):
    return Producer(settings, merchants=MerchantDirectory(single=ACCOUNT))


def refused(producer, body, **options) -> dict[str, list[str]]:
    with pytest.raises(InvalidUpdate) as caught:
        producer.enqueue(body, **options)
    return caught.value.errors


def nothing_written(redis_client) -> bool:
    return bool(redis_client.keys() == [CLAIM_KEY.encode()])


@pytest.mark.parametrize(
    ("value", "message"),
    [(math.nan, codec.NOT_FINITE), (HUGE, codec.OUT_OF_RANGE), (nested(981), codec.TOO_DEEP)],
    ids=["nan", "5000-digits", "981-deep"],
)
def test_the_python_api_refuses_what_the_worker_could_not_send(
    producer, redis_client, value, message
):
    """A Python caller's NaN, huge integer or deep nesting is an InvalidUpdate by path, and
    nothing reaches Redis."""
    errors = refused(producer, with_value(two_item_body(), "order.note", value))
    assert [messages for messages in errors.values()] == [[message]]
    assert next(iter(errors)).startswith("order.note")
    assert nothing_written(redis_client)


@pytest.mark.parametrize("path", ["order.merchant.id", "order.merchant_reference.order_ref_1"])
def test_the_python_api_refuses_an_empty_identifier_by_path(producer, redis_client, path):
    """An empty merchant-ref or order-ref is a validation error naming it, not an assert."""
    assert refused(producer, with_value(two_item_body(), path, "")) == {path: [BLANK_IDENTIFIER]}
    assert nothing_written(redis_client)


@pytest.mark.parametrize(
    ("version", "kind"),
    [
        (1.5, "not a decimal number"),
        (2.0, "not a decimal number"),
        (True, "not true"),
        ("3", "not a string"),
        (0, ""),
        (-1, ""),
        (MAX_VERSION + 1, ""),
    ],
)
def test_a_version_must_be_an_int_from_1_to_2_63_minus_1(producer, redis_client, version, kind):
    """Floats (however whole), booleans, text, zero, negatives and 2**63 are refused as
    ``version``, and nothing is written."""
    [message] = refused(producer, two_item_body(), version=version)["version"]
    assert message.startswith(f"Must be a whole number from 1 to {MAX_VERSION}")
    assert kind in message
    assert nothing_written(redis_client)


@pytest.mark.parametrize("version", [2**53 + 1, 10**18, MAX_VERSION])
def test_a_version_past_2_53_travels_exactly(producer, redis_client, settings, version):
    """A microsecond timestamp as the version reaches the message as that very integer."""
    receipt = producer.enqueue(two_item_body(), version=version)
    assert (receipt.status, receipt.version) == ("enqueued", version)
    [member] = redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1)
    assert f',"version":{version},'.encode() in member


def test_versions_one_apart_past_2_53_are_told_apart(producer):
    """2**53+2 after 2**53+1 is newer; 2**53+1 after 2**53+2 is superseded."""
    assert producer.enqueue(two_item_body(), version=2**53 + 1).status == "enqueued"
    assert producer.enqueue(two_item_body(), version=2**53 + 2).status == "enqueued"
    late = producer.enqueue(two_item_body(), version=2**53 + 1)
    assert (late.status, late.version) == ("superseded", 2**53 + 2)


def test_an_order_at_the_highest_version_takes_no_next_one(producer, redis_client, settings):
    """After version 2**63-1, an update without a version is refused naming ``version``."""
    producer.enqueue(two_item_body(), version=MAX_VERSION)
    errors = refused(producer, two_item_body())
    assert list(errors) == ["version"]
    assert str(MAX_VERSION) in errors["version"][0]
    assert redis_client.zcard(keys.schedule(settings.key_prefix)) == 1


def test_orders_whose_refs_hold_colons_keep_their_own_ledgers(producer):
    """("x:y", "1") and ("x", "y:1") are two orders: a newer version of one never
    supersedes the other."""
    first = with_value(with_value(two_item_body(), "order.merchant.id", "x:y"),
                       "order.merchant_reference.order_ref_1", "1")  # fmt: skip
    second = with_value(with_value(two_item_body(), "order.merchant.id", "x"),
                        "order.merchant_reference.order_ref_1", "y:1")  # fmt: skip
    assert producer.enqueue(first, version=5).status == "enqueued"
    assert producer.enqueue(second, version=3).status == "enqueued"
    assert producer.ledger.versions("x:y", "1") == (5, 0)
    assert producer.ledger.versions("x", "y:1") == (3, 0)


# -- the worker -----------------------------------------------------------------------------


@pytest.fixture
def rt(settings, shop_sandbox):
    configured = settings.with_overrides(
        sequra_url=shop_sandbox.url,
        sequra_username=SHOP.username,
        sequra_password=SHOP.password,
        read_timeout_s=2.0,
        connect_timeout_s=2.0,
    )
    runtime = Runtime(configured)
    yield runtime
    runtime.client.close()


def take_scheduled(rt) -> str:
    """Take the one scheduled message out, as a worker's pump would."""
    [member] = rt.redis.zrange(rt.schedule.key, 0, -1)
    rt.redis.zrem(rt.schedule.key, member)
    return str(member.decode())


def test_a_message_an_older_release_let_nan_into_is_parked_invalid(rt, shop_sandbox):
    """A scheduled message whose body holds NaN (accepted before the codec was wired in) ends
    as an ``invalid`` dead letter naming the path, instead of failing on every attempt."""
    producer = Producer(rt.settings, client=rt.redis)
    body = with_value(two_item_body(merchant=SHOP.ref), "order.note", 1)
    producer.enqueue(body)
    member = take_scheduled(rt).replace('"note":1', '"note":NaN')
    assert process(member, rt) == "dead_lettered"
    store = DeadLetterStore(rt.redis, rt.settings.key_prefix)
    [letter] = [stored.letter for stored in store.scan(Filters())]
    assert letter.reason == "invalid"
    assert letter.errors == [f"order.note: {codec.NOT_FINITE}"]
    assert shop_sandbox.state.order(SHOP.ref, "ORDER-1") is None


def test_a_version_past_2_53_is_delivered_and_recorded_exactly(rt, shop_sandbox):
    """A producer version of 2**53+1 is sent with that version and recorded as delivered."""
    producer = Producer(rt.settings, client=rt.redis)
    producer.enqueue(two_item_body(merchant=SHOP.ref), version=2**53 + 1)
    assert process(take_scheduled(rt), rt) == "delivered"
    assert rt.ledger.versions(SHOP.ref, "ORDER-1") == (2**53 + 1, 2**53 + 1)
    [entry] = shop_sandbox.state.order(SHOP.ref, "ORDER-1")["history"]
    assert entry["version"] == 2**53 + 1
