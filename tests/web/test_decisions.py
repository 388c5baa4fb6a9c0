"""The pure decisions of the HTTP service: credentials, tokens, bodies, identity and states."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.config.producers import ProducerDirectory, new_token, parse_producers, token_hash
from cartsync.tasks.message import UpdateMessage
from cartsync.worker.errors import ConfigurationError, InvalidUpdate
from cartsync.worker.outcome_records import (
    OutcomeRecord,
    after_attempt,
    from_replies,
    superseded_head,
)
from cartsync.worker.web import bodies
from cartsync.worker.web.auth import merchant_verdict
from cartsync.worker.web.lookup import State, Waiting, decide, order_pattern, update_pattern
from cartsync.worker.web.receipts import fingerprint, keyed_update_id
from cartsync.worker.web.sequra_api import with_path_identity

SHOP = MerchantAccount("shop", "shop-api", "pw")
OTHER = MerchantAccount("other", "other-api", "pw2")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("shop-api", "pw"), None),
        (basic("other-api", "pw2"), 403),
        (basic("shop-api", "nope"), 401),
        ("Bearer x", 401),
        (None, 401),
        ("Basic !!!", 401),
    ],
)
def test_merchant_credentials_decide_as_seQura_does(header, expected):
    """The merchant's own credentials pass; another merchant's are 403; anything else is 401."""
    assert merchant_verdict(MerchantDirectory([SHOP, OTHER]), "shop", header) == expected


def test_a_producer_is_found_by_its_token_and_scoped_to_its_merchants():
    """A token's hash finds its producer, who may send only for the merchants listed."""
    token, digest = new_token()
    accounts = parse_producers({"producers": {"p": {"token_sha256": digest, "merchants": ["a"]}}})
    producer = ProducerDirectory(accounts.values()).authenticate(token)
    assert producer is not None
    assert producer.may_send_for("a")
    assert not producer.may_send_for("b")
    assert ProducerDirectory(accounts.values()).authenticate(token + "x") is None


@pytest.mark.parametrize(
    "entry",
    [
        {"token_sha256": "short", "merchants": ["a"]},
        {"token_sha256": token_hash("t"), "merchants": []},
        {"token_sha256": token_hash("t"), "merchants": ["a"], "token": "t"},
    ],
)
def test_a_bad_producer_entry_is_a_configuration_error(entry):
    """A malformed hash, no merchants or an unknown key stops the service with one line."""
    with pytest.raises(ConfigurationError):
        parse_producers({"producers": {"p": entry}})


def test_the_url_fills_in_and_checks_the_bodys_identity():
    """Missing merchant id and order-ref come from the URL; different ones are errors."""
    filled, errors = with_path_identity({"order": {}}, "shop", "A14/12345")
    assert errors == {}
    assert filled["order"]["merchant"] == {"id": "shop"}
    assert filled["order"]["merchant_reference"] == {"order_ref_1": "A14/12345"}
    body = {"order": {"merchant": {"id": "x"}, "merchant_reference": {"order_ref_1": 12345}}}
    _, errors = with_path_identity(body, "shop", "12345")
    assert list(errors) == ["order.merchant.id"]


def test_a_json_array_is_split_into_items_without_judging_them():
    """Items are cut out as text (a NaN inside one is left for the codec to refuse alone)."""
    assert bodies.split_json_array('[{"a": 1}, {"b": NaN} ,2]', 10) == [
        '{"a": 1}',
        '{"b": NaN}',
        "2",
    ]
    assert bodies.split_json_array(" [ ] ", 10) == []
    with pytest.raises(InvalidUpdate):
        bodies.split_json_array('{"order": {}}', 10)
    with pytest.raises(bodies.TooLarge):
        bodies.split_json_array("[1, 2, 3]", 2)


def test_an_envelope_gives_way_to_matching_headers_only():
    """idempotency_key and version beside order are taken out; disagreeing with a header is an
    error."""
    envelope = bodies.open_envelope({"order": {}, "version": 3}, key="k", version=None)
    assert (envelope.body, envelope.key, envelope.version) == ({"order": {}}, "k", 3)
    clash = bodies.open_envelope({"order": {}, "version": 3}, key=None, version=4)
    assert list(clash.errors) == ["version"]


