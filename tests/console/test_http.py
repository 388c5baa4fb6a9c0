"""The console over HTTP (Flask's test client): roles enforced by the server, CSRF, headers,
session expiry, start-up refusal, and each action through the store and replay code."""

from __future__ import annotations

import json
import time

import pytest

from cartsync.config.settings import load_settings
from cartsync.worker.errors import ConfigurationError
from cartsync.worker.schedule import Schedule
from cartsync.worker.web.app import create_app
from cartsync.worker.web.console.access import LOGIN_AT_KEY
from cartsync.worker.web.console.masking import MASK
from tests.console.conftest import Browser, console_settings, csrf_token, merchants
from tests.worker.dlq_support import make_letter


def bad_total_letter(store, **kwargs):
    """A parked 409 whose shipped cart's total is 42 cents off, with a customer on it."""
    letter = make_letter(**kwargs)
    order = letter.payload["order"]
    order["shipped_cart"]["order_total_with_tax"] += 42
    order["customer"] = {
        "given_names": "María José",
        "surnames": "Barroso",
        "email": "mj@example.com",
    }
    store.park(letter)
    return letter


def test_nobody_is_sent_to_log_in_and_refused_changes(browser):
    """Pages redirect to the login page; a POST without a session is refused with 401."""
    answer = browser.get("/console/letters?reason=conflict")
    assert answer.status_code == 302
    assert "/console/login?next=" in answer.headers["Location"]
    assert browser.post("/console/replay", {"ids": "1715003155123-8f2a11c0"}).status_code == 401


def test_a_wrong_password_is_refused(browser):
    """A wrong password gets the login page again with 401 and no session."""
    answer = browser.post("/console/login", {"username": "operator", "password": "nope"})
    assert answer.status_code == 401
    assert "wrong password" in answer.get_data(as_text=True)
    assert browser.get("/console/").status_code == 302


def test_a_viewer_reads_masked_but_cannot_act_or_reveal(as_role, store):
    """The server answers a viewer's edit, replay, drop, export, reveal and purge with 403."""
    letter = bad_total_letter(store)
    viewer = as_role("viewer")
    page = viewer.get(f"/console/letters/{letter.id}").get_data(as_text=True)
    assert MASK in page
    assert "Barroso" not in page
    assert "mj@example.com" not in page
    assert "Dry-run replay" not in page
    assert "Reveal" not in page
    ids = {"ids": letter.id}
    assert viewer.get(f"/console/letters/{letter.id}/edit").status_code == 403
    paths = ["/replay/plan", "/replay", "/drop/plan", "/drop", "/export", "/purge/plan", "/purge"]
    paths += [f"/letters/{letter.id}/reveal", f"/letters/{letter.id}/edit"]
    for path in ["/console" + p for p in paths]:
        assert (
            viewer.post(path, {**ids, "reason_text": "x", "older_than": "1s"}).status_code == 403
        ), path
    assert store.load(letter.id).letter == letter
    assert as_role("operator").post(f"/console/letters/{letter.id}/reveal").status_code == 403


def test_a_post_without_the_csrf_token_is_refused(as_role, store):
    """Every change needs the session's CSRF token, the login included."""
    letter = bad_total_letter(store)
    operator = as_role("operator")
    assert operator.post("/console/replay", {"ids": letter.id}, token=False).status_code == 400
    assert (
        operator.post("/console/replay", {"ids": letter.id, "csrf_token": "forged"}).status_code
        == 400
    )
    fresh = Browser(operator.client.application.test_client())
    login = fresh.post("/console/login", {"username": "admin", "password": "x"}, token=False)
    assert login.status_code == 400
    assert store.load(letter.id).letter == letter


def test_security_headers_are_on_every_console_response(as_role, browser):
    """CSP without inline scripts, no framing, nosniff, a referrer policy, no caching."""
    for answer in (browser.get("/console/login"), as_role("viewer").get("/console/"),
                   browser.get("/console/static/console/console.js")):  # fmt: skip
        headers = answer.headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
    page = as_role("viewer").get("/console/").get_data(as_text=True)
    assert "<script>" not in page
    assert " on" + "click=" not in page


