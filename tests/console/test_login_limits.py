"""Failed console logins are limited per user name and per client address (Redis counters
that expire), answered 429 with Retry-After, audited and logged without the password."""

from __future__ import annotations

import pytest

from cartsync.worker import keys
from cartsync.worker.web.console.throttle import (
    MAX_ADDRESS_FAILURES,
    MAX_USER_FAILURES,
    WINDOW_S,
    retry_after,
)
from tests.console.conftest import PASSWORD, Browser
from tests.log_events import captured_events

WRONG = "hunter2-not-the-password"


def from_address(console_app, address: str) -> Browser:
    client = console_app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


def attempt(browser: Browser, name: str, password: str = WRONG):
    return browser.post("/console/login", {"username": name, "password": password})


def test_the_wait_is_the_longest_window_among_the_counters_at_their_limit():
    """Below every limit there is no wait; at one, its remaining window (a full window if
    Redis lost the expiry)."""
    assert retry_after([4, 19], [50, 50], [5, 20], 60) is None
    assert retry_after([5, 3], [42, 59], [5, 20], 60) == 42
    assert retry_after([5, 20], [10, 30], [5, 20], 60) == 30
    assert retry_after([5, 0], [-1, -2], [5, 20], 60) == 60


def test_a_user_name_is_locked_after_five_failures_for_a_minute(
    console_app, redis_client, settings, store
):
    """Five wrong passwords are answered 401; the sixth attempt, even with the right
    password and from another address, is answered 429 with Retry-After; the lock-out is
    audited and the counters expire; the password is in no key, log or audit entry."""
    one = from_address(console_app, "192.0.2.10")
    with captured_events() as events:
        for _ in range(MAX_USER_FAILURES):
            assert attempt(one, "operator").status_code == 401
        locked = attempt(one, "operator", PASSWORD)
        elsewhere = attempt(from_address(console_app, "192.0.2.99"), "operator", PASSWORD)
    for answer in (locked, elsewhere):
        assert answer.status_code == 429
        assert 0 < int(answer.headers["Retry-After"]) <= WINDOW_S
        assert "Too many failed logins" in answer.get_data(as_text=True)
    assert attempt(one, "viewer", PASSWORD).status_code == 302  # another name may log in
    [entry] = store.audit_entries(limit=10, action="login")
    assert (entry.by, entry.result) == ("console:operator", "limited")
    assert entry.detail["address"] == "192.0.2.10"
    counters = redis_client.keys(keys.pattern(f"{settings.key_prefix}:console:login-failures"))
    assert len(counters) == 2
    for key in counters:
        assert 0 < redis_client.ttl(key) <= WINDOW_S
        assert b"operator" not in key
    failed = [e for e in events if e["event"] == "console_login_failed"]
    assert len(failed) == MAX_USER_FAILURES
    assert [e for e in events if e["event"] == "console_login_refused"]
    everything = repr(events) + repr(entry) + repr(redis_client.keys("*"))
    assert WRONG not in everything
    assert PASSWORD not in everything


def test_an_address_is_locked_after_twenty_failures_whatever_the_names(console_app):
    """Guessing across many names from one address is stopped too, and only there."""
    guesser = from_address(console_app, "198.51.100.7")
    for n in range(MAX_ADDRESS_FAILURES):
        assert attempt(guesser, f"name-{n}").status_code == 401
    assert attempt(guesser, "admin", PASSWORD).status_code == 429
    assert attempt(from_address(console_app, "198.51.100.8"), "admin", PASSWORD).status_code == 302


@pytest.mark.parametrize("name", ["", "x" * 5000, "名前:with:colons"])
def test_odd_names_are_counted_without_trouble(console_app, name):
    """Any typed name is counted under a digest: no error, a 401."""
    assert attempt(from_address(console_app, "203.0.113.1"), name).status_code == 401
