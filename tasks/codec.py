"""The one JSON codec: every way in and the way out read and write bodies through it.

``cartsync validate``, ``cartsync enqueue``, the Python API, ``dlq edit``, ``dlq import`` and
the worker must agree on every input: a body one of them accepts, the worker can send. So
each reads JSON with :func:`decode` (or checks an object it was handed with :func:`check`),
and the worker writes it with :func:`encode`. Both refuse, naming the path, what JSON cannot
carry or seQura cannot take:

- ``NaN``, ``Infinity`` and numbers beyond a double (``1e400``): JSON has no such values, and
  Python's encoder refuses them, so they could be accepted but never sent;
- integers outside signed 64 bits: amounts and versions must stay exact everywhere, Redis's
  Lua included (see ``worker/ledger.py``), and thousands of digits cost the validator time;
- nesting deeper than :data:`MAX_DEPTH`, which Python's recursive encoder and the schemas
  would otherwise meet as a ``RecursionError`` in the worker;
- bodies larger than :data:`MAX_BODY_BYTES`, and text that is not UTF-8.

A UTF-8 byte order mark before the body is skipped (editors on Windows write one). Error
messages name paths and limits, never a value from the payload. Data that holds no JSON at all
(not UTF-8, not JSON) raises :class:`worker.errors.UnreadableBody`, JSON that breaks a limit a
plain :class:`worker.errors.InvalidUpdate`: the HTTP API answers both with 422, the CLI tells
unreadable input from a refused body (``worker/cli/common.py``).

The limits are constants, not settings: they describe what seQura's payload and a signed
64-bit integer can hold, not a deployment's taste. README.md ("What validation checks") lists
them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.errors import InvalidUpdate, UnreadableBody

#: Largest body accepted, in bytes of UTF-8. A real Order Update body is a few kilobytes; a
#: cart of 500 items is about 150 kB.
MAX_BODY_BYTES = 1024 * 1024

#: Deepest nesting of objects and arrays. seQura's payload nests 7 levels at most (an item's
#: flight legs); the rest is room for the keys integrations add.
MAX_DEPTH = 32

#: Integers must fit in signed 64 bits: amounts in cents and versions alike (a version may be
#: a microsecond timestamp, past 2**53, which the ledger keeps exact as text in Lua).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

#: Digits in the longest integer that can be in range; longer text is refused unparsed.
_MAX_INT_DIGITS = len(str(MAX_INT))

_BOM = "\ufeff"
#: JSON strings (with their escapes), blanked out before brackets are counted.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")

#: How the message for text that is not JSON starts: ``Not JSON: Expecting value at line 1
#: column 9.`` (the place, never the content).
NOT_JSON = "Not JSON"
NOT_FINITE = "Not a finite number: JSON cannot carry NaN, Infinity or numbers beyond ±1.8e308."
OUT_OF_RANGE = f"Integer out of range: it must lie between {MIN_INT} and {MAX_INT}."


def too_deep(max_depth: int = MAX_DEPTH) -> str:
    """The message for nesting past ``max_depth`` levels."""
    return f"It nests too deeply: more than {max_depth} levels of objects and arrays."


TOO_DEEP = too_deep()
NOT_JSON_TYPE = "Not a JSON value."
KEY_NOT_TEXT = "Object keys must be text."


class _Refused:
    """Stands in, while decoding, for a number that is refused once its path is known."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parse_int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(OUT_OF_RANGE)
    number = int(text)
    return number if MIN_INT <= number <= MAX_INT else _Refused(OUT_OF_RANGE)


def _parse_float(text: str) -> float | _Refused:
    number = float(text)
    return number if math.isfinite(number) else _Refused(NOT_FINITE)


def _parse_constant(text: str) -> _Refused:
    return _Refused(NOT_FINITE)


def nesting_depth(text: str) -> int:
    """How deeply the objects and arrays of JSON ``text`` nest, counted without recursion."""
    steps = (1 if bracket in "[{" else -1 for bracket in _BRACKETS.findall(_STRING.sub("", text)))
    return max(itertools.accumulate(steps, initial=0))


