"""The console's pure decisions: roles, masking, signatures, grouping, diffs, queries, users."""

from __future__ import annotations

import pytest

from cartsync.tasks.examples import full_body_a
from cartsync.worker.errors import ConfigurationError
from cartsync.worker.web.console.access import expired
from cartsync.worker.web.console.diffing import diff, masked_change
from cartsync.worker.web.console.grouping import group_by_order
from cartsync.worker.web.console.masking import MASK, mask, unmask
from cartsync.worker.web.console.query import cli_filters, parse_query
from cartsync.worker.web.console.roles import Action, Role, may
from cartsync.worker.web.console.security import is_safe_next
from cartsync.worker.web.console.signatures import grep_text, group_by_signature, signature
from cartsync.worker.web.console.users import authenticate, from_proxy, parse_users
from tests.worker.dlq_support import TOTALS_409, make_letter


def test_roles_grant_what_the_issue_lists():
    """Viewers read; operators also edit, replay, drop and export; only admins reveal and purge."""
    assert may(Role.VIEWER, Action.READ)
    assert not any(may(Role.VIEWER, a) for a in Action if a is not Action.READ)
    assert all(may(Role.OPERATOR, a) for a in (Action.EDIT, Action.REPLAY, Action.DROP))
    assert not may(Role.OPERATOR, Action.REVEAL)
    assert not may(Role.OPERATOR, Action.PURGE)
    assert all(may(Role.ADMIN, a) for a in Action)
    assert not may(None, Action.READ)
    assert not may("root", Action.READ)


def test_masking_hides_people_and_keeps_carts():
    """Names, emails, phones, addresses, national ids and birth dates are masked; products,
    totals, country codes and references are not."""
    body = full_body_a()
    masked = mask(body)
    customer, address = masked["order"]["customer"], masked["order"]["delivery_address"]
    for key in ("given_names", "surnames", "email", "date_of_birth", "nin"):
        assert customer[key] == MASK
    for key in ("address_line_1", "postal_code", "city", "phone", "mobile_phone"):
        assert address[key] == MASK
    assert address["country_code"] == "ES"
    item = masked["order"]["shipped_cart"]["items"][0]
    assert item == body["order"]["shipped_cart"]["items"][0]
    assert (
        masked["order"]["shipped_cart"]["order_total_with_tax"]
        == (body["order"]["shipped_cart"]["order_total_with_tax"])
    )
    assert "Barroso" not in repr(masked)
    assert "nisse@example.com" not in repr(masked)


def test_unmask_restores_untouched_masks_and_keeps_typed_values():
    """A mask left as it was gets its original back; a typed value stays; a mask with no
    original is named."""
    body = full_body_a()
    edited = mask(body)
    edited["order"]["customer"]["email"] = "new@example.com"
    edited["order"]["extra"] = {"phone": MASK}
    restored, lost = unmask(edited, body)
    assert restored["order"]["customer"]["given_names"] == body["order"]["customer"]["given_names"]
    assert restored["order"]["customer"]["email"] == "new@example.com"
    assert lost == ["order.extra.phone"]


def test_signatures_mask_numbers_and_group():
    """seQura's totals text becomes one signature whatever its numbers, and groups count it."""
    other = TOTALS_409.replace("5097", "6001").replace("42", "946")
    assert signature(TOTALS_409) == signature(other)
    assert "The diff is N." in signature(TOTALS_409)
    letters = [
        make_letter(errors=[TOTALS_409]),
        make_letter(errors=[other]),
        make_letter(errors=["Access denied"]),
    ]
    groups = group_by_signature(letters)
    assert [(g.count, g.example_id) for g in groups] == [(2, letters[0].id), (1, letters[2].id)]
    assert grep_text(groups[0].signature).lower() in TOTALS_409.lower()


