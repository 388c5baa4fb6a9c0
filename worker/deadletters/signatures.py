"""Error signatures: seQura's error texts with the numbers masked, so that letters that failed
for the same reason group together ("... add up to N (N+N+-N+N) but order_total_with_tax is
N. The diff is N.").

Shared by ``cartsync dlq list --group error`` and the console's dead-letter page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from cartsync.worker.deadletters.letter import DeadLetter

#: What a masked number reads as.
NUMBER = "N"
#: Letters' texts compared at most this long: seQura's texts are one sentence or two.
SIGNATURE_WIDTH = 300
#: The signature of a letter without error texts.
NO_ERROR = "(no error text)"

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACES = re.compile(r"\s+")


def signature(text: str) -> str:
    """``text`` with every number replaced by ``N`` and runs of spaces made one."""
    masked = _NUMBER.sub(NUMBER, text)
    return _SPACES.sub(" ", masked).strip()[:SIGNATURE_WIDTH]


def letter_signature(letter: DeadLetter) -> str:
    """The signature of a letter's first error text (the one tables show)."""
    first = letter.first_error
    return signature(first) if first else NO_ERROR


def grep_text(sig: str) -> str:
    """The longest stretch of a signature without a masked number: a ``grep`` filter that
    finds the letters of this signature (and perhaps a few more)."""
    parts = [part.strip() for part in re.split(rf"\b{NUMBER}\b", sig)]
    return max(parts, key=len) if parts else sig


@dataclass(frozen=True)
class SignatureGroup:
    signature: str
    count: int
    #: The newest letter of the group, to open.
    example_id: str
    #: A ``grep`` filter for the group's letters.
    grep: str


def group_by_signature(letters: Iterable[DeadLetter]) -> list[SignatureGroup]:
    """Letters (newest first) grouped by signature, the largest group first."""
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for letter in letters:
        sig = letter_signature(letter)
        counts[sig] += 1
        example.setdefault(sig, letter.id)
    return [
        SignatureGroup(sig, count, example[sig], grep_text(sig))
        for sig, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
