"""The console in a real Chromium (Playwright driving Debian's ``chromium``), served by a real
HTTP server, with a real worker delivering to the seQura sandbox.

Skipped, saying why, where ``/usr/bin/chromium`` is missing (``.ci/run`` installs it).
Set ``CARTSYNC_CONSOLE_SCREENSHOT=docs/console.png`` to also write the README's screenshot.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cartsync.worker.deadletters import DeadLetter, DeadLetterStore
from cartsync.worker.web.app import create_app
from tests.console.conftest import PASSWORD, console_settings, merchants
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env
from tests.worker.dlq_support import TOTALS_409, make_letter

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium: `apt-get install -y chromium` to run the browser tests",
    ),
]


@pytest.fixture
def console_url(settings, tmp_path) -> Iterator[str]:
    """The HTTP app with the console, served by werkzeug in a thread on a free port."""
    app = create_app(console_settings(settings, tmp_path), merchants=merchants())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        try:
            yield context.new_page()
        finally:
            browser.close()


def parked(store: DeadLetterStore, *, order_ref: str, off_by: int = 0, **kwargs) -> DeadLetter:
    """A letter of SHOP's, its shipped cart's total ``off_by`` cents wrong."""
    letter = make_letter(merchant=SHOP.ref, order_ref=order_ref, **kwargs)
    letter.payload["order"]["shipped_cart"]["order_total_with_tax"] += off_by
    store.park(letter)
    return letter


def test_an_operator_fixes_a_total_replays_it_and_finds_it_in_the_audit(
    page, console_url, shop_sandbox, redis_client, settings
):
    """Log in, filter by reason, open the letter, see the editor's validation error, fix the
    total, dry-run, replay, see the sandbox get it and the letter gone, then the audit."""
    store = DeadLetterStore(redis_client, settings.key_prefix)
    letter = parked(store, order_ref="WEB-1", off_by=42)
    other = parked(store, order_ref="WEB-2", reason="rejected", status=404, errors=["Not found"])
    env = worker_env(
        shop_sandbox.url,
        CARTSYNC_SEQURA_USERNAME=SHOP.username,
        CARTSYNC_SEQURA_PASSWORD=SHOP.password,
    )
    with running_worker(env) as worker:
        page.goto(f"{console_url}/console/letters")
        page.fill("input[name=username]", "operator")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/console/letters")

        page.select_option("select[name=reason]", "conflict")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**reason=conflict**")
        listing = page.inner_text("table.letters")
        assert letter.id in listing
        assert other.id not in listing

        page.click(f"text={letter.id}")
        page.wait_for_url(f"**/console/letters/{letter.id}")
        assert "The diff is 42" in page.inner_text("ul.errors")
        page.click("#edit")
        editor = page.locator("#payload-editor")
        body = json.loads(editor.input_value())
        body["order"]["shipped_cart"]["order_total_with_tax"] -= 41  # still one cent off
        editor.fill(json.dumps(body, indent=2))
        page.click("#save")
        problems = page.inner_text("#problems")
        assert "order.shipped_cart.order_total_with_tax" in problems
        body["order"]["shipped_cart"]["order_total_with_tax"] -= 1
        editor.fill(json.dumps(body, indent=2))
        page.click("#save")
        page.wait_for_url(f"**/console/letters/{letter.id}?saved=1")
        assert "Saved revision 1" in page.inner_text("main")

        page.click("#dry-run")
        assert "1 would be replayed, 0 refused, 0 would fail" in page.inner_text("#plan-summary")
        assert store.load(letter.id).letter.revision == 1  # the dry run changed nothing
        page.click("#confirm-replay")
        assert "1 replayed, 0 refused, 0 failed" in page.inner_text("#replay-summary")

        expected = body["order"]["shipped_cart"]["order_total_with_tax"]

        def delivered() -> bool:
            found = shop_sandbox.state.order(SHOP.ref, "WEB-1")
            return bool(found) and (
                found["state"]["shipped_cart"]["order_total_with_tax"] == expected
            )

        wait_for(delivered, timeout=30, what="the sandbox to get the fix", on_fail=worker.log_text)

    page.goto(f"{console_url}/console/letters?reason=conflict")
    assert letter.id not in page.inner_text("main")
    page.goto(f"{console_url}/console/audit?action=replay")
    audit = page.inner_text("#audit")
    assert letter.id in audit
    assert "console:operator" in audit
    assert "replayed" in audit


def test_an_operator_replays_all_that_match_in_the_background(
    page, console_url, redis_client, settings
):
    """Filter, dry-run "all that match", start the job, and watch its page refresh itself
    (no script) until it says done, every letter replayed and gone from the store."""
    from cartsync.worker.deadletters import Filters

    store = DeadLetterStore(redis_client, settings.key_prefix)
    for n in range(3):
        parked(store, order_ref=f"BG-{n}")
    kept = parked(store, order_ref="BG-X", reason="rejected", status=404, errors=["Not found"])
    page.goto(f"{console_url}/console/letters?reason=conflict")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/letters?reason=conflict")
    page.click("button[name=scope][value=filter]:has-text('Dry-run replay')")
    assert page.inner_text("#plan-count") == "3"
    page.fill("input[name=rate]", "1000")
    page.click("#start-job")
    page.wait_for_url("**/console/jobs/*")
    # The page reloads itself (a meta refresh) until the job is done.
    page.wait_for_selector("#job-status.status-done", timeout=30_000)
    assert "3 of 3 handled: 3 replayed" in page.inner_text("#job-counts")
    assert [s.letter.id for s in store.scan(Filters())] == [kept.id]


def test_screenshot_for_the_readme(page, console_url, redis_client, settings):
    """Writes the README's screenshot when CARTSYNC_CONSOLE_SCREENSHOT names a file."""
    target = os.environ.get("CARTSYNC_CONSOLE_SCREENSHOT")
    if not target:
        pytest.skip("set CARTSYNC_CONSOLE_SCREENSHOT=docs/console.png to write the screenshot")
    store = DeadLetterStore(redis_client, settings.key_prefix)
    now = time.time()
    shops = ["camisasonline", "zapatos", "shop1"]
    for n in range(14):
        errors = [TOTALS_409.replace("42", str(n + 3))] if n % 3 else ["Access denied"]
        store.park(
            make_letter(
                merchant=shops[(n // 2) % 3],
                order_ref=f"A14/{12340 + n // 2}",
                version=1 + n % 2,
                reason="conflict" if n % 3 else "unauthorized",
                status=409 if n % 3 else 401,
                errors=errors,
                dead_at=now - 3600 * (14 - n),
            )
        )
    page.goto(f"{console_url}/console/login")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{console_url}/console/letters")
    page.screenshot(path=target, full_page=False)