def test_the_session_cookie_is_http_only_and_the_login_expires(as_role, console_app):
    """The cookie is HttpOnly and SameSite; a login older than the lifetime sends the user to
    log in again."""
    operator = as_role("operator")
    cookie = operator.client.get_cookie("cartsync_console", path="/console")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert operator.get("/console/").status_code == 200
    ttl = console_app.extensions["cartsync.console"].settings.console_session_ttl_s
    with operator.client.session_transaction("/console/") as session:
        session[LOGIN_AT_KEY] = time.time() - ttl - 1
    answer = operator.get("/console/")
    assert answer.status_code == 302
    assert "/console/login" in answer.headers["Location"]
    assert "expired" in operator.get(answer.headers["Location"]).get_data(as_text=True)


def test_the_console_refuses_to_start_without_a_secret_key(settings, tmp_path):
    """A console configured without CARTSYNC_CONSOLE_SECRET_KEY stops the app with one line
    naming it; without users or a proxy header there is no console at all."""
    configured = console_settings(settings, tmp_path).with_overrides(console_secret_key="")
    with pytest.raises(ConfigurationError, match="CARTSYNC_CONSOLE_SECRET_KEY"):
        create_app(configured, merchants=merchants())
    plain = create_app(settings, merchants=merchants())
    assert plain.test_client().get("/console/").status_code == 404
    key = "k" * 40
    assert key not in repr(load_settings({"CARTSYNC_CONSOLE_SECRET_KEY": key}))


def test_a_trusted_proxy_header_names_the_user_and_role(settings, tmp_path, store):
    """With a trusted header the proxy's user acts with the role header's role; the audit
    names that user; a request without the header must log in."""
    app = create_app(
        console_settings(settings, tmp_path, console_trusted_header="X-Forwarded-User",
                         console_role_header="X-Forwarded-Role"),
        merchants=merchants(),
    )  # fmt: skip
    client = app.test_client()
    letter = make_letter()
    store.park(letter)
    headers = {"X-Forwarded-User": "sam", "X-Forwarded-Role": "operator"}
    page = client.get("/console/letters", headers=headers).get_data(as_text=True)
    assert "sam" in page
    form = {"ids": letter.id, "reason_text": "test order", "csrf_token": csrf_token(page)}
    assert client.post("/console/drop", headers=headers, data=form).status_code == 302
    assert next(e.by for e in store.audit_entries(limit=5, action="drop")) == "console:sam"
    viewer = {"X-Forwarded-User": "sam", "X-Forwarded-Role": "viewer"}
    assert client.post("/console/drop", headers=viewer, data=form).status_code == 403
    assert client.get("/console/").status_code == 302


def test_edit_shows_validation_errors_by_path_then_saves(as_role, store):
    """A wrong total is refused naming its path; a right one is saved as a new revision with
    the personal data kept, and the audit names the console user."""
    letter = bad_total_letter(store)
    operator = as_role("operator")
    form = operator.get(f"/console/letters/{letter.id}/edit").get_data(as_text=True)
    assert MASK in form
    assert "Barroso" not in form
    masked = json.loads(_textarea(form))
    masked["order"]["shipped_cart"]["order_total_with_tax"] -= 1  # still 41 off
    answer = operator.post(f"/console/letters/{letter.id}/edit", {"payload": json.dumps(masked)})
    assert answer.status_code == 422
    assert "order.shipped_cart.order_total_with_tax" in answer.get_data(as_text=True)
    assert store.load(letter.id).letter.revision == 0
    masked["order"]["shipped_cart"]["order_total_with_tax"] -= 41
    answer = operator.post(f"/console/letters/{letter.id}/edit", {"payload": json.dumps(masked)})
    assert answer.status_code == 302
    saved = store.load(letter.id).letter
    assert saved.revision == 1
    assert saved.payload["order"]["customer"]["surnames"] == "Barroso"
    [entry] = store.audit_entries(limit=1, action="edit")
    assert (entry.by, entry.result) == ("console:operator", "saved revision 1")


def test_reveal_shows_personal_data_to_an_admin_and_is_audited(as_role, store):
    """An admin's reveal shows the payload as stored and records who saw it."""
    letter = bad_total_letter(store)
    answer = as_role("admin").post(f"/console/letters/{letter.id}/reveal")
    assert answer.status_code == 200
    assert "Barroso" in answer.get_data(as_text=True)
    [entry] = store.audit_entries(limit=1, action="reveal")
    assert (entry.by, entry.letter) == ("console:admin", letter.id)


