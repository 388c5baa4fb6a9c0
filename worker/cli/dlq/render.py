"""How letters look on a terminal: tables, one-line descriptions, shortened error texts."""

from __future__ import annotations

import shlex
from typing import TextIO

import click

from cartsync.worker.deadletters import Damaged, DeadLetter

#: Characters of the first error line shown in tables.
ERROR_WIDTH = 70


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis showing that it was."""
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: list[str], rows: list[list[str]], out: TextIO | None = None) -> None:
    """Columns as wide as their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
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