def test_grouping_folds_older_letters_of_an_order_under_the_newest():
    """The newest letter of an order heads its group; older ones fold under it; a head with a
    newer letter elsewhere is marked obsolete."""
    old = make_letter(order_ref="A", version=1, dead_at=100)
    new = make_letter(order_ref="A", version=2, dead_at=200)
    lone = make_letter(order_ref="B", version=1, dead_at=150)
    for n, letter in enumerate((old, new, lone)):
        letter.id = f"{int(letter.dead_at * 1000):013d}-0000000{n}"
    groups = group_by_order([new, lone, old], {("shop1", "A"): [old, new], ("shop1", "B"): [lone]})
    assert [(g.head.id, [o.id for o in g.older], g.head_obsolete) for g in groups] == [
        (new.id, [old.id], False),
        (lone.id, [], False),
    ]
    [only_old] = group_by_order([old], {("shop1", "A"): [old, new]})
    assert only_old.head_obsolete
    assert only_old.newest_elsewhere is new


def test_diff_lists_changed_paths_and_masks_personal_ones():
    """A changed total is listed with both values; a changed name is listed but masked."""
    a = full_body_a()
    b = full_body_a()
    b["order"]["shipped_cart"]["order_total_with_tax"] += 42
    b["order"]["customer"]["surnames"] = "Otro"
    changes = diff(a, b)
    paths = {c.path: c for c in changes}
    assert paths["order.shipped_cart.order_total_with_tax"].new == (
        a["order"]["shipped_cart"]["order_total_with_tax"] + 42
    )
    hidden = masked_change(paths["order.customer.surnames"])
    assert (hidden.old, hidden.new) == (MASK, MASK)


def test_query_reads_every_cli_filter_and_names_bad_ones():
    """Every CLI filter comes from the URL; a bad value is named and left out; relative times
    pin to instants for a ticket."""
    query = parse_query(
        {"reason": "conflict", "merchant": "m", "status": "409", "order": "O1", "since": "2h",
         "until": "2030-01-01", "q": "diff", "cursor": "1715003155123-8f2a11c0"},
        now=1_800_000_000.0,
    )  # fmt: skip
    f = query.filters
    assert (f.reason, f.merchant, f.status, f.order_ref, f.grep) == (
        "conflict",
        "m",
        "409",
        "O1",
        "diff",
    )
    assert f.since == 1_800_000_000.0 - 7200
    assert query.cursor == "1715003155123-8f2a11c0"
    assert not query.errors
    assert query.pinned().given["since"] == "2027-01-15T06:00:00Z"
    assert "--grep diff" in cli_filters(query)
    bad = parse_query({"reason": "nope", "status": "abc", "since": "yesterday-ish"}, now=0.0)
    assert set(bad.errors) == {"reason", "status", "since"}
    assert bad.filters.empty


def test_users_file_and_proxy_header_decide_who_is_asking():
    """A users file's hash and role authenticate; a proxy's header names a user with the role
    header or the default; bad files and names are refused."""
    from werkzeug.security import generate_password_hash

    hashed = generate_password_hash("pw", method="pbkdf2:sha256:1000")
    users = parse_users({"users": {"ana": {"password_hash": hashed, "role": "admin"}}}, "f.toml")
    assert authenticate(users, "ana", "pw").role is Role.ADMIN  # type: ignore[union-attr]
    assert authenticate(users, "ana", "nope") is None
    assert authenticate(users, "bob", "pw") is None
    with pytest.raises(ConfigurationError, match="role"):
        parse_users({"users": {"x": {"password_hash": "a$b", "role": "root"}}}, "f.toml")
    assert from_proxy("joe", None, "viewer").role is Role.VIEWER  # type: ignore[union-attr]
    assert from_proxy("joe", "operator", "viewer").role is Role.OPERATOR  # type: ignore[union-attr]
    assert from_proxy("joe", "god", "viewer") is None
    assert from_proxy("joe\nbad", None, "viewer") is None
    assert from_proxy(None, None, "viewer") is None


def test_login_redirects_stay_inside_the_console_and_sessions_expire():
    """Only console paths are followed after login; a login older than the lifetime lapses."""
    assert is_safe_next("/console/letters?reason=conflict")
    assert not any(
        map(is_safe_next, ["//evil.example", "https://evil.example/console/", "/console/\\x", ""])
    )
    assert not expired(1000.0, 1000.0 + 3600, 3600)
    assert expired(1000.0, 1000.0 + 3601, 3600)
    assert expired(None, 0.0, 10)
    assert expired(2000.0, 1000.0, 10)
