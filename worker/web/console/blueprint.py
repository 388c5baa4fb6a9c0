"""The console's blueprint and what applies to every console request: CSRF on every change,
the security headers, and errors answered as pages."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from cartsync.worker.web.console.security import HEADERS, NO_STORE

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

csrf = CSRFProtect()

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