def test_replay_dry_runs_first_then_replays_the_planned_letters(
    as_role, store, redis_client, settings
):
    """The plan says would replay / would refuse and why, changing nothing; confirming replays
    through worker/replay.py and the audit names the console user."""
    from tests.worker.dlq_support import queued_update_ids

    good = make_letter(merchant="shop1", reason="conflict")
    invalid = bad_total_letter(store, reason="conflict")
    store.park(good)
    operator = as_role("operator")
    plan = operator.post("/console/replay/plan", {"scope": "filter", "reason": "conflict"})
    text = plan.get_data(as_text=True)
    assert "1 would be replayed, 0 refused, 1 would fail" in text
    assert "order_total_with_tax" in text
    assert store.stats().total == 2  # the dry run changed nothing
    done = operator.post("/console/replay", {"ids": [good.id, invalid.id]})
    assert "1 replayed, 0 refused, 1 failed" in done.get_data(as_text=True)
    assert [s.letter.id for s in store.scan(store_filters())] == [invalid.id]
    assert f"replay-{good.id}-r0" in queued_update_ids(redis_client, settings)
    results = {
        e.letter: (e.by, e.result)
        for e in store.audit_entries(limit=10, action="replay")
        if e.letter
    }
    assert results == {
        good.id: ("console:operator", "replayed"),
        invalid.id: ("console:operator", "failed"),
    }


def store_filters():
    from cartsync.worker.deadletters import Filters

    return Filters()


def test_drop_needs_a_reason_and_export_masks_for_operators(as_role, store):
    """A drop without a reason is refused; with one the letter goes and the reason is audited;
    an operator's export masks payloads, an admin's does not."""
    kept = bad_total_letter(store)
    gone = make_letter()
    store.park(gone)
    operator = as_role("operator")
    assert operator.post("/console/drop", {"ids": gone.id}).status_code == 422
    assert (
        operator.post("/console/drop", {"ids": gone.id, "reason_text": "test order"}).status_code
        == 302
    )
    assert [s.letter.id for s in store.scan(store_filters())] == [kept.id]
    [entry] = [e for e in store.audit_entries(limit=5, action="drop") if e.letter]
    assert entry.detail["why"] == "test order"
    masked = operator.post("/console/export", {"ids": kept.id}).get_data(as_text=True)
    assert json.loads(masked)["payload"]["order"]["customer"]["surnames"] == MASK
    full = as_role("admin").post("/console/export", {"ids": kept.id}).get_data(as_text=True)
    assert json.loads(full)["payload"]["order"]["customer"]["surnames"] == "Barroso"


def test_listing_filters_group_by_order_and_page_with_the_cursor(as_role, store):
    """Filters come from the URL, older letters of an order fold under the newest, and the
    next page's link carries the cursor."""
    now = time.time()
    old = make_letter(order_ref="A-1", version=1, dead_at=now - 60)
    new = make_letter(order_ref="A-1", version=2, dead_at=now - 30)
    other = make_letter(order_ref="B-1", reason="rejected", status=404, dead_at=now - 10)
    for letter in (old, new, other):
        store.park(letter)
    viewer = as_role("viewer")
    page = viewer.get("/console/letters?reason=conflict").get_data(as_text=True)
    assert new.id in page
    assert old.id in page
    assert other.id not in page
    assert page.index(new.id) < page.index(old.id)
    assert "obsolete" in page
    first = viewer.get("/console/letters?limit=1&group=none").get_data(as_text=True)
    assert other.id in first
    assert "cursor=" in first
    second = viewer.get(f"/console/letters?limit=1&group=none&cursor={other.id}").get_data(
        as_text=True
    )
    assert new.id in second
    assert other.id not in second
    sig = viewer.get("/console/letters?group=signature").get_data(as_text=True)
    assert "The diff is N." in sig


def _textarea(html: str) -> str:
    import html as html_lib
    import re

    found = re.search(r"<textarea[^>]*>(.*?)</textarea>", html, re.S)
    assert found is not None
    return html_lib.unescape(found.group(1))


def test_the_overview_shows_the_workers_alive(as_role, redis_client, settings):
    """The overview's "workers alive" card counts the pumps that beat recently."""
    Schedule(redis_client, settings.key_prefix).heartbeat("host-a:1", time.time())
    page = as_role("viewer").get("/console/").get_data(as_text=True)
    assert '<div class="num" id="workers-alive">1</div>' in page
