"""With Redis gone, console pages answer a readable 503 page saying what to check, never a
traceback or JSON (the app's Redis URL points at a closed port)."""

from __future__ import annotations

import socket

from cartsync.worker.web.app import create_app
from tests.console.conftest import PASSWORD, Browser, console_settings, csrf_token, merchants


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_console_pages_answer_a_503_page_with_what_to_check(settings, tmp_path):
    """Every page, for a proxy-named user and at the login, answers 503 as HTML naming
    Redis, the checks and the runbook's section, with Retry-After; the login page itself,
    which needs no Redis, still shows."""
    dead = settings.with_overrides(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(
        console_settings(dead, tmp_path, console_trusted_header="X-Forwarded-User"),
        merchants=merchants(),
    )
    client = app.test_client()
    named = {"X-Forwarded-User": "alice"}
    pages = [
        "/console/",
        "/console/letters",
        "/console/letters?group=signature",
        "/console/letters/1715003155123-8f2a11c0",
        "/console/audit",
        "/console/jobs",
    ]
    for path in pages:
        answer = client.get(path, headers=named)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 503, path
        assert answer.mimetype == "text/html", path
        assert answer.headers["Retry-After"] == "5"
        assert "cannot reach Redis" in body
        assert "redis-cli" in body
        assert "When the console answers 503" in body
        assert "Traceback" not in body
    browser = Browser(app.test_client())
    login_page = browser.get("/console/login")
    assert login_page.status_code == 200
    answer = browser.client.post(
        "/console/login",
        data={
            "username": "operator",
            "password": PASSWORD,
            "csrf_token": csrf_token(login_page.get_data(as_text=True)),
        },
    )
    assert answer.status_code == 503
    assert "cannot reach Redis" in answer.get_data(as_text=True)
