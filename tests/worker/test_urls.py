"""URLs shown to people never carry a password, and never raise."""

import pytest

from cartsync.worker.urls import safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@redis.internal:6380/2", "redis://redis.internal:6380/2"),
        ("rediss://user:hunter2@cache.example.com/0", "rediss://cache.example.com/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://localhost", "redis://localhost"),
    ],
)
def test_user_and_password_are_left_out(url, shown):
    """Scheme, host, port and path stay; the credentials go."""
    assert safe_url(url) == shown


def test_a_url_that_does_not_parse_is_named_not_raised():
    """A malformed port gives a placeholder instead of an exception inside an error message."""
    assert safe_url("redis://:hunter2@host:port/0") == "(unparseable URL)"
