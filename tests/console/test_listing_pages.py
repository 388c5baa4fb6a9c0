"""Grouping by error signature reads a fixed number of letters per page and pages on to
older ones with a cursor, so its cost does not grow with the store."""

from __future__ import annotations

import re
import time

from cartsync.worker.web.console import views
from tests.worker.dlq_support import make_letter


def test_signature_groups_page_through_older_letters(as_role, store, monkeypatch):
    """With two letters per page, three letters of distinct signatures make two pages: the
    first groups the newest two and links to the rest, which the second page shows."""
    monkeypatch.setattr(views, "SIGNATURE_SCAN", 2)
    now = time.time()
    texts = ["Order not found", "Access denied", "The diff is 7."]
    for n, text in enumerate(texts):
        store.park(make_letter(errors=[text], dead_at=now - 10 + n))
    viewer = as_role("viewer")
    first = viewer.get("/console/letters?group=signature").get_data(as_text=True)
    assert "The diff is N." in first
    assert "Access denied" in first
    assert "Order not found" not in first
    found = re.search(r'href="([^"]+)" id="next-page"', first)
    assert found is not None
    second = viewer.get(found.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Order not found" in second
    assert "Access denied" not in second
    assert 'id="next-page"' not in second
