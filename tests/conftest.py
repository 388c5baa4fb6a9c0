"""Shared fixtures: a real Redis (a database of its own, emptied around each test) and settings.

The Redis is the one at ``CARTSYNC_REDIS_URL`` (``make test`` starts an embedded one when none
answers). Tests use database ``CARTSYNC_TEST_REDIS_DB`` of that server, or else the highest
numbered one (15, 14, ...) that no other test session holds, and flush it: never point the
tests at a Redis that holds data you care about in databases 1 to 15.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from cartsync.config.settings import Settings, load_settings
from cartsync.worker.redisserver import answers

pytest_plugins = ["tests.sandbox_fixtures"]

# A busy CI machine must not turn a slow example into a failure: no per-example deadline.
hypothesis_settings.register_profile("cartsync", deadline=None)
hypothesis_settings.load_profile("cartsync")

#: Databases the tests may use, highest first; each test run takes one nobody else holds.
TEST_DBS = range(15, 0, -1)
#: Key that marks a database as taken by a running test session.
CLAIM_KEY = "cartsync-test-session"


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def _claim_test_db(base: str) -> int:
    """The database for this test session: CARTSYNC_TEST_REDIS_DB, else the first free one.

    Two test sessions on one Redis (two terminals, parallel CI jobs) would otherwise flush
    each other's data in the middle of a test.
    """
    if "CARTSYNC_TEST_REDIS_DB" in os.environ:
        return int(os.environ["CARTSYNC_TEST_REDIS_DB"])
    for db in TEST_DBS:
        try:
            client = redis.Redis.from_url(_with_db(base, db), socket_connect_timeout=1)
            holder = client.get(CLAIM_KEY)
            if holder is None or not _alive(int(holder)):
                client.set(CLAIM_KEY, os.getpid())
                atexit.register(client.delete, CLAIM_KEY)
                return db
        except redis.RedisError:
            break
    return TEST_DBS[0]


def _alive(pid: int) -> bool:
    """Whether the test session that claimed a database still runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_BASE_URL = os.environ.get("CARTSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_REDIS_URL = _with_db(_BASE_URL, _claim_test_db(_BASE_URL))

# Whatever reads settings from the environment (the Celery app, CLI commands, worker
# subprocesses) must use the test database too.
os.environ["CARTSYNC_REDIS_URL"] = TEST_REDIS_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = TEST_REDIS_URL
    if not answers(url):
        pytest.fail(f"no Redis answers at {url}: run the tests with `make test`")
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    _flush(client)
    yield client
    _flush(client)
    client.close()


def _flush(client: redis.Redis) -> None:
    """Empty the test database but keep this session's claim on it."""
    client.flushdb()
    client.set(CLAIM_KEY, os.getpid())


@pytest.fixture
def settings(redis_url: str, redis_client: redis.Redis) -> Settings:
    """Settings for a test: the test Redis, the environment otherwise ignored."""
    return load_settings({}).with_overrides(redis_url=redis_url)
