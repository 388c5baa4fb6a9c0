"""marshmallow's nested error messages as one flat ``{dotted path: [messages]}`` mapping."""

from __future__ import annotations

from typing import Any

from marshmallow.exceptions import SCHEMA

#: The path of an error about the body as a whole (not a JSON object, say).
ROOT = "body"


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"order": {"items": {1: {"quantity": [m]}}}}`` -> ``{"order.items.1.quantity": [m]}``.

    Schema-level messages (marshmallow's ``_schema``) belong to the object that holds them.
    """
    flat: dict[str, list[str]] = {}
    _walk(messages, prefix, flat)
    return flat


def _walk(messages: Any, path: str, flat: dict[str, list[str]]) -> None:
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == SCHEMA:
                _walk(value, path, flat)
            else:
                _walk(value, f"{path}.{key}" if path else str(key), flat)
        return
    if isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, dict | list | tuple):
                _walk(message, path, flat)
            else:
                flat.setdefault(path or ROOT, []).append(str(message))
        return
    flat.setdefault(path or ROOT, []).append(str(messages))
