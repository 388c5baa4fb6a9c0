"""A letter as the store keeps it: compressed JSON, and the token that guards changes to it.

Reading is defensive: stored bytes that do not read back as a letter (written by hand, by an
older cartsync, or damaged) become a :class:`Damaged` entry, which names what is wrong and
keeps what can still be read, instead of an exception that would stop every listing.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from cartsync.worker.deadletters.letter import DeadLetter, valid_id

#: zlib level for letter bodies: 6 is within a few per cent of 9 on cart JSON at a third of
#: the CPU time, and the bulk import and benchmark fill compress a million letters.
COMPRESSION_LEVEL = 6
#: Characters of a damaged letter's stored text kept for people to look at (``dlq show``).
DAMAGED_TEXT_CHARS = 64 * 1024
#: Fields of a damaged letter's JSON that say where it is listed, kept when they are text or
#: a number (see :meth:`DeadLetterStore.locate`).
PLACING_FIELDS = ("update_id", "merchant", "order_ref", "reason", "status", "dead_at")


def encode(letter: DeadLetter) -> bytes:
    """A letter as stored: its JSON, zlib-compressed."""
    return zlib.compress(letter.to_json().encode(), COMPRESSION_LEVEL)


def decode(raw: bytes) -> DeadLetter:
    """A stored letter back; ValueError naming what is wrong when the bytes are not one."""
    return DeadLetter.from_dict(_json_of(_text_of(raw)))


def token_of(raw: bytes) -> str:
    """The compare-and-set token of a stored letter (what Redis's ``sha1hex`` computes)."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A letter as read, with the token that a change to it must present."""

    letter: DeadLetter
    token: str


@dataclass(frozen=True)
class Damaged:
    """What is stored under a letter id that does not read back as a letter.

    It is listed as damaged, shown as far as it decodes, and can be dropped by its id.
    """

    id: str
    token: str
    #: What is wrong, in one line.
    problem: str
    #: The stored text as far as it decodes (the letter's JSON, or the bytes escaped), cut at
    #: :data:`DAMAGED_TEXT_CHARS`.
    text: str
    #: Of :data:`PLACING_FIELDS`, those its JSON still holds as text or numbers.
    hints: dict[str, Any] = field(default_factory=dict)


def stored_of(letter_id: str, raw: bytes | str) -> Stored | Damaged:
    """What is stored under ``letter_id``: the letter with its token, or why it is not one."""
    if isinstance(raw, str):  # a client that decodes responses
        raw = raw.encode("utf-8", "surrogateescape")
    token = token_of(raw)
    try:
        text = _text_of(raw)
    except ValueError as exc:
        return Damaged(letter_id, token, str(exc), _escaped(raw))
    shown = text[:DAMAGED_TEXT_CHARS]
    try:
        data = _json_of(text)
    except ValueError as exc:
        return Damaged(letter_id, token, str(exc), shown)
    try:
        letter = DeadLetter.from_dict(data)
    except ValueError as exc:
        return Damaged(letter_id, token, str(exc), shown, _hints(data))
    if letter.id != letter_id or not valid_id(letter_id):
        problem = "its id is not one the store makes, or not the one it is stored under"
        return Damaged(letter_id, token, problem, shown, _hints(data))
    return Stored(letter, token)


def _text_of(raw: bytes) -> str:
    try:
        return zlib.decompress(raw).decode("utf-8")
    except zlib.error:
        raise ValueError("not a compressed letter") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def _json_of(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None


def _hints(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    return {
        name: data[name]
        for name in PLACING_FIELDS
        if isinstance(data.get(name), str | int | float) and not isinstance(data[name], bool)
    }


def _escaped(raw: bytes) -> str:
    return repr(raw[: DAMAGED_TEXT_CHARS // 4])[2:-1]


def member_text(raw: Any) -> str:
    """An index member, hash field or value as text; bytes that are not UTF-8 (written by
    hand) read as an id no letter has, rather than stopping the walk."""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
