"""Reading request bodies: content types, size limits, batches, the native envelope.

Every body goes through the one JSON codec (``tasks/codec.py``); these functions only find
where one body ends and the next begins, and what a request says besides its bodies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from cartsync.tasks import codec
from cartsync.tasks.message import MAX_VERSION, VERSION_RANGE, version_problem
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.errors import InvalidUpdate

#: Updates one batch request carries at most, by default (``cartsync serve --batch-max``).
DEFAULT_BATCH_MAX = 500
#: Largest batch request, in bytes. 500 typical carts are about 1.5 MB; each update within
#: is still held to the codec's own limit (``tasks/codec.MAX_BODY_BYTES``).
BATCH_MAX_BYTES = 16 * 1024 * 1024
#: Longest idempotency key.
MAX_KEY_LENGTH = 200

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})

#: Keys of the native envelope, beside ``order``; taken out before the body is validated.
ENVELOPE_KEY, ENVELOPE_VERSION = "idempotency_key", "version"

_KEY_TEXT = re.compile(r"^[\x21-\x7e]+$")
_WHITESPACE = " \t\n\r"


class TooLarge(Exception):
    """The request is over a size limit; ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def media_type(content_type: str | None) -> str:
    """``application/json`` of ``application/json; charset=utf-8``; empty when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_size(length: int | None, limit: int) -> None:
    """Refuse a declared Content-Length over ``limit`` before reading anything."""
    if length is not None and length > limit:
        raise TooLarge(f"The body is {length} bytes; at most {limit} are accepted.")


def read_body(stream: IO[bytes], declared: int | None, limit: int) -> bytes:
    """A request's body, refused (TooLarge) when its Content-Length (``declared``) says more
    than ``limit`` bytes or it holds more; never reads more than one byte past the limit."""
    check_size(declared, limit)
    data = stream.read(limit + 1)
    check_size(len(data), limit)
    return data


def idempotency_key(raw: str | None) -> str | None:
    """A key from the Idempotency-Key header; InvalidUpdate when it is malformed."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not _KEY_TEXT.match(key):
        raise InvalidUpdate(
            {"Idempotency-Key": [f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."]}
        )
    return key


def order_version(raw: str | None) -> int | None:
    """The producer's version from the Order-Version header; InvalidUpdate when malformed.

    ASCII digits only: ``str.isdigit`` also passes ``²``, which ``int`` then refuses."""
    if raw is None:
        return None
    text = raw.strip()
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_VERSION))
    if not digits or version_problem(int(text)) is not None:
        raise InvalidUpdate({"Order-Version": [f"{VERSION_RANGE}."]})
    return int(text)


@dataclass(frozen=True)
class Envelope:
    """One native update: seQura's body and what the producer said beside it."""

    body: Any
    key: str | None = None
    version: int | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


def open_envelope(item: Any, *, key: str | None, version: int | None) -> Envelope:
    """Take ``idempotency_key`` and ``version`` out of a native body; the headers' ``key``
    and ``version`` apply when the body has none, and must agree when it has."""
    if not isinstance(item, Mapping) or not (ENVELOPE_KEY in item or ENVELOPE_VERSION in item):
        return Envelope(item, key, version)
    body = {k: v for k, v in item.items() if k not in (ENVELOPE_KEY, ENVELOPE_VERSION)}
    errors: dict[str, list[str]] = {}
    own_key = item.get(ENVELOPE_KEY, key)
    if ENVELOPE_KEY in item:
        if not isinstance(own_key, str):
            errors[ENVELOPE_KEY] = ["Must be text."]
        else:
            try:
                own_key = idempotency_key(own_key)
            except InvalidUpdate:
                errors[ENVELOPE_KEY] = [
                    f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."
                ]
            if key is not None and own_key != key:
                errors.setdefault(ENVELOPE_KEY, []).append(
                    "Differs from the Idempotency-Key header."
                )
    own_version = item.get(ENVELOPE_VERSION, version)
    if ENVELOPE_VERSION in item:
        problem = version_problem(own_version)
        if problem is not None:
            errors[ENVELOPE_VERSION] = [problem]
        elif version is not None and own_version != version:
            errors[ENVELOPE_VERSION] = ["Differs from the Order-Version header."]
    if errors:
        return Envelope(body, errors=errors)
    return Envelope(body, own_key, own_version)


def split_json_array(text: str, max_items: int) -> list[str]:
    """The texts of a JSON array's items, each to be decoded by the codec on its own, so that
    one bad item never refuses the rest. InvalidUpdate when it is no array; TooLarge past
    ``max_items``."""
    if codec.nesting_depth(text) > codec.MAX_DEPTH + 1:
        raise InvalidUpdate({ROOT: [codec.TOO_DEEP]})
    # Numbers are kept as text here: the codec checks them, item by item.
    decoder = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
    at = _skip(text, 0)
    if at >= len(text) or text[at] != "[":
        raise InvalidUpdate({ROOT: ["Must be a JSON array of updates (or JSON Lines)."]})
    at = _skip(text, at + 1)
    items: list[str] = []
    if at < len(text) and text[at] == "]":
        return _end(text, at + 1, items)
    while True:
        try:
            _, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise InvalidUpdate(
                {ROOT: [f"Not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."]}
            ) from None
        items.append(text[at:end])
        if len(items) > max_items:
            raise TooLarge(f"At most {max_items} updates per batch; send the rest in another.")
        at = _skip(text, end)
        if at < len(text) and text[at] == ",":
            at = _skip(text, at + 1)
            continue
        if at < len(text) and text[at] == "]":
            return _end(text, at + 1, items)
        raise InvalidUpdate({ROOT: ["Not JSON: expected ',' or ']' after an item."]})


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _end(text: str, at: int, items: list[str]) -> list[str]:
    if _skip(text, at) != len(text):
        raise InvalidUpdate({ROOT: ["Not JSON: extra data after the array."]})
    return items


def split_lines(data: bytes, max_items: int) -> list[bytes]:
    """The non-blank lines of a JSON Lines body; TooLarge past ``max_items``."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    if len(lines) > max_items:
        raise TooLarge(f"At most {max_items} updates per batch; send the rest in another.")
    return lines


def batch_texts(data: bytes, media: str, max_items: int) -> list[bytes | str]:
    """The undecoded items of a batch body of media type ``media``."""
    if media in NDJSON_TYPES:
        return list(split_lines(data, max_items))
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidUpdate({ROOT: [f"Not UTF-8 text (byte {exc.start + 1})."]}) from None
    return list(split_json_array(text, max_items))
