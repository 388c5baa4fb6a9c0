"""The HTTP API refuses at the door what the worker could not send, as the CLI and Python do.

Versions are whole numbers from 1 to 2**63-1 in the Order-Version header and the native
envelope alike, and travel exactly; a blank order-ref and values JSON cannot carry are refused
naming their path.
"""

from __future__ import annotations

import pytest

from cartsync.tasks import codec
from cartsync.tasks.message import MAX_VERSION
from cartsync.tasks.schemas.fields import BLANK_IDENTIFIER
from cartsync.worker import keys
from cartsync.worker.errors import InvalidUpdate
from cartsync.worker.ledger import Ledger
from cartsync.worker.web import bodies
from tests.sandbox_fixtures import SHOP
from tests.web.bodies import shipped


def scheduled(redis_client) -> int:
    return int(redis_client.zcard(keys.schedule("cartsync")))


@pytest.mark.parametrize("header", ["²", "١", "1.5", "0", str(MAX_VERSION + 1), "9" * 40, " "])
def test_an_order_version_header_out_of_range_is_refused(header):
    """Only ASCII digits from 1 to 2**63-1: ``²`` (a digit to str.isdigit, not to int) and
    Arabic-Indic digits included, each refused as Order-Version, never raised on."""
    with pytest.raises(InvalidUpdate) as caught:
        bodies.order_version(header)
    assert list(caught.value.errors) == ["Order-Version"]


@pytest.mark.parametrize("version", [1.5, 2.0, True, "7", 0])
def test_an_envelope_version_that_is_no_whole_number_is_refused(version):
    """The native envelope's ``version`` must be an int: a float, however whole, is refused."""
    envelope = bodies.open_envelope({"order": {}, "version": version}, key=None, version=None)
    assert list(envelope.errors) == ["version"]


def test_an_order_version_of_2_63_minus_1_travels_exactly(web, redis_client):
    """The highest version is answered, recorded and scheduled as that very integer."""
    answer = web.post(
        "/v1/updates", shipped(SHOP.ref, "V1"), headers={"Order-Version": str(MAX_VERSION)}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["version"] == MAX_VERSION
    assert Ledger(redis_client, "cartsync").versions(SHOP.ref, "V1") == (MAX_VERSION, 0)


def test_a_superscript_order_version_gets_422_not_500(web, redis_client):
    """An Order-Version of ``²`` is a 422 naming the header, and nothing is scheduled."""
    answer = web.post("/v1/updates", shipped(SHOP.ref, "V2"), headers={"Order-Version": "²"})
    assert answer.status_code == 422
    assert list(answer.json()["errors"]) == ["Order-Version"]
    assert scheduled(redis_client) == 0


def test_nan_under_an_unknown_key_gets_422_naming_it(web, redis_client):
    """A body whose unknown key holds NaN is refused by path, as validate and enqueue refuse it."""
    text = '{"order": {"note": NaN}}'
    answer = web.post("/v1/updates", data=text)
    assert answer.status_code == 422
    assert answer.json()["errors"] == {"order.note": [codec.NOT_FINITE]}
    assert scheduled(redis_client) == 0


def test_a_blank_order_ref_in_the_url_gets_seQuras_409_naming_it(web, redis_client):
    """A drop-in PUT for order-ref ``%20`` fills a blank order_ref_1 in, refused by path."""
    body = shipped(SHOP.ref, " ")
    answer = web.put_order(SHOP.ref, " ", body, auth=(SHOP.username, SHOP.password))
    assert answer.status_code == 409
    expected = f"Invalid data: order.merchant_reference.order_ref_1: {BLANK_IDENTIFIER}"
    assert expected in answer.json()["errors"]
    assert scheduled(redis_client) == 0
