"""Choosing letters: the filter options every bulk command shares, the :class:`Selection` a
bulk command acts on, and the two commands that only look (``list`` and ``stats``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cartsync.worker.cli.dlq.render import ERROR_WIDTH, table, truncate
from cartsync.worker.cli.dlq.session import BATCH, Session, progress, with_session
from cartsync.worker.deadletters import (
    ID_PATTERN,
    Damaged,
    DeadLetter,
    DeadLetterStore,
    Filters,
    Reason,
    Stored,
    id_bound,
    id_time,
    status_key,
    valid_id,
)
from cartsync.worker.timefmt import format_age, parse_duration, parse_instant

#: Letters ``list`` shows per page unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 50
#: Largest page ``list`` serves: a page is read in one round trip.
MAX_LIMIT = 5000

F = TypeVar("F", bound=Callable[..., Any])


# -- filter options ----------------------------------------------------------------------------


def _status(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text == "none":
        return text
    if text.isdigit() and 100 <= int(text) <= 599:
        return str(int(text))
    raise click.BadParameter(f"{value!r} is not an HTTP status code (100-599) or 'none'")


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_instant(value, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Click callback: a duration option's seconds (``--older-than 30d``)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: The options :func:`filter_options` adds, as ``**options`` carries them.
FILTER_NAMES = ("merchant", "reason", "status", "order", "since", "until", "grep")


def filter_options(command: F) -> F:
    """Adds the filter options; :func:`filters_from` takes them back out of ``**options``."""
    options = [
        click.option("--merchant", metavar="REF", help="Only this merchant-ref."),
        click.option(
            "--reason", type=click.Choice([r.value for r in Reason]), help="Only this reason."
        ),
        click.option(
            "--status", metavar="CODE", callback=_status, help="Only this HTTP status, or none."
        ),
        click.option("--order", metavar="REF", help="Only this order-ref."),
        click.option(
            "--since", metavar="WHEN", callback=_instant, help="Dead at or after (ISO, or 2h ago)."
        ),
        click.option(
            "--until", metavar="WHEN", callback=_instant, help="Dead before (ISO, or 2h ago)."
        ),
        click.option("--grep", metavar="TEXT", help="Error texts contain TEXT (any case)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def filters_from(options: dict[str, Any]) -> Filters:
    filters = Filters(
        merchant=options.pop("merchant"),
        reason=options.pop("reason"),
        status=options.pop("status"),
        order_ref=options.pop("order"),
        since=options.pop("since"),
        until=options.pop("until"),
        grep=options.pop("grep") or None,
    )
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    return filters


# -- what a bulk command acts on ---------------------------------------------------------------


@dataclass
class Selection:
    """The letters a bulk command acts on: named ids, or everything matching filters; damaged
    letters among them (which only ``drop`` and ``purge`` can act on)."""

    store: DeadLetterStore
    filters: Filters
    named: list[Stored | Damaged] | None = None
    #: Letters that die after the command started are left for the next run.
    below: str | None = None

    def count(self) -> int:
        if self.named is not None:
            return len(self.named)
        return self.store.count(self.filters)

    def __iter__(self) -> Iterator[Stored | Damaged]:
        if self.named is not None:
            return iter(self.named)
        return self.store.entries(self.filters, below=self.below, batch=BATCH)

    def describe(self) -> dict[str, Any]:
        if self.named is not None:
            return {"ids": [entry_id(s) for s in self.named][:100], "count": len(self.named)}
        return {"filters": self.filters.describe() or "all"}


def entry_id(entry: Stored | Damaged) -> str:
    """The id of a letter as read, damaged or not."""
    return entry.letter.id if isinstance(entry, Stored) else entry.id


def select(
    store: DeadLetterStore, ids: tuple[str, ...], all_: bool, filters: Filters, verb: str
) -> Selection:
    if ids and (all_ or not filters.empty):
        raise click.UsageError(f"give letter ids or --all/filters to {verb}, not both")
    if not ids and not all_ and filters.empty:
        raise click.UsageError(f"say which letters to {verb}: ids, --all, or filters")
    if ids:
        # Any text: a damaged letter's id may not be one the store makes, and must be droppable.
        unique = list(dict.fromkeys(ids))
        loaded = store.load_many(unique)
        found = {i: s for i, s in zip(unique, loaded, strict=True) if s is not None}
        missing = [i for i in unique if i not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise click.ClickException(f"no dead letter with id {missing[0]!r}{more}")
        return Selection(store, filters, named=[found[i] for i in unique])
    return Selection(store, filters, below=id_bound(time.time() + 0.001))


# -- list and stats ----------------------------------------------------------------------------


@click.command("list")
@with_session
@filter_options
@click.option(
    "--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True
)
@click.option("--cursor", metavar="ID", help="Continue below this letter (from the last page).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_letters(
    session: Session, limit: int, cursor: str | None, as_json: bool, **options: Any
) -> None:
    """Dead letters, newest first."""
    filters = filters_from(options)
    if cursor is not None and not ID_PATTERN.match(cursor):
        raise click.BadParameter(f"{cursor!r} is not a letter id", param_hint="--cursor")
    if filters.grep is not None and not session.store.text_index_ready():
        click.echo(
            "note: --grep reads every letter until the error-text index is built; "
            "`cartsync dlq reindex` builds it once.",
            err=True,
        )
    page = session.store.page(filters, limit=limit, cursor=cursor)
    now = time.time()
    if as_json:
        for entry in page.entries:
            found = (
                summary(entry.letter, now) if isinstance(entry, Stored) else damaged_summary(entry)
            )
            click.echo(json.dumps(found, ensure_ascii=False))
        if page.cursor:
            click.echo(f"next page: --cursor {page.cursor}", err=True)
        return
    if not page.entries:
        click.echo("No dead letters match.")
        return
    rows = [row(e, now) if isinstance(e, Stored) else damaged_row(e, now) for e in page.entries]
    table(["ID", "AGE", "MERCHANT", "ORDER", "V", "REASON", "STATUS", "ERROR"], rows)
    damaged = len(page.entries) - len(page.letters)
    if damaged:
        click.echo(
            f"\n{damaged} damaged letter(s) on this page: `cartsync dlq show ID` shows what is "
            "stored, `cartsync dlq drop ID` removes it (docs/RUNBOOK.md, damaged letters).",
            err=True,
        )
    if page.cursor:
        click.echo(f"\nMore: add --cursor {page.cursor} for the next page.")


def row(stored: Stored, now: float) -> list[str]:
    """A letter as one row of ``list``'s table."""
    letter = stored.letter
    return [
        letter.id,
        format_age(now - letter.dead_at),
        letter.merchant,
        letter.order_ref,
        "-" if letter.version is None else str(letter.version),
        letter.reason,
        status_key(letter.status),
        truncate(letter.first_error, ERROR_WIDTH),
    ]


