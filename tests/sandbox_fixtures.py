"""Fixtures for talking to the local seQura sandbox: a running sandbox, settings and a client.

Registered for every test by ``tests/conftest.py`` (``pytest_plugins``). The sandbox knows two
merchants, :data:`CAMISAS` and :data:`ZAPATOS`, and does not create orders by itself:
``sandbox.state.create_order`` (or ``sandbox.admin.create_order``) checks one out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cartsync.config.merchants import MerchantAccount
from cartsync.config.settings import Settings, load_settings
from cartsync.sandbox.server import SandboxServer
from cartsync.sandbox.state import Faults
from cartsync.worker.client import SequraClient

CAMISAS = MerchantAccount("camisasonline", "camisas-api", "camisas-pw-7f3a", frozenset())
ZAPATOS = MerchantAccount("zapatos", "zapatos-api", "zapatos-pw-91c2", frozenset())
#: The merchant the pipeline tests (producer, worker, dead letters) send as.
SHOP = MerchantAccount("shop1", "shop1-api", "s3cret-pw", frozenset())
#: Seconds a test client waits for an answer: short, so that time-out tests stay fast.
TEST_READ_TIMEOUT_S = 0.5


def cart(*amounts: int, total: int | None = None) -> dict[str, Any]:
    """A cart of items worth ``amounts`` (cents); ``total`` defaults to their sum."""
    items = [
        {
            "reference": f"ref-{index}",
            "name": f"item {index}",
            "price_with_tax": amount,
            "quantity": 1,
            "total_with_tax": amount,
        }
        for index, amount in enumerate(amounts)
    ]
    return {
        "currency": "EUR",
        "order_total_with_tax": sum(amounts) if total is None else total,
        "items": items,
    }


def order_body(*shipped: int, unshipped: tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    """An update body ``{"order": {...}}`` with these shipped and unshipped item amounts."""
    return {"order": {"unshipped_cart": cart(*unshipped), "shipped_cart": cart(*shipped), **extra}}


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A sandbox on a free loopback port, serving in a background thread."""
    accounts = [CAMISAS, ZAPATOS]
    # hang_s bounds an unanswered call's thread; stop() cuts it short anyway.
    with SandboxServer(accounts=accounts, faults=Faults(hang_s=5.0), seed=7) as server:
        yield server


@pytest.fixture
def sandbox_settings(sandbox: SandboxServer) -> Settings:
    """Settings pointing at the sandbox, with short time-outs (no Redis involved)."""
    return load_settings({}).with_overrides(
        sequra_url=sandbox.url, connect_timeout_s=1.0, read_timeout_s=TEST_READ_TIMEOUT_S
    )


@pytest.fixture
def sequra_client(sandbox_settings: Settings) -> Iterator[SequraClient]:
    """A client for the sandbox, closed after the test."""
    client = SequraClient(sandbox_settings, pool_size=4)
    yield client
    client.close()


@pytest.fixture
def shop_sandbox() -> Iterator[SandboxServer]:
    """A sandbox that knows :data:`SHOP` and creates orders on their first update."""
    with SandboxServer(accounts=[SHOP], auto_create=True) as server:
        yield server
