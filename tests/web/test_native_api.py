"""The native API: POST /v1/updates and /v1/updates/batch with producers' bearer tokens."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from cartsync.tasks import codec
from cartsync.worker import keys
from cartsync.worker.ledger import Ledger
from tests.sandbox_fixtures import CAMISAS, SHOP, ZAPATOS
from tests.web.bodies import shipped, with_bad_quantity
from tests.web.server import BACKEND_TOKEN, EVERY_TOKEN, ZAPATERO_TOKEN


def scheduled(redis_client) -> int:
    return int(redis_client.zcard(keys.schedule("cartsync")))


def test_an_update_is_answered_with_its_id_version_and_status(web, redis_client):
    """A valid update gets 202 with update id, version and status, and is scheduled."""
    answer = web.post("/v1/updates", shipped(SHOP.ref, "A1"))
    assert answer.status_code == 202
    found = answer.json()
    assert found["status"] == "enqueued"
    assert found["version"] == 1
    assert found["update_id"]
    assert scheduled(redis_client) == 1


def test_order_version_sets_the_producers_own_version(web, redis_client):
    """Order-Version becomes the update's version; an older one afterwards is superseded."""
    first = web.post("/v1/updates", shipped(SHOP.ref, "A1"), headers={"Order-Version": "7"})
    assert first.json()["version"] == 7
    older = web.post("/v1/updates", shipped(SHOP.ref, "A1"), headers={"Order-Version": "5"})
    assert older.status_code == 202
    assert older.json()["status"] == "superseded"
    assert Ledger(redis_client, "cartsync").versions(SHOP.ref, "A1") == (7, 0)


def test_an_invalid_update_gets_422_with_errors_by_path(web, redis_client):
    """An invalid body gets 422 {"errors": {path: [messages]}} and nothing is scheduled."""
    answer = web.post("/v1/updates", with_bad_quantity(shipped(SHOP.ref, "A1")))
    assert answer.status_code == 422
    assert list(answer.json()["errors"]) == ["order.shipped_cart.items.1.quantity"]
    assert scheduled(redis_client) == 0


@pytest.mark.parametrize("header", ["abc", "0", "-1", "1.5"])
def test_a_malformed_order_version_gets_422(web, header):
    """Order-Version must be a whole number of at least 1."""
    answer = web.post("/v1/updates", shipped(SHOP.ref, "A1"), headers={"Order-Version": header})
    assert answer.status_code == 422
    assert "Order-Version" in answer.json()["errors"]


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["none", "unknown"])
def test_no_or_an_unknown_token_gets_401(web, token, redis_client):
    """Without a known bearer token the answer is 401 and nothing is scheduled."""
    answer = web.post("/v1/updates", shipped(SHOP.ref, "A1"), token=token)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert scheduled(redis_client) == 0


def test_a_token_used_for_a_merchant_it_is_not_scoped_to_gets_403(web, redis_client):
    """A producer may send only for its merchants: another merchant's update is refused."""
    answer = web.post("/v1/updates", shipped(SHOP.ref, "A1"), token=ZAPATERO_TOKEN)
    assert answer.status_code == 403
    assert "order.merchant.id" in answer.json()["errors"]
    assert scheduled(redis_client) == 0
    assert (
        web.post("/v1/updates", shipped(ZAPATOS.ref, "A1"), token=ZAPATERO_TOKEN).status_code == 202
    )


def test_a_merchant_without_an_account_gets_422(web):
    """An update for a merchant cartsync has no seQura account for is refused by path."""
    answer = web.post("/v1/updates", shipped("nobody", "A1"), token=EVERY_TOKEN)
    assert answer.status_code == 422
    assert "order.merchant.id" in answer.json()["errors"]