def damaged_row(damaged: Damaged, now: float) -> list[str]:
    """A damaged letter as one row of ``list``'s table: what its JSON still says, and why it
    is damaged in place of the error."""
    hints = damaged.hints
    age = format_age(now - id_time(damaged.id)) if valid_id(damaged.id) else "?"
    return [
        damaged.id,
        age,
        _hint(hints, "merchant"),
        _hint(hints, "order_ref"),
        "?",
        "DAMAGED",
        "?",
        truncate(damaged.problem, ERROR_WIDTH),
    ]


def _hint(hints: dict[str, Any], name: str) -> str:
    value = hints.get(name)
    return truncate(value, ERROR_WIDTH) if isinstance(value, str) and value else "?"


def damaged_summary(damaged: Damaged) -> dict[str, Any]:
    """A damaged letter as one line of ``list --json``: its id, why, and its JSON's hints."""
    return {"id": damaged.id, "damaged": damaged.problem, **damaged.hints}


def summary(letter: DeadLetter, now: float) -> dict[str, Any]:
    """A letter as one line of ``list --json``: everything but the payload and history."""
    return {
        "id": letter.id,
        "age_s": round(now - letter.dead_at, 3),
        "dead_at": letter.dead_at,
        "merchant": letter.merchant,
        "order_ref": letter.order_ref,
        "version": letter.version,
        "reason": letter.reason,
        "status": letter.status,
        "errors": letter.errors,
        "update_id": letter.update_id,
        "attempts": len(letter.attempts),
        "revision": letter.revision,
    }


@click.command()
@with_session
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def stats(session: Session, as_json: bool) -> None:
    """Counts by reason, status and merchant, and the oldest letter's age."""
    result = session.store.stats()
    now = time.time()
    oldest_age = None
    if result.oldest_id is not None:
        # From the id (the time of death): the oldest letter itself may be damaged.
        oldest_age = now - id_time(result.oldest_id)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "total": result.total,
                    "by_reason": result.by_reason,
                    "by_status": result.by_status,
                    "by_merchant": result.by_merchant,
                    "oldest_id": result.oldest_id,
                    "oldest_age_s": None if oldest_age is None else round(oldest_age, 3),
                    "newest_id": result.newest_id,
                },
                ensure_ascii=False,
            )
        )
        return
    if not result.total:
        click.echo("No dead letters.")
        return
    click.echo(f"Dead letters: {result.total}")
    if oldest_age is not None:
        click.echo(f"Oldest: {result.oldest_id} ({format_age(oldest_age)} old)")
    for title, group in (
        ("reason", result.by_reason),
        ("status", result.by_status),
        ("merchant", result.by_merchant),
    ):
        click.echo(f"\nBy {title}:")
        width = max(len(name) for name in group)
        for name, count in group.items():
            click.echo(f"  {name:<{width}}  {count}")


@click.command()
@with_session
def reindex(session: Session) -> None:
    """Build the error-text index that answers --grep without reading every letter.

    Stores parked before the index existed need it once; letters parked, edited and removed
    keep it up to date from then on. Safe while letters come and go, and to run again.
    """
    store = session.store
    if store.text_index_ready():
        click.echo("The error-text index is complete already; building it again.", err=True)
    total = store.count(Filters())
    read = 0
    with progress(total, "Indexing") as bar:
        for read_so_far in store.reindex(batch=BATCH):
            bar.update(read_so_far - read)
            read = read_so_far
    click.echo(f"Indexed the error texts of {read} letter(s); --grep now uses the index.")
