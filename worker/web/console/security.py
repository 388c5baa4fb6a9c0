"""The console's HTTP hardening: response headers and session-cookie settings.

Pure values; ``worker/web/console/__init__.py`` applies them to the console's responses only
(the ingestion API answers machines and keeps its own headers).
"""

from __future__ import annotations

from collections.abc import Mapping

#: No inline script or style anywhere: scripts and styles come from the console's static
#: folder, forms post only to the console, and no page may be framed (clickjacking).
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

#: Headers on every console response.
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

#: Pages show personal data (to admins) and tokens: never kept in a shared cache.
NO_STORE = "no-store"

#: The console's session cookie.
COOKIE_NAME = "cartsync_console"


def cookie_config(secure: bool, ttl_s: float) -> dict[str, object]:
    """Flask settings for the console's session cookie."""
    from datetime import timedelta

    return {
        "SESSION_COOKIE_NAME": COOKIE_NAME,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_PATH": "/console",
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=ttl_s),
        # The login's age is checked on every request (access.py); the cookie is not renewed
        # by activity.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # CSRF is checked by the console's own blueprint, not app-wide: the ingestion API's
        # POSTs carry bearer tokens, not cookies.
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_TIME_LIMIT": ttl_s,
        "WTF_CSRF_SSL_STRICT": secure,
    }


def is_safe_next(target: str | None) -> bool:
    """Whether a ``next`` parameter may be redirected to after login: a console path on this
    site, never another host (``//evil``, ``https://...``, ``/console/\\evil``)."""
    return (
        bool(target)
        and target is not None
        and target.startswith("/console/")
        and not target.startswith("//")
        and "\\" not in target
        and "\n" not in target
        and "\r" not in target
    )