def test_a_non_json_content_type_gets_415(web):
    """Only application/json is taken by POST /v1/updates."""
    answer = web.post(
        "/v1/updates",
        data=json.dumps(shipped(SHOP.ref, "A1")),
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status_code == 415


def test_a_body_over_the_size_limit_gets_413(web):
    """A body over tasks/codec.MAX_BODY_BYTES gets 413."""
    data = b'{"order": "' + b"x" * codec.MAX_BODY_BYTES + b'"}'
    assert web.post("/v1/updates", data=data).status_code == 413


def test_the_same_idempotency_key_answers_the_first_result(web, redis_client):
    """Sending again with the same Idempotency-Key answers the first result, enqueues nothing."""
    body = shipped(SHOP.ref, "A1")
    first = web.post("/v1/updates", body, headers={"Idempotency-Key": "order-A1-7"})
    again = web.post("/v1/updates", body, headers={"Idempotency-Key": "order-A1-7"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert scheduled(redis_client) == 1


def test_an_idempotency_key_in_the_body_works_like_the_header(web, redis_client):
    """``idempotency_key`` beside ``order`` is the header's equivalent."""
    body = {**shipped(SHOP.ref, "A1"), "idempotency_key": "k1", "version": 3}
    first, again = web.post("/v1/updates", body), web.post("/v1/updates", body)
    assert first.json() == again.json()
    assert first.json()["version"] == 3
    assert scheduled(redis_client) == 1


def test_an_idempotency_key_reused_for_another_body_gets_422(web, redis_client):
    """A key already used for a different update is refused, not answered with the first result."""
    web.post("/v1/updates", shipped(SHOP.ref, "A1"), headers={"Idempotency-Key": "k"})
    other = web.post("/v1/updates", shipped(SHOP.ref, "A2"), headers={"Idempotency-Key": "k"})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["errors"]
    assert scheduled(redis_client) == 1


def test_two_concurrent_requests_with_the_same_key_enqueue_once(web_server, web, redis_client):
    """Pairs of simultaneous requests sharing a key: each pair enqueues exactly once, and both
    of a pair are answered with the same update id and version."""
    pairs = 12
    barrier = threading.Barrier(pairs * 2)
    answers: dict[int, list[dict]] = {i: [] for i in range(pairs)}
    lock = threading.Lock()

    def send(i: int) -> None:
        session = requests.Session()
        body = shipped(SHOP.ref, f"C{i}")
        headers = {
            "Authorization": f"Bearer {BACKEND_TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"same-{i}",
        }
        barrier.wait()
        answer = session.post(web.url + "/v1/updates", json=body, headers=headers, timeout=10)
        with lock:
            answers[i].append({"code": answer.status_code, **answer.json()})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(pairs) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert scheduled(redis_client) == pairs
    for i in range(pairs):
        first, second = answers[i]
        assert first["code"] == second["code"] == 202
        assert (first["update_id"], first["version"]) == (second["update_id"], second["version"])
        assert Ledger(redis_client, "cartsync").versions(SHOP.ref, f"C{i}") == (1, 0)


def test_two_concurrent_requests_with_one_key_and_different_bodies_enqueue_one(
    web_server, web, redis_client
):
    """Pairs of simultaneous requests sharing a key but not a body: in each pair exactly one
    is accepted and the other refused with 422 naming the key (the receipt is checked in the
    same atomic step that accepts), and the order that was accepted is the one enqueued."""
    pairs = 10
    barrier = threading.Barrier(pairs * 2)
    answers: dict[int, list[tuple[str, int]]] = {i: [] for i in range(pairs)}
    lock = threading.Lock()

    def send(i: int, ref: str) -> None:
        headers = {
            "Authorization": f"Bearer {BACKEND_TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"clash-{i}",
        }
        barrier.wait()
        answer = requests.post(
            web.url + "/v1/updates", json=shipped(SHOP.ref, ref), headers=headers, timeout=10
        )
        with lock:
            answers[i].append((ref, answer.status_code))

    threads = [
        threading.Thread(target=send, args=(i, f"D{i}{side}"))
        for i in range(pairs)
        for side in "ab"
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert scheduled(redis_client) == pairs
    ledger = Ledger(redis_client, "cartsync")
    for i in range(pairs):
        codes = sorted(code for _, code in answers[i])
        assert codes == [202, 422]
        (won,) = [ref for ref, code in answers[i] if code == 202]
        (lost,) = [ref for ref, code in answers[i] if code == 422]
        assert ledger.versions(SHOP.ref, won) == (1, 0)
        assert ledger.versions(SHOP.ref, lost) == (0, 0)


def test_a_batch_answers_each_item_on_its_own(web, redis_client):
    """Good and bad items in one batch: the good are enqueued, each bad one names its errors."""
    items = [
        shipped(SHOP.ref, "B1"),
        with_bad_quantity(shipped(SHOP.ref, "B2")),
        shipped(ZAPATOS.ref, "B3"),  # not this token's merchant
        {**shipped(CAMISAS.ref, "B4"), "version": 4},
    ]
    answer = web.post("/v1/updates/batch", items)
    assert answer.status_code == 200
    found = answer.json()
    assert [r["code"] for r in found["results"]] == [202, 422, 403, 202]
    assert found["results"][3]["version"] == 4
    assert (found["accepted"], found["refused"]) == (2, 2)
    assert scheduled(redis_client) == 2


def test_a_batch_in_json_lines_with_a_broken_line(web, redis_client):
    """JSON Lines: a line that is not JSON is refused alone; the others are enqueued."""
    lines = [
        json.dumps(shipped(SHOP.ref, "L1")),
        '{"order": NaN}',
        json.dumps(shipped(SHOP.ref, "L2")),
    ]
    answer = web.post(
        "/v1/updates/batch",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 200
    assert [r["code"] for r in answer.json()["results"]] == [202, 422, 202]
    assert scheduled(redis_client) == 2


def test_a_batch_sent_again_with_the_same_key_enqueues_nothing_more(web, redis_client):
    """An Idempotency-Key on a batch makes each item's key, so resending it is harmless."""
    items = [shipped(SHOP.ref, "R1"), shipped(SHOP.ref, "R2")]
    first = web.post("/v1/updates/batch", items, headers={"Idempotency-Key": "batch-1"})
    again = web.post("/v1/updates/batch", items, headers={"Idempotency-Key": "batch-1"})
    assert first.json()["results"] == again.json()["results"]
    assert scheduled(redis_client) == 2


def test_a_batch_over_the_item_limit_gets_413(web, redis_client):
    """More items than the server's --batch-max (20 here) is refused whole with 413."""
    items = [shipped(SHOP.ref, f"M{i}") for i in range(21)]
    assert web.post("/v1/updates/batch", items).status_code == 413
    assert scheduled(redis_client) == 0


def test_a_batch_that_is_no_array_gets_422(web):
    """A JSON object where an array of updates belongs is refused with 422."""
    assert web.post("/v1/updates/batch", shipped(SHOP.ref, "A1")).status_code == 422


def test_access_logs_hold_no_credentials_or_payload(web_server, web):
    """The access log names route, status and ids, never the token, a password or the body."""
    web.post("/v1/updates", shipped(SHOP.ref, "LOG1"))
    web.put_order(SHOP.ref, "LOG2", shipped(SHOP.ref, "LOG2"), (SHOP.username, SHOP.password))
    text = web_server.log_text()
    assert "shirt1234" not in text
    assert "jacket" not in text
    assert SHOP.password not in text
    assert "backend-token" not in text
    assert any(e.get("url") == "POST /v1/updates" for e in web_server.events())
