"""Who is asking, and whether they may: the console's login session, the trusted proxy
header, session expiry and the role check every view makes (``require``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, g, redirect, request, session, url_for

from cartsync.worker.web.console.context import console
from cartsync.worker.web.console.roles import Action, may
from cartsync.worker.web.console.users import Principal, from_proxy

F = TypeVar("F", bound=Callable[..., Any])

#: Session keys: the user's name and when they logged in.
USER_KEY = "user"
LOGIN_AT_KEY = "login_at"


def expired(login_at: Any, now: float, ttl_s: float) -> bool:
    """Whether a login made at ``login_at`` has lapsed (or the value is not a time)."""
    return not isinstance(login_at, int | float) or not 0 <= now - login_at <= ttl_s


def principal() -> Principal | None:
    """Who is asking: the proxy's user when a trusted header is configured and present, else
    the logged-in user of a live session; None for nobody. Cached for the request."""
    if "console_principal" in g:
        found: Principal | None = g.console_principal
        return found
    found = _find_principal()
    g.console_principal = found
    return found


def _find_principal() -> Principal | None:
    c = console()
    settings = c.settings
    if settings.console_trusted_header:
        named = request.headers.get(settings.console_trusted_header)
        if named is not None:
            role = (
                request.headers.get(settings.console_role_header)
                if settings.console_role_header
                else None
            )
            return from_proxy(named, role, settings.console_default_role)
    name = session.get(USER_KEY)
    if not isinstance(name, str):
        return None
    if expired(session.get(LOGIN_AT_KEY), time.time(), settings.console_session_ttl_s):
        session.clear()
        g.console_expired = True
        return None
    user = c.users.get(name)
    if user is None:  # removed from the users file since logging in
        session.clear()
        return None
    return Principal(user.name, user.role, "login")


def log_in(found: Principal) -> None:
    """Start a session for ``found``: a new session (no fixation), timed from now."""
    session.clear()
    session.permanent = True
    session[USER_KEY] = found.name
    session[LOGIN_AT_KEY] = time.time()


def log_out() -> None:
    session.clear()


def require(action: Action) -> Callable[[F], F]:
    """A view only for those whose role may do ``action``: nobody is sent to the login page
    (a GET) or answered 401 (anything else); a role that may not is answered 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            who = principal()
            if who is None:
                if request.method == "GET":
                    target = request.full_path if request.query_string else request.path
                    expired = "1" if g.get("console_expired") else None
                    return redirect(url_for("console.login", next=target, expired=expired))
                abort(401)
            if not may(who.role, action):
                abort(403)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