def decode(
    data: bytes | str, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """The JSON value of ``data``; raises InvalidUpdate naming the path of each problem."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        limit = f"The body is {size} bytes; at most {max_bytes} are accepted."
        raise InvalidUpdate({ROOT: [limit]})
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableBody({ROOT: [f"Not UTF-8 text (byte {exc.start + 1})."]}) from None
    else:
        text = data
    text = text.removeprefix(_BOM)
    if nesting_depth(text) > max_depth:
        raise InvalidUpdate({ROOT: [too_deep(max_depth)]})
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise UnreadableBody(
            {ROOT: [f"{NOT_JSON}: {exc.msg} at line {exc.lineno} column {exc.colno}."]}
        ) from None
    check(value, max_depth=max_depth)
    return value


def problems(value: Any, *, max_depth: int = MAX_DEPTH) -> dict[str, list[str]]:
    """Path -> messages for what in ``value`` JSON cannot carry; empty when nothing.

    Walks without recursion, so that no depth of nesting can overflow the stack. Every body
    the producer and the worker validate is checked, so a plain one is seen through first by
    :func:`_plain`, which builds no paths.
    """
    return {} if _plain(value, max_depth) else _walk(value, max_depth)


def _walk(value: Any, max_depth: int) -> dict[str, list[str]]:
    """:func:`problems`, path by path."""
    found: dict[str, list[str]] = {}
    stack: list[tuple[str, Any, int]] = [("", value, 1)]
    while stack:
        path, item, depth = stack.pop()
        message = _problem(item)
        if message is not None:
            found.setdefault(path or ROOT, []).append(message)
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if depth > max_depth:
            found.setdefault(path or ROOT, []).append(too_deep(max_depth))
            continue
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                if not isinstance(key, str):
                    found.setdefault(path or ROOT, []).append(KEY_NOT_TEXT)
                    continue
                children.append((f"{path}.{key}" if path else key, child, depth + 1))
        else:
            children = [
                (f"{path}.{index}" if path else str(index), child, depth + 1)
                for index, child in enumerate(item)
            ]
        stack.extend(reversed(children))
    return found


#: Types whose values JSON carries as they are, whatever they hold.
_LEAVES = frozenset({str, bool, type(None)})
#: Types of the keys JSON objects may have.
_TEXT_ONLY = frozenset({str})


def _plain(value: Any, max_depth: int) -> bool:
    """True when :func:`problems` would find nothing, by a cheaper walk: level by level, with
    exact types only (anything else, a subclass included, is left to :func:`problems`)."""
    level, depth, keys = [value], 1, []
    while level:
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind in _LEAVES:
                continue
            if kind is int:
                if not MIN_INT <= item <= MAX_INT:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif kind is dict:
                if depth > max_depth:
                    return False
                keys.extend(item)
                below.extend(item.values())
            elif kind is list or kind is tuple:
                if depth > max_depth:
                    return False
                below.extend(item)
            else:
                return False
        if keys and not set(map(type, keys)) <= _TEXT_ONLY:
            return False
        level, depth, keys = below, depth + 1, []
    return True


def _problem(item: Any) -> str | None:
    if isinstance(item, _Refused):
        return item.message
    if item is None or isinstance(item, str | bool | dict | list | tuple):
        return None
    if isinstance(item, int):
        return None if MIN_INT <= item <= MAX_INT else OUT_OF_RANGE
    if isinstance(item, float):
        return None if math.isfinite(item) else NOT_FINITE
    return NOT_JSON_TYPE


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise InvalidUpdate, naming each path, if ``value`` holds what JSON cannot carry."""
    found = problems(value, max_depth=max_depth)
    if found:
        raise InvalidUpdate(found)


def encode(value: Any) -> str:
    """Compact JSON text, non-ASCII letters as they are; refuses NaN and Infinity."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_utf8(value: Any) -> bytes:
    """:func:`encode` as UTF-8 bytes: what goes on the wire to seQura.

    A lone surrogate (``"\\ud800"`` in the producer's JSON) cannot be UTF-8; validation
    refuses one in every string it sees (``tasks/schemas/base.is_utf8``), and should one get
    past it, the body falls back to ``\\u`` escapes throughout rather than failing to send.
    """
    try:
        return encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
