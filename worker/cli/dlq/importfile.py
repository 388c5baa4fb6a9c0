"""Reading a file of letters for ``cartsync dlq import``: every line is checked before the
first letter is stored, whatever the size of the file.

Each line is read by the project's one JSON codec (``tasks/codec.py``: no NaN, no integers
beyond 64 bits, no nesting deeper than a payload may, UTF-8 only, each refused naming its
path), then checked as a letter (``DeadLetter.from_dict``: every field, times, statuses and
versions in range). The checked lines are copied to a temporary file of the process's own
(unnamed, gone when the command ends), and the letters are stored from that copy: a file
that changes, or a pipe that cannot be read twice, can never make the import stop halfway
on a line that was not checked.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import IO, BinaryIO

import click

from cartsync.tasks import codec
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.deadletters import DeadLetter, import_origin
from cartsync.worker.errors import InvalidUpdate, path_sort_key

#: Longest line read, in bytes. A letter holds its payload (at most tasks/codec.py's
#: MAX_BODY_BYTES, 1 MiB) and, for each edit, the payload before it: 16 MiB leaves room for
#: a dozen edits of the largest payload, and bounds what one line costs in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Deepest nesting in a line: a payload's own limit (tasks/codec.py's MAX_DEPTH) plus the
#: letter, its history and a history entry around an edit's previous payload.
MAX_LINE_DEPTH = codec.MAX_DEPTH + 3


class CheckedFile:
    """A file of letters whose every line passed, copied where nothing can change it."""

    def __init__(self, name: str, copy: IO[bytes]) -> None:
        self.name = name
        self.count = 0
        self._copy = copy

    def add(self, line: bytes) -> None:
        self._copy.write(line.rstrip(b"\r\n") + b"\n")
        self.count += 1

    def letters(self) -> Iterator[tuple[DeadLetter, str]]:
        """Each letter with its origin (``import_origin``), in the order of the file."""
        self._copy.seek(0)
        for number, line in enumerate(self._copy, start=1):
            yield parse_line(line, self.name, number)


@contextlib.contextmanager
def check_file(source: BinaryIO, name: str) -> Iterator[CheckedFile]:
    """Check every line of ``source`` and hold the checked copy while the block runs; a
    ClickException names the first bad line (its number in the file) before the block."""
    with tempfile.TemporaryFile(prefix="cartsync-import-") as copy:
        checked = CheckedFile(name, copy)
        for number, line in numbered_lines(source, name):
            if line.strip():
                parse_line(line, name, number)
                checked.add(line)
        yield checked


def numbered_lines(source: BinaryIO, name: str) -> Iterator[tuple[int, bytes]]:
    """The lines of ``source`` with their numbers, none longer than :data:`MAX_LINE_BYTES`
    held in memory (a longer one, or a binary file without line ends, stops the import)."""
    number = 0
    while line := source.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise bad_line(name, number, f"longer than {MAX_LINE_BYTES} bytes")
        yield number, line


def parse_line(line: bytes, name: str, number: int) -> tuple[DeadLetter, str]:
    """The letter on one line, and its origin; ClickException naming the line and what is
    wrong (a field, or a path in it) when there is none."""
    try:
        data = codec.decode(
            line.rstrip(b"\r\n"), max_bytes=MAX_LINE_BYTES, max_depth=MAX_LINE_DEPTH
        )
    except InvalidUpdate as exc:
        raise bad_line(name, number, first_problem(exc)) from None
    try:
        letter = DeadLetter.from_dict(data)
    except ValueError as exc:
        raise bad_line(name, number, str(exc)) from None
    return letter, import_origin(data)


def first_problem(exc: InvalidUpdate) -> str:
    """The codec's first complaint, in the order of the line: ``path: message``."""
    path = min(exc.errors, key=path_sort_key)
    message = exc.errors[path][0].rstrip(".")
    return message if path == ROOT else f"{path}: {message}"


def bad_line(name: str, number: int, problem: str) -> click.ClickException:
    return click.ClickException(f"{name}, line {number}: {problem}; nothing was imported")
