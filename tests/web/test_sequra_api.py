"""seQura's own call, drop-in: PUT /merchants/{merchant-ref}/orders/{order-ref}."""

from __future__ import annotations

import json
import socket

import pytest

from cartsync.tasks import codec
from cartsync.worker.ledger import Ledger
from tests.sandbox_fixtures import CAMISAS, SHOP, ZAPATOS
from tests.web.bodies import shipped, with_bad_quantity, without_identity

SHOP_AUTH = (SHOP.username, SHOP.password)


def versions(redis_client, merchant, order_ref):
    return Ledger(redis_client, "cartsync").versions(merchant, order_ref)


def test_an_update_with_the_merchants_credentials_is_accepted(web, redis_client):
    """A valid body with the merchant's seQura credentials is answered 202 and is in the ledger."""
    answer = web.put_order(SHOP.ref, "A1", shipped(SHOP.ref, "A1"), SHOP_AUTH)
    assert answer.status_code == 202
    assert answer.json()["status"] == "enqueued"
    assert versions(redis_client, SHOP.ref, "A1") == (1, 0)


def test_an_invalid_body_is_refused_with_seQuras_409(web, redis_client):
    """An invalid body gets 409 with seQura's error shape, naming the field's path."""
    answer = web.put_order(SHOP.ref, "A1", with_bad_quantity(shipped(SHOP.ref, "A1")), SHOP_AUTH)
    assert answer.status_code == 409
    errors = answer.json()["errors"]
    assert errors[0].startswith("Invalid data: order.shipped_cart.items.1.quantity: ")
    assert versions(redis_client, SHOP.ref, "A1") == (0, 0)


@pytest.mark.parametrize(
    "auth", [None, (SHOP.username, "wrong"), ("nobody", "x")], ids=["none", "wrong", "unknown"]
)
def test_credentials_of_nobody_get_seQuras_401(web, auth):
    """Missing or unknown credentials get 401 with seQura's text, Access denied."""
    answer = web.put_order(SHOP.ref, "A1", shipped(SHOP.ref, "A1"), auth)
    assert answer.status_code == 401
    assert answer.json() == {"errors": ["Access denied"]}


def test_another_merchants_credentials_get_seQuras_403(web, redis_client):
    """Valid credentials of another merchant get 403 with seQura's text; nothing is queued."""
    answer = web.put_order(
        SHOP.ref, "A1", shipped(SHOP.ref, "A1"), (ZAPATOS.username, ZAPATOS.password)
    )
    assert answer.status_code == 403
    assert answer.json() == {"errors": ["You do not have access to this URL"]}
    assert versions(redis_client, SHOP.ref, "A1") == (0, 0)


def test_a_sequra_merchant_id_naming_another_merchant_gets_403(web):
    """A Sequra-Merchant-Id header that is not the URL's merchant is refused as seQura would."""
    answer = web.put_order(
        SHOP.ref,
        "A1",
        shipped(SHOP.ref, "A1"),
        SHOP_AUTH,
        headers={"Sequra-Merchant-Id": CAMISAS.ref},
    )
    assert answer.status_code == 403


def test_the_url_fills_in_a_body_without_merchant_and_order(web, redis_client):
    """A body that leaves out merchant id and order-ref takes them from the URL."""
    answer = web.put_order(
        SHOP.ref, "A14/12345", without_identity(shipped(SHOP.ref, "x")), SHOP_AUTH
    )
    assert answer.status_code == 202
    assert versions(redis_client, SHOP.ref, "A14/12345") == (1, 0)


@pytest.mark.parametrize("url_order", ["B2", "A1"])
def test_a_body_naming_another_order_or_merchant_is_refused(web, url_order):
    """The URL's merchant and order-ref must be the body's: a mismatch is a 409 naming the path."""
    body = shipped(CAMISAS.ref if url_order == "A1" else SHOP.ref, "A1")
    answer = web.put_order(SHOP.ref, url_order, body, SHOP_AUTH)
    assert answer.status_code == 409
    path = "order.merchant.id" if url_order == "A1" else "order.merchant_reference.order_ref_1"
    assert any(text.startswith(f"Invalid data: {path}: ") for text in answer.json()["errors"])


def test_a_php_client_request_is_accepted(web_server, web, redis_client):
    """seQura's PHP client (HTTP/1.0, unescaped slash in the order-ref, no Sequra-Merchant-Id)
    is answered 202 and the update is queued for the order-ref it spells."""
    import base64

    payload = json.dumps(shipped(SHOP.ref, "A14/12345")).encode()
    credentials = base64.b64encode(f"{SHOP.username}:{SHOP.password}".encode()).decode()
    request = (
        f"PUT /merchants/{SHOP.ref}/orders/A14/12345 HTTP/1.0\r\n"
        f"Host: 127.0.0.1:{web_server.port}\r\n"
        f"Authorization: Basic {credentials}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", web_server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw.split(b"\r\n", 1)[0].split(b" ")[1] == b"202"
    assert versions(redis_client, SHOP.ref, "A14/12345") == (1, 0)


def test_a_body_over_the_size_limit_gets_413(web):
    """A body larger than the codec's limit is refused with 413 before it is read."""
    data = b'{"order": "' + b"x" * codec.MAX_BODY_BYTES + b'"}'
    answer = web.session.put(
        f"{web.url}/merchants/{SHOP.ref}/orders/A1",
        data=data,
        auth=SHOP_AUTH,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 413
    assert isinstance(answer.json()["errors"], list)


def test_a_non_json_content_type_gets_415(web):
    """A form-encoded body is refused with 415 in seQura's error shape."""
    answer = web.session.put(
        f"{web.url}/merchants/{SHOP.ref}/orders/A1",
        data="a=b",
        auth=SHOP_AUTH,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert answer.status_code == 415
    assert isinstance(answer.json()["errors"], list)


def test_a_body_that_is_not_json_gets_409(web):
    """Text that is not JSON is seQura's 409 Invalid data, naming where it breaks."""
    answer = web.session.put(
        f"{web.url}/merchants/{SHOP.ref}/orders/A1",
        data=b'{"order": NaN}',
        auth=SHOP_AUTH,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 409
    assert answer.json()["errors"][0].startswith("Invalid data: order: ")
