"""Fixtures the worker's tests share: the dead-letter store and a dlq command's environment."""

from __future__ import annotations

import os

import pytest

from cartsync.worker.deadletters import DeadLetterStore


@pytest.fixture
def store(redis_client, settings):
    """The dead-letter store of the test Redis, empty."""
    return DeadLetterStore(redis_client, settings.key_prefix)


@pytest.fixture
def env(redis_url):
    """The environment of a dlq command: the test Redis, one merchant, nothing else."""
    cleared = {name: None for name in os.environ if name.startswith("CARTSYNC_")}
    return {
        **cleared,
        "CARTSYNC_REDIS_URL": redis_url,
        "CARTSYNC_SEQURA_USERNAME": "user",
        "CARTSYNC_SEQURA_PASSWORD": "secret-pw",
    }
