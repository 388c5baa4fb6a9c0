"""The console's blueprint and what applies to every console request: CSRF on every change,
the security headers, and errors answered as pages."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, g, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from cartsync.config.logging import get_logger
from cartsync.worker.errors import BrokerUnavailable
from cartsync.worker.web.console.security import HEADERS, NO_STORE

log = get_logger("cartsync.web.console")

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

csrf = CSRFProtect()

#: Seconds a browser (or a person) is asked to wait before trying again while Redis is down.
REDIS_DOWN_RETRY_S = 5
#: Where the runbook says what to do when the console answers 503.
RUNBOOK_SECTION = 'docs/RUNBOOK.md, "When the console answers 503"'
#: What to check, in order, when Redis does not answer (the runbook has the details).
REDIS_CHECKS = (
    "Is Redis running, and reachable from this web host? "
    'redis-cli -u "$CARTSYNC_REDIS_URL" ping (expect PONG).',
    "Does cartsync status answer (exit 2 means Redis is unreachable)?",
    "Is Redis out of memory (used_memory near maxmemory) or slow (redis-cli --latency)?",
    "Is CARTSYNC_REDIS_URL of this host the workers' Redis?",
)

#: What each refusal tells the person (never why in more detail than they need).
ERROR_TEXTS = {
    400: "The request was not understood.",
    401: "Log in first.",
    403: "Your role may not do this.",
    404: "There is no such page or letter.",
    405: "Not like this.",
}


@bp.before_request
def protect() -> None:
    """Every POST carries the session's CSRF token (flask-wtf), logins included."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.after_request
def harden(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = NO_STORE
    return response


@bp.errorhandler(CSRFError)
def csrf_refused(exc: CSRFError) -> tuple[str, int]:
    text = "The form had expired or did not come from the console; reload the page and retry."
    return render_template("console/error.html", code=400, text=text), 400


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    text = ERROR_TEXTS.get(code, exc.name)
    g.setdefault("console_principal", None)
    return render_template("console/error.html", code=code, text=text), code


@bp.errorhandler(redis.RedisError)
@bp.errorhandler(BrokerUnavailable)
def redis_down(exc: Exception) -> tuple[str, int, dict[str, str]]:
    """Redis does not answer: a page saying so and what to check, never a traceback. Nothing
    was changed by the request (every change is one Redis step)."""
    log.error("console_redis_down", status=503, exception=type(exc).__name__)
    g.setdefault("console_principal", None)
    page = render_template(
        "console/error.html",
        code=503,
        text="The console cannot reach Redis, where the dead letters and the queue live. "
        "Nothing was changed. Try again in a few seconds.",
        checks=REDIS_CHECKS,
        runbook=RUNBOOK_SECTION,
    )
    return page, 503, {"Retry-After": str(REDIS_DOWN_RETRY_S)}
