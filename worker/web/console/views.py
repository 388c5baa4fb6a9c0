"""The console's pages (GET): login, overview, dead letters, one letter, audit."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from cartsync.config.logging import get_logger
from cartsync.worker.cli.dlq.inspect import describe_attempt, describe_history
from cartsync.worker.cli.dlq.session import new_run_id
from cartsync.worker.deadletters import (
    ID_PATTERN,
    AuditEntry,
    AuditNote,
    DeadLetter,
    Filters,
    Reason,
)
from cartsync.worker.errors import DeadLetterNotFound
from cartsync.worker.health import take_snapshot
from cartsync.worker.timefmt import format_age, format_time
from cartsync.worker.web.console.access import log_in, log_out, principal, require
from cartsync.worker.web.console.blueprint import bp
from cartsync.worker.web.console.context import console
from cartsync.worker.web.console.diffing import Change, diff, masked_change
from cartsync.worker.web.console.grouping import OrderKey, group_by_order, newest_of
from cartsync.worker.web.console.masking import mask
from cartsync.worker.web.console.query import Query, cli_filters, parse_query
from cartsync.worker.web.console.roles import Action, may
from cartsync.worker.web.console.signatures import group_by_signature, letter_signature
from cartsync.worker.web.console.users import authenticate

log = get_logger("cartsync.web.console")

#: Seconds between the overview's refreshes.
OVERVIEW_REFRESH_S = 30
#: Letters one page grouped by error signature reads (newest first, below its cursor): about
#: 0.2 ms each to read and decode, so a page stays near 100 ms at any store size.
SIGNATURE_SCAN = 500
#: Merchants shown on the overview.
TOP_MERCHANTS = 20
#: Audit entries per page.
AUDIT_PAGE = 100


@bp.app_template_global()
def can(action: str) -> bool:
    """In templates: whether the person asking may do ``action`` (pages hide what they may
    not do; the server refuses it anyway)."""
    who = principal()
    return who is not None and may(who.role, Action(action))


@bp.app_template_filter("age")
def age_filter(at: float) -> str:
    return format_age(max(0.0, time.time() - at))


@bp.app_template_filter("when")
def when_filter(at: float) -> str:
    return format_time(at)


@bp.app_template_filter("pretty")
def pretty_filter(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


@bp.app_context_processor
def common() -> dict[str, Any]:
    return {"who": principal() if request.blueprint == "console" else None}


# -- login -------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = request.values.get("next", "")
    from cartsync.worker.web.console.security import is_safe_next

    if not is_safe_next(target):
        target = url_for("console.overview")
    error = None
    status = 200
    wait: int | None = None
    if request.method == "POST":
        name = request.form.get("username", "")
        address = request.remote_addr or "unknown"
        throttle = console().throttle
        wait = throttle.blocked(name, address)
        if wait is None:
            found = authenticate(console().users, name, request.form.get("password", ""))
            if found is not None:
                throttle.succeeded(name)
                log_in(found)
                return redirect(target)
            login_failed(name, address)
            error, status = "Unknown user or wrong password.", 401
        else:
            log.warning("console_login_refused", status=429, reason="limited")
            error, status = f"Too many failed logins: try again in {wait} s.", 429
    elif principal() is not None:
        return redirect(target)
    expired = request.args.get("expired") == "1" or g.get("console_expired", False)
    page = render_template("console/login.html", error=error, expired=expired, next=target)
    headers = {"Retry-After": str(wait)} if status == 429 else {}
    return page, status, headers


def login_failed(name: str, address: str) -> None:
    """Count a failed login, log it (never the password, nor the name typed: it may be one)
    and audit the moment a limit is reached (the next attempt is answered 429)."""
    c = console()
    verdict = c.throttle.failed(name, address)
    log.warning(
        "console_login_failed",
        status=401,
        count=verdict.user_failures,
        reason="limited" if verdict.limited else "wrong_password",
    )
    if verdict.limited:
        known = name if name in c.users else "(unknown user)"
        c.store.record(
            AuditNote(
                "login",
                f"console:{known}",
                new_run_id(),
                "limited",
                {
                    "address": address,
                    "name_failures": verdict.user_failures,
                    "address_failures": verdict.address_failures,
                },
            )
        )


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    log_out()
    flash("Logged out.")
    return redirect(url_for("console.login"))


# -- overview ----------------------------------------------------------------------------------


@bp.route("/")
@require(Action.READ)
def overview() -> str:
    c = console()
    snapshot = take_snapshot(c.client, c.settings)
    stats = c.store.stats()
    merchants = list(stats.by_merchant.items())[:TOP_MERCHANTS]
    refresh = request.args.get("refresh") != "0"
    return render_template(
        "console/overview.html",
        snapshot=snapshot,
        stats=stats,
        merchants=merchants,
        more_merchants=max(0, len(stats.by_merchant) - TOP_MERCHANTS),
        refresh_s=OVERVIEW_REFRESH_S if refresh else None,
        oldest_age=format_age(snapshot.oldest_dead_age_s)
        if snapshot.oldest_dead_age_s is not None
        else None,
    )


# -- dead letters ------------------------------------------------------------------------------


@bp.route("/letters")
@require(Action.READ)
def letters() -> str:
    c = console()
    query = parse_query(request.args.to_dict(), time.time())
    context: dict[str, Any] = {
        "query": query,
        "reasons": [r.value for r in Reason],
        "merchants": list(c.store.stats().by_merchant)[:200],
        "pinned_url": query.pinned().url(url_for("console.letters")),
        "cli": cli_filters(query),
        "count": c.store.count(query.filters) if query.filters.indexed else None,
    }
    if query.group == "signature":
        # One page is SIGNATURE_SCAN letters below the cursor, grouped: reading a letter is
        # most of a page's cost, so a page reads a fixed number, whatever the store holds.
        walk = c.store.scan(query.filters, below=query.cursor, batch=SIGNATURE_SCAN)
        seen = [stored.letter for stored in itertools.islice(walk, SIGNATURE_SCAN)]
        context.update(signatures=group_by_signature(seen), scanned=len(seen), scan=SIGNATURE_SCAN)
        more = len(seen) == SIGNATURE_SCAN
        context["next_url"] = (
            query.url(url_for("console.letters"), cursor=seen[-1].id) if more else None
        )
        context["first_url"] = query.url(url_for("console.letters")) if query.cursor else None
        return render_template("console/letters.html", **context)
    page = c.store.page(query.filters, limit=query.limit, cursor=query.cursor)
    shown = [s.letter for s in page.letters]
    context["next_url"] = (
        query.url(url_for("console.letters"), cursor=page.cursor) if page.cursor else None
    )
    context["first_url"] = query.url(url_for("console.letters")) if query.cursor else None
    if query.group == "order":
        context["groups"] = group_by_order(shown, order_letters(shown))
    else:
        context["plain"] = shown
    context["signature"] = letter_signature
    return render_template("console/letters.html", **context)


def order_letters(shown: list[DeadLetter]) -> dict[OrderKey, list[DeadLetter]]:
    """Every letter of each order on a page (``orders.py``: two round trips in all)."""
    return console().store.letters_of_orders((s.merchant, s.order_ref) for s in shown)


# -- one letter --------------------------------------------------------------------------------


def load_letter(letter_id: str) -> Any:
    if not ID_PATTERN.match(letter_id):
        abort(404)
    try:
        return console().store.load(letter_id)
    except DeadLetterNotFound:
        abort(404)


def letter_page(letter_id: str, *, revealed: bool = False, status: int = 200) -> tuple[str, int]:
    """The letter page; ``revealed`` shows personal data (the caller audited it)."""
    c = console()
    stored = load_letter(letter_id)
    letter: DeadLetter = stored.letter
    siblings = [
        s.letter
        for s in c.store.scan(Filters(merchant=letter.merchant, order_ref=letter.order_ref))
    ]
    newest = newest_of(siblings)
    changes: list[Change] = []
    if newest is not None and newest.id != letter.id:
        changes = diff(letter.payload, newest.payload)
        if not revealed:
            changes = [masked_change(change) for change in changes]
    payload = letter.payload if revealed else mask(letter.payload)
    return (
        render_template(
            "console/letter.html",
            letter=letter,
            payload=json.dumps(payload, ensure_ascii=False, indent=2),
            revealed=revealed,
            attempts=[describe_attempt(a) for a in letter.attempts],
            history=[describe_history(h) for h in letter.history],
            siblings=sorted(siblings, key=lambda s: s.id, reverse=True),
            newest=newest,
            changes=changes,
        ),
        status,
    )


@bp.route("/letters/<letter_id>")
@require(Action.READ)
def letter(letter_id: str) -> tuple[str, int]:
    return letter_page(letter_id)


# -- audit -------------------------------------------------------------------------------------


@bp.route("/audit")
@require(Action.READ)
def audit() -> str:
    c = console()
    action = request.args.get("action") or None
    letter_id = request.args.get("letter") or None
    run = request.args.get("run") or None
    before = request.args.get("before") or None
    entries: list[AuditEntry] = c.store.audit_entries(
        limit=AUDIT_PAGE if run is None else AUDIT_PAGE * 10,
        before=before,
        action=action,
        letter_id=letter_id,
    )
    more = entries[-1].id if len(entries) >= AUDIT_PAGE and run is None else None
    if run is not None:
        entries = [e for e in entries if e.run == run][:AUDIT_PAGE]
    args: dict[str, Any] = {
        k: v for k, v in (("action", action), ("letter", letter_id), ("run", run)) if v
    }
    return render_template(
        "console/audit.html",
        entries=entries,
        args=args,
        next_url=url_for("console.audit", **args, before=more) if more else None,
        actions=["replay", "edit", "drop", "purge", "import", "reveal", "export", "login"],
    )


def query_from_form() -> Query:
    """The listing query a bulk form carries in its hidden fields."""
    return parse_query(request.form.to_dict(), time.time())
