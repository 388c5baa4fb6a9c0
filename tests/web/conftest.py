"""Fixtures of the HTTP service's tests: a real ``cartsync serve`` against the test Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis
import requests

from cartsync.sandbox.server import SandboxServer
from tests.sandbox_fixtures import CAMISAS, SHOP, ZAPATOS
from tests.web.server import BACKEND_TOKEN, WebServer, serve_env


@pytest.fixture(scope="module")
def web_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One ``cartsync serve`` (2 processes, 4 threads each) for a module's tests."""
    server = WebServer(serve_env(redis_url, tmp_path_factory.mktemp("accounts"))).start()
    try:
        yield server
    finally:
        server.stop()


class Web:
    """Requests to the server, with the backend producer's token by default."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(
        self, path: str, body: Any = None, *, token: str | None = BACKEND_TOKEN, **kwargs: Any
    ) -> requests.Response:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["json"] = body
        return self.session.post(self.url + path, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, *, token: str | None = BACKEND_TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.get(self.url + path, headers=headers, timeout=10)

    def status_of(self, update_id: str) -> Any:
        """``GET /v1/updates/{update_id}``'s body; the answer must be 200."""
        answer = self.get(f"/v1/updates/{update_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def became(self, update_id: str, state: str) -> Any:
        """The update's status body once it shows ``state``, else None (for ``wait_for``)."""
        found = self.status_of(update_id)
        return found if found["status"] == state else None

    def put_order(
        self, merchant: str, order_ref: str, body: Any, auth: tuple[str, str] | None, **kwargs: Any
    ) -> requests.Response:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Sequra-Merchant-Id": merchant,
            **kwargs.pop("headers", {}),
        }
        escaped = quote(order_ref, safe="")
        return self.session.put(
            f"{self.url}/merchants/{merchant}/orders/{escaped}",
            json=body,
            auth=auth,
            headers=headers,
            timeout=10,
            **kwargs,
        )


@pytest.fixture
def web(web_server: WebServer, redis_client: redis.Redis) -> Iterator[Web]:
    """A client of the module's server; the test Redis is emptied before each test."""
    client = Web(web_server.url)
    yield client
    client.session.close()


@pytest.fixture(scope="module")
def web_sandbox() -> Iterator[SandboxServer]:
    """A sandbox that knows the three test merchants and creates orders on first update."""
    with SandboxServer(accounts=[SHOP, CAMISAS, ZAPATOS], auto_create=True) as server:
        yield server
