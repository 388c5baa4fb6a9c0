"""A letter as the store keeps it: compressed JSON, and the token that guards changes to it."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from cartsync.worker.deadletters.letter import DeadLetter

#: zlib level for letter bodies: 6 is within a few per cent of 9 on cart JSON at a third of
#: the CPU time, and the bulk import and benchmark fill compress a million letters.
COMPRESSION_LEVEL = 6


def encode(letter: DeadLetter) -> bytes:
    """A letter as stored: its JSON, zlib-compressed."""
    return zlib.compress(letter.to_json().encode(), COMPRESSION_LEVEL)


def decode(raw: bytes) -> DeadLetter:
    """A stored letter back; ValueError (or zlib.error) when the bytes are not one."""
    return DeadLetter.from_dict(json.loads(zlib.decompress(raw)))


def token_of(raw: bytes) -> str:
    """The compare-and-set token of a stored letter (what Redis's ``sha1hex`` computes)."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A letter as read, with the token that a change to it must present."""

    letter: DeadLetter
    token: str


def stored_of(raw: Any) -> Stored:
    """A letter as read from Redis, with its token."""
    return Stored(decode(raw), token_of(raw))
