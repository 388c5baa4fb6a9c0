"""Building JSON answers: seQura's error shape and the native one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response, json

#: Seconds a client should wait before retrying when Redis does not answer.
RETRY_AFTER_S = 5


def answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def native_error(status: int, errors: Mapping[str, Sequence[str]], **headers: str) -> Response:
    """``{"errors": {path: [messages]}}``."""
    return answer(status, {"errors": {k: list(v) for k, v in errors.items()}}, headers)


def sequra_error(status: int, *texts: str, **headers: str) -> Response:
    """seQura's ``{"errors": ["..."]}``."""
    return answer(status, {"errors": list(texts)}, headers)


def invalid_data(errors: Mapping[str, Sequence[str]]) -> list[str]:
    """seQura's 409 texts: ``Invalid data: order.shipped_cart.items.1.quantity: ...``."""
    return [
        f"Invalid data: {path}: {message}" for path in sorted(errors) for message in errors[path]
    ]
