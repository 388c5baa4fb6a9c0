"""Redis going away while the service takes updates: 503 with Retry-After, or 202 and the update
is in Redis, never anything in between."""

from __future__ import annotations

import threading
import time

import pytest
import redis
import requests

from cartsync.worker import keys
from cartsync.worker.redisserver import EmbeddedRedis
from tests.sandbox_fixtures import SHOP
from tests.support import wait_for
from tests.web.bodies import shipped
from tests.web.server import BACKEND_TOKEN, WebServer, serve_env

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {BACKEND_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def own_redis():
    server = EmbeddedRedis(persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(own_redis, tmp_path):
    web = WebServer(serve_env(own_redis.url, tmp_path), workers=1, threads=4).start()
    try:
        yield web
    finally:
        web.stop()


def test_while_redis_is_down_updates_get_503_and_none_accepted_is_lost(own_redis, service):
    """Updates sent while Redis is killed and restarted are each answered 202 (and are then in
    Redis after the restart) or 503 with Retry-After; readiness follows Redis."""
    answers: list[tuple[str, requests.Response | None]] = []
    stop = threading.Event()

    def send() -> None:
        session = requests.Session()
        for i in range(400):
            if stop.is_set():
                return
            ref = f"R{i}"
            try:
                answer = session.post(
                    service.url + "/v1/updates",
                    json=shipped(SHOP.ref, ref),
                    headers=HEADERS,
                    timeout=15,
                )
            except requests.RequestException:
                answer = None
            answers.append((ref, answer))
            time.sleep(0.005)

    sender = threading.Thread(target=send)
    sender.start()
    wait_for(lambda: len(answers) >= 20, what="some answers before the kill")
    own_redis.kill()
    down = requests.post(
        service.url + "/v1/updates", json=shipped(SHOP.ref, "D"), headers=HEADERS, timeout=15
    )
    assert down.status_code == 503
    assert down.headers["Retry-After"].isdigit()
    assert "errors" in down.json()
    put = requests.put(
        f"{service.url}/merchants/{SHOP.ref}/orders/D",
        json=shipped(SHOP.ref, "D"),
        auth=(SHOP.username, SHOP.password),
        timeout=15,
    )
    assert put.status_code == 503
    assert isinstance(put.json()["errors"], list)
    assert requests.get(service.url + "/readyz", timeout=15).status_code == 503
    time.sleep(0.5)
    own_redis.start()
    wait_for(
        lambda: requests.get(service.url + "/readyz", timeout=15).status_code == 200, what="ready"
    )
    wait_for(lambda: len(answers) >= 60 or not sender.is_alive(), what="answers after the restart")
    stop.set()
    sender.join(timeout=60)

    client = redis.Redis.from_url(own_redis.url)
    codes = [answer.status_code if answer is not None else None for _, answer in answers]
    assert set(codes) <= {202, 503}, codes
    assert 202 in codes[-5:], "the service takes updates again once Redis is back"
    for ref, answer in answers:
        assert answer is not None
        if answer.status_code == 202:
            update_id = answer.json()["update_id"]
            assert client.get(keys.update("cartsync", update_id)) is not None, ref
            assert client.hget(keys.order("cartsync", SHOP.ref, ref), "enqueued") is not None
        else:
            assert answer.headers["Retry-After"].isdigit()
    client.close()
