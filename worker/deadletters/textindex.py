"""The error-text index behind ``--grep``: which letters a text search must read, decided
without reading them. Pure: what a letter is listed under, and what a search asks for.

``--grep TEXT`` means: one of the letter's error texts holds TEXT, ignoring case
(``TEXT.casefold() in error.casefold()``, ``grep_matches`` in worker/deadletters/filters.py).
The index does not change that meaning: it only narrows down the letters to check, and every
letter it names is checked exactly. So it must never leave out a letter that matches (the
candidates are a superset); naming a few that do not costs only their reading.

Each error text is listed under two kinds of **terms**, chosen so that a letter has a handful
of them and a store has few distinct ones:

- its **signature**: the text case folded with every number (``[0-9]+`` joined by ``.`` or
  ``,``, as ``12.50`` or ``1,234``) replaced by ``\x01``. seQura's texts come from templates
  filled with numbers, so a store has few distinct signatures; a search reads them all (one
  hash) and keeps those that could hold the text (:func:`Query.admits`). Texts that quote
  something else that varies (a reference made of letters) make a signature per letter:
  searches then read a hash as large as the store, still far cheaper than the letters;
- each **number** it holds, exactly as written: amounts and differences are what makes
  ``The diff is 125`` rare, and what people search for.

A search for text that no signature could hold answers at once; one that names a number
(``up to 5055 ``) reads the few letters holding that number. Why not word or trigram
postings: a letter's texts hold some 20 distinct words and well over 100 trigrams, each a
set member of about 60 bytes in Redis, which would add kilobytes to a letter of 2.5 KB; the
signature and the numbers are about four members (239 bytes per letter measured at 500,000
letters, docs/PERFORMANCE.md). A search whose text holds no number and fits most signatures
(``total_with_tax``) is not narrowed: the store then walks its letters as it did before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: A number in an error text, as a term: digits, perhaps grouped or with decimals.
NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")
#: What a number reads as in a signature (a character seQura's texts do not hold).
PLACEHOLDER = "\x01"

_NUMBER_CHARS = re.compile(r"[0-9.,]+")
_DIGITS = re.compile(r"[0-9]+")
#: What a run of the search text's digits, dots and commas can be in a signature.
_ANY_NUMBERS = "[.,\x01]+"


@dataclass(frozen=True)
class Term:
    """One entry of a letter in the index: ``kind`` ``s`` (a signature, named by its digest)
    or ``n`` (a number), ``name`` what its key ends with, ``text`` what the vocabulary keeps
    (the signature, or the number)."""

    kind: str
    name: str
    text: str


def signature(text: str) -> str:
    """An error text as the index lists it: case folded, its numbers masked."""
    return NUMBER.sub(PLACEHOLDER, text.casefold())


def digest(sig: str) -> str:
    """The name of a signature's set: a digest, since a signature can be long (128 bits:
    two signatures sharing one would hide the second's letters from searches, so it must
    not happen by chance)."""
    return hashlib.blake2b(sig.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def terms_of(errors: Iterable[str]) -> list[Term]:
    """Every term a letter with these error texts is listed under, each once, sorted."""
    found: set[Term] = set()
    for text in errors:
        sig = signature(text)
        found.add(Term("s", digest(sig), sig))
        found.update(Term("n", number, number) for number in NUMBER.findall(text.casefold()))
    return sorted(found, key=lambda term: (term.kind, term.name))


@dataclass(frozen=True)
class Query:
    """What a search text asks of the index; each part holds for every letter that matches.

    - ``pattern``: searched in each signature; a text that matches can only have a signature
      it finds.
    - ``exact``: numbers the text holds whole (with something other than a digit, ``.`` or
      ``,`` on both sides within the search text): each is a number of the matching text.
    - ``prefixes``: digits that start a number of the matching text (a number at the end of
      the search text may go on).
    - ``infixes``: digits inside a number of the matching text (a number at the start of the
      search text may have begun before it).
    """

    pattern: re.Pattern[str]
    exact: frozenset[str]
    prefixes: frozenset[str]
    infixes: frozenset[str]

    def admits(self, sig: str) -> bool:
        return self.pattern.search(sig) is not None


def query(needle: str) -> Query:
    """What the index must answer for ``--grep needle``.

    Why the pattern never misses: in a matching text, a character of the search text that is
    no digit, ``.`` or ``,`` is never part of a number, so it is in the signature as it is; a
    digit always is, so a run of digits, dots and commas holding one stands for a stretch of
    placeholders and dots and commas; dots and commas with other characters on both sides in
    the search text are no part of a number (a number's ``.`` sits between digits), but at
    either end of the search text they may be.
    """
    folded = needle.casefold()
    parts: list[str] = []
    exact: set[str] = set()
    prefixes: set[str] = set()
    infixes: set[str] = set()
    position = 0
    for run in _NUMBER_CHARS.finditer(folded):
        parts.append(re.escape(folded[position : run.start()]))
        position = run.end()
        at_start, at_end = run.start() == 0, run.end() == len(folded)
        digits = _DIGITS.findall(run.group())
        if not digits:
            parts.append(_ANY_NUMBERS if at_start or at_end else re.escape(run.group()))
            continue
        parts.append(_ANY_NUMBERS)
        if not at_start and not at_end:
            # Whole: what comes before and after is no part of a number, as in the text.
            exact.update(NUMBER.findall(run.group()))
        elif not at_start:
            # Its first digit starts a number (only dots and commas come before it in the
            # run, after a character that ends any number), which may go on past the end.
            prefixes.add(digits[0])
        else:
            # The number may have begun before the search text: only its digits are sure.
            infixes.add(max(digits, key=len))
    parts.append(re.escape(folded[position:]))
    return Query(
        re.compile("".join(parts)), frozenset(exact), frozenset(prefixes), frozenset(infixes)
    )
