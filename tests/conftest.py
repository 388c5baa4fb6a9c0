"""Shared fixtures: a real Redis (a database of its own, emptied around each test) and settings.

The Redis is the one at ``CARTSYNC_REDIS_URL`` (``make test`` starts an embedded one when none
answers). Tests use database ``CARTSYNC_TEST_REDIS_DB`` (default 15) of that server and flush
it, so never point the tests at a Redis that holds data you care about in that database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from config.settings import Settings, load_settings
from worker.redisserver import answers

#: The database number the tests use and flush.
TEST_DB = int(os.environ.get("CARTSYNC_TEST_REDIS_DB", "15"))


def _test_redis_url() -> str:
    base = os.environ.get("CARTSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{TEST_DB}", parts.query, ""))


# Whatever reads settings from the environment (the Celery app, CLI commands, worker
# subprocesses) must use the test database too.
os.environ["CARTSYNC_REDIS_URL"] = _test_redis_url()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _test_redis_url()
    if not answers(url):
        pytest.fail(f"no Redis answers at {url}: run the tests with `make test`")
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(redis_url: str, redis_client: redis.Redis) -> Settings:
    """Settings for a test: the test Redis, the environment otherwise ignored."""
    return load_settings({}).with_overrides(redis_url=redis_url)
