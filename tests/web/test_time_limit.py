"""The request time limit (``CARTSYNC_HTTP_REQUEST_TIMEOUT_S``): a request never hangs on a
Redis that stops answering, nor on a client that stops sending; it is answered 503 with
Retry-After, and nothing is half-written."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
import requests

from cartsync.worker import keys
from tests.sandbox_fixtures import SHOP
from tests.support import wait_for
from tests.web.bodies import shipped
from tests.web.server import BACKEND_TOKEN, WebServer, serve_env
from tests.web.stall_proxy import StallingProxy

pytestmark = pytest.mark.slow

#: The service's time limit in these tests, seconds.
LIMIT_S = 1.0
#: How long the client waits: a request still unanswered by then hangs.
CLIENT_WAIT_S = 4 * LIMIT_S
HEADERS = {"Authorization": f"Bearer {BACKEND_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def proxy(redis_url: str) -> Iterator[StallingProxy]:
    parts = urlsplit(redis_url)
    stalling = StallingProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    try:
        yield stalling
    finally:
        stalling.stalled.clear()
        stalling.close()


@pytest.fixture
def service(redis_url, redis_client, proxy, tmp_path) -> Iterator[WebServer]:
    path = urlsplit(redis_url).path
    env = serve_env(
        f"redis://127.0.0.1:{proxy.port}{path}",
        tmp_path,
        CARTSYNC_HTTP_REQUEST_TIMEOUT_S=str(LIMIT_S),
    )
    web = WebServer(env, workers=1, threads=4).start()
    try:
        yield web
    finally:
        web.stop()


def messages_of(client: redis.Redis, update_id: str) -> int:
    """Messages of ``update_id`` waiting in the schedule (no worker runs here)."""
    pattern = '{"update_id":"' + update_id + '",*'
    return sum(1 for _ in client.zscan_iter(keys.schedule("cartsync"), match=pattern))


def test_a_stalled_redis_is_answered_503_within_the_limit_and_the_retry_enqueues_once(
    service, proxy, redis_client
):
    """While Redis does not answer, an update is answered 503 with Retry-After instead of
    hanging; once it answers again, the same request (same key) is accepted, and the update
    is in Redis exactly once, whether or not the stalled step ran later."""
    key = {"Idempotency-Key": "stall-1"}
    body = shipped(SHOP.ref, "T1")
    assert (
        requests.post(
            service.url + "/v1/updates", json=shipped(SHOP.ref, "T0"), headers=HEADERS, timeout=5
        ).status_code
        == 202
    )  # the service's connections are open and its script loaded
    proxy.stalled.set()
    late = requests.post(
        service.url + "/v1/updates", json=body, headers={**HEADERS, **key}, timeout=CLIENT_WAIT_S
    )
    assert late.status_code == 503
    assert late.headers["Retry-After"].isdigit()
    assert "errors" in late.json()
    batch = requests.post(
        service.url + "/v1/updates/batch",
        json=[shipped(SHOP.ref, "T2"), shipped(SHOP.ref, "T3")],
        headers={**HEADERS, "Idempotency-Key": "stall-batch"},
        timeout=CLIENT_WAIT_S,
    )
    assert batch.status_code == 503
    assert batch.headers["Retry-After"].isdigit()
    proxy.stalled.clear()
    again = wait_for(
        lambda: (
            answer
            if (
                answer := requests.post(
                    service.url + "/v1/updates",
                    json=body,
                    headers={**HEADERS, **key},
                    timeout=CLIENT_WAIT_S,
                )
            ).status_code
            == 202
            else None
        ),
        what="an answer once Redis answers",
    )
    update_id = again.json()["update_id"]
    assert messages_of(redis_client, update_id) == 1
    assert redis_client.exists(keys.receipt("cartsync", update_id))
    assert redis_client.exists(keys.update("cartsync", update_id))


def test_a_client_that_stops_sending_its_body_is_answered_503_within_the_limit(service):
    """A request whose body stops halfway is answered 503 with Retry-After once the limit has
    passed, and the connection is closed: no thread waits on it for ever."""
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_WAIT_S) as sock:
        sock.sendall(
            b"POST /v1/updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {BACKEND_TOKEN}\r\n".encode()
            + b'Content-Length: 1000\r\n\r\n{"order": '
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"503", answer[:300]
    assert b"retry-after:" in answer.lower()
