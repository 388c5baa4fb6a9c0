"""A listing's query string: the CLI's filters, the page's cursor and grouping, read from and
written back to URL parameters, so that every filter state is a link to paste into a ticket.

Pure: the caller passes the parameters and the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from cartsync.worker.deadletters import ID_PATTERN, Filters, Reason
from cartsync.worker.timefmt import parse_instant

#: Letters per page unless the query says otherwise (the CLI's ``list`` default).
DEFAULT_LIMIT = 50
#: Largest page the console serves.
MAX_LIMIT = 500
#: How a listing groups letters: by order (the default), by error signature, or not at all.
GROUPINGS = ("order", "signature", "none")
#: The URL parameter of each filter, in the order links spell them.
FILTER_PARAMS = ("reason", "merchant", "status", "order", "since", "until", "q")


@dataclass(frozen=True)
class Query:
    """What a listing URL asks for, as typed, and what it resolves to."""

    #: The filter parameters as given (non-empty ones only), for links and the form.
    given: dict[str, str] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    group: str = "order"
    #: Parameter name -> what is wrong with it.
    errors: dict[str, str] = field(default_factory=dict)

    def args(self, **changes: str | None) -> dict[str, str]:
        """The query's parameters (filters, grouping, limit), with ``changes`` applied (None
        removes a parameter); the cursor is left out unless given in ``changes``."""
        found = dict(self.given)
        if self.group != "order":
            found["group"] = self.group
        if self.limit != DEFAULT_LIMIT:
            found["limit"] = str(self.limit)
        for name, value in changes.items():
            if value is None:
                found.pop(name, None)
            else:
                found[name] = value
        return found

    def url(self, base: str, **changes: str | None) -> str:
        found = self.args(**changes)
        return f"{base}?{urlencode(found)}" if found else base

    def pinned(self) -> Query:
        """The same query with relative times (``2h``) written as the instants they meant
        now: the link that stays true in a ticket."""
        given = dict(self.given)
        for name, value in (("since", self.filters.since), ("until", self.filters.until)):
            if value is not None:
                given[name] = iso(value)
        return replace(self, given=given)


def iso(at: float) -> str:
    """An instant as a URL shows it: UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_status(text: str) -> str:
    """A status filter as the store keys it: ``409`` or ``none``; ValueError otherwise."""
    value = text.strip().lower()
    if value == "none":
        return value
    if value.isdigit() and 100 <= int(value) <= 599:
        return str(int(value))
    raise ValueError("an HTTP status code (100-599) or none")


def parse_query(params: Mapping[str, str], now: float) -> Query:
    """A listing's query from URL parameters; what does not parse is named in ``errors`` and
    left out of the filters (the page says so rather than failing)."""
    given = {
        name: params[name].strip()
        for name in FILTER_PARAMS
        if params.get(name) and params[name].strip()
    }
    errors: dict[str, str] = {}
    reason = given.get("reason")
    if reason is not None and reason not in {r.value for r in Reason}:
        errors["reason"] = "one of " + ", ".join(r.value for r in Reason)
        reason = None
    status = None
    if "status" in given:
        try:
            status = parse_status(given["status"])
        except ValueError as exc:
            errors["status"] = str(exc)
    instants: dict[str, float | None] = {"since": None, "until": None}
    for name in instants:
        if name in given:
            try:
                instants[name] = parse_instant(given[name], now)
            except ValueError as exc:
                errors[name] = str(exc)
    since, until = instants["since"], instants["until"]
    if since is not None and until is not None and since >= until:
        errors["since"] = "must be before until"
        since = until = None
    filters = Filters(
        merchant=given.get("merchant"),
        reason=reason,
        status=status,
        order_ref=given.get("order"),
        since=since,
        until=until,
        grep=given.get("q"),
    )
    cursor = params.get("cursor") or None
    if cursor is not None and not ID_PATTERN.match(cursor):
        errors["cursor"] = "not a letter id"
        cursor = None
    limit = DEFAULT_LIMIT
    if params.get("limit"):
        try:
            limit = min(MAX_LIMIT, max(1, int(params["limit"])))
        except ValueError:
            errors["limit"] = "a whole number"
    group = params.get("group") or "order"
    if group not in GROUPINGS:
        errors["group"] = "one of " + ", ".join(GROUPINGS)
        group = "order"
    return Query(given, filters, cursor, limit, group, errors)


def cli_filters(query: Query) -> str:
    """The same filters as ``cartsync dlq`` options (the console shows the equivalent
    command for selections too large to act on here)."""
    import shlex

    names = {"q": "grep"}
    pinned = query.pinned().given
    return " ".join(
        f"--{names.get(name, name)} {shlex.quote(value)}" for name, value in pinned.items()
    )
