"""How letters look on a terminal: tables, one-line descriptions, shortened error texts."""

from __future__ import annotations

import shlex
import shutil
import sys
from typing import TextIO

import click

from cartsync.worker.deadletters import Damaged, DeadLetter

#: Characters of the first error line shown in tables that are not sized to the terminal
#: (``audit``, dry runs).
ERROR_WIDTH = 70
#: Narrowest the last column (the error) of a table sized to a terminal is cut to: on a
#: narrow terminal the line wraps rather than leave nothing of the error to read.
MIN_LAST_WIDTH = 30
#: Space between columns.
GAP = 2


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis showing that it was."""
    return text if len(text) <= width else text[: width - 1] + "…"


def terminal_columns() -> int | None:
    """The width of the terminal standard output goes to, or None when it goes elsewhere (a
    pipe, a file): then nothing is cut, for ``grep`` and ``less -S`` to see it all."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def last_width(widths: list[int], columns: int) -> int:
    """How wide the last column may be for a line of ``columns``, after the others (as wide
    as ``widths``, but for the last) and the gaps; never under :data:`MIN_LAST_WIDTH`."""
    used = sum(widths[:-1]) + GAP * (len(widths) - 1)
    return max(MIN_LAST_WIDTH, columns - used)


def table(
    header: list[str],
    rows: list[list[str]],
    out: TextIO | None = None,
    *,
    columns: int | None = None,
) -> None:
    """Columns as wide as their widest cell, two spaces apart, no trailing blanks; with
    ``columns``, the last column gets the rest of a line that wide and is cut to it."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if columns is not None:
        room = last_width(widths, columns)
        rows = [[*row[:-1], truncate(row[-1], room)] for row in rows]
        widths[-1] = min(widths[-1], room)
    for row in [header, *rows]:
        line = (" " * GAP).join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(line.rstrip(), file=out)


def describe(letter: DeadLetter) -> str:
    """``ID merchant/order vN``: a letter in one line of a dry run or a replay's summary."""
    version = "-" if letter.version is None else f"v{letter.version}"
    return f"{letter.id} {letter.merchant}/{letter.order_ref} {version}"


def describe_damaged(damaged: Damaged) -> str:
    """``ID (damaged: why)``: a damaged letter in one line of a dry run or a summary."""
    return f"{damaged.id} (damaged: {truncate(damaged.problem, ERROR_WIDTH)})"


def command_for(verb: str, letter_id: str) -> str:
    """The command line that runs ``cartsync dlq VERB`` on one letter, as people can paste it:
    an id starting with a dash (a damaged one) after ``--``, anything unusual quoted."""
    dashes = "-- " if letter_id.startswith("-") else ""
    return f"cartsync dlq {verb} {dashes}{shlex.quote(letter_id)}"