def test_keys_are_scoped_and_fingerprints_follow_the_request():
    """One key from two producers makes two update ids; a different version is a different
    request."""
    assert keyed_update_id("producer:a", "k") != keyed_update_id("producer:b", "k")
    assert fingerprint({"order": {}}, 1) != fingerprint({"order": {}}, 2)


def waiting(attempts: int) -> Waiting:
    message = UpdateMessage("u", "m", "o", 3, {}, 0.0, attempts=[{}] * attempts)
    return Waiting(message, due=10.0, in_flight=False)


@pytest.mark.parametrize(
    ("version", "enqueued", "delivered", "found", "expected"),
    [
        (3, 3, 0, waiting(0), (State.PENDING, None)),
        (3, 3, 0, waiting(2), (State.RETRYING, None)),
        (3, 3, 3, None, (State.DELIVERED, None)),
        (3, 5, 0, waiting(0), (State.SUPERSEDED, 5)),
        (3, 3, 4, None, (State.SUPERSEDED, 4)),
    ],
)
def test_an_updates_state_follows_from_the_ledger_and_its_message(
    version, enqueued, delivered, found, expected
):
    """Delivered when its version is the delivered one, superseded under a newer one, else
    retrying or pending by its attempts."""
    assert decide(version, enqueued, delivered, letter=None, waiting=found) == expected


def test_scan_patterns_escape_glob_characters():
    """Order-refs and ids holding *, ? or [ match only themselves."""
    assert update_pattern("a*b") == '{"update_id":"a\\*b",*'
    assert '"order_ref":"A\\[1\\]"' in order_pattern("m", "A[1]")


def test_an_outcome_record_reads_back_as_written_and_a_partial_one_reads_as_none():
    """A record's JSON reads back whole, big versions exactly; a partial or broken text, like
    a partial hash of an older release, reads as no record."""
    retrying = after_attempt(
        "retrying", at=100.0, merchant="m", order_ref="o/1", version=2**63 - 1,
        enqueued_at=90.0, attempts=2, status=503, next_retry_s=4.5,
    )  # fmt: skip
    assert retrying is not None
    assert OutcomeRecord.from_json(retrying.to_json()) == retrying
    assert OutcomeRecord.from_json(retrying.to_json().encode()) == retrying
    assert retrying.next_try_at == 104.5
    assert after_attempt(
        "deferred", at=1.0, merchant="m", order_ref="o", version=1, enqueued_at=0.0, attempts=0
    ) is None
    assert OutcomeRecord.from_json('{"outcome": "delivered"}') is None
    assert OutcomeRecord.from_json("not json") is None
    assert OutcomeRecord.from_json(None) is None
    assert OutcomeRecord.from_hash({"outcome": "delivered"}) is None
    assert OutcomeRecord.from_hash({}) is None


def test_the_superseded_head_and_the_newest_version_make_a_whole_record():
    """The claim script's record (the head plus the newest version it found) reads back as a
    superseded record."""
    head = superseded_head(
        at=5.0, merchant="m", order_ref="o", version=3, enqueued_at=1.5, attempts=0
    )
    back = OutcomeRecord.from_json(head + ',"superseded_by":' + str(2**63 - 1) + "}")
    assert back is not None
    assert (back.outcome, back.version, back.superseded_by) == ("superseded", 3, 2**63 - 1)


def test_the_later_of_an_older_hash_record_and_a_json_record_wins():
    """While workers of both releases run, a lookup shows whichever record was written last."""
    earlier = after_attempt(
        "retrying", at=10.0, merchant="m", order_ref="o", version=1, enqueued_at=1.0,
        attempts=1, status=503, next_retry_s=5.0,
    )  # fmt: skip
    later = after_attempt(
        "delivered", at=20.0, merchant="m", order_ref="o", version=1, enqueued_at=1.0,
        attempts=2, status=200,
    )  # fmt: skip
    assert earlier is not None
    assert later is not None
    as_hash = {k: "" if v is None else str(v) for k, v in dataclasses.asdict(later).items()}
    assert from_replies([earlier.to_json(), as_hash]) == later
    assert from_replies([later.to_json(), {}]) == later
    assert from_replies([None, {}]) is None
