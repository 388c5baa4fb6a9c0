"""Choosing letters: the filter options every bulk command shares, the :class:`Selection` a
bulk command acts on, and the two commands that only look (``list`` and ``stats``)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cartsync.worker.cli.dlq.render import ERROR_WIDTH, table, terminal_columns, truncate
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
from cartsync.worker.deadletters.grouping import OrderGroup, OrderKey, group_by_order, order_key
from cartsync.worker.deadletters.signatures import group_by_signature
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
@click.option(
    "--group",
    type=click.Choice(["order", "error"]),
    help="order: the newest letter of each order, older ones folded under it; error: counts "
    "by error signature (numbers masked).",
)
@click.option("--wide", is_flag=True, help="Never cut the error text (as when piped).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_letters(
    session: Session,
    limit: int,
    cursor: str | None,
    group: str | None,
    wide: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Dead letters, newest first (or grouped by order or by error).

    On a terminal the ERROR column gets the rest of its width; piped, or with --wide,
    nothing is cut.
    """
    filters = filters_from(options)
    if cursor is not None and not ID_PATTERN.match(cursor):
        raise click.BadParameter(f"{cursor!r} is not a letter id", param_hint="--cursor")
    if group == "error" and cursor is not None:
        raise click.BadParameter(
            "--group error counts letters, it has no pages", param_hint="--cursor"
        )
    if filters.grep is not None and not session.store.text_index_ready():
        click.echo(
            "note: --grep reads every letter until the error-text index is built; "
            "`cartsync dlq reindex` builds it once.",
            err=True,
        )
    columns = None if wide else terminal_columns()
    if group == "error":
        list_signatures(session.store, filters, as_json=as_json, columns=columns)
        return
    page = session.store.page(filters, limit=limit, cursor=cursor)
    now = time.time()
    if as_json:
        if group == "order":
            lines = [group_summary(g, now) for g in order_groups(session.store, page.letters)]
            lines += [damaged_summary(e) for e in page.entries if isinstance(e, Damaged)]
        else:
            lines = [
                summary(e.letter, now) if isinstance(e, Stored) else damaged_summary(e)
                for e in page.entries
            ]
        for line in lines:
            click.echo(json.dumps(line, ensure_ascii=False))
        if page.cursor:
            click.echo(f"next page: --cursor {page.cursor}", err=True)
        return
    if not page.entries:
        click.echo("No dead letters match.")
        return
    if group == "order":
        rows = order_rows(order_groups(session.store, page.letters), now)
        for damaged_entry in page.entries:
            if isinstance(damaged_entry, Damaged):
                cells = damaged_row(damaged_entry, now)
                rows.append([*cells[:5], "?", *cells[5:]])
        table([*HEADER[:5], "LETTERS", *HEADER[5:]], rows, columns=columns)
    else:
        rows = [row(e, now) if isinstance(e, Stored) else damaged_row(e, now) for e in page.entries]
        table(HEADER, rows, columns=columns)
    damaged = len(page.entries) - len(page.letters)
    if damaged:
        click.echo(
            f"\n{damaged} damaged letter(s) on this page: `cartsync dlq show ID` shows what is "
            "stored, `cartsync dlq drop ID` removes it (docs/RUNBOOK.md, damaged letters).",
            err=True,
        )
    if page.cursor:
        click.echo(f"\nMore: add --cursor {page.cursor} for the next page.")


#: ``list``'s columns.
HEADER = ["ID", "AGE", "MERCHANT", "ORDER", "V", "REASON", "STATUS", "ERROR"]
#: Letters ``list --group error`` reads, newest first, to count by signature.
GROUP_SCAN = 10_000


def order_groups(store: DeadLetterStore, shown: list[Stored]) -> list[OrderGroup]:
    """The page's letters grouped by order, with every letter of each order on it (one
    index read per order: an order has a handful)."""
    letters = [s.letter for s in shown]
    by_order: dict[OrderKey, list[DeadLetter]] = {}
    for letter in letters:
        key = order_key(letter)
        if key not in by_order:
            filters = Filters(merchant=letter.merchant, order_ref=letter.order_ref)
            by_order[key] = [s.letter for s in store.scan(filters)]
    return group_by_order(letters, by_order)


def order_rows(groups: list[OrderGroup], now: float) -> list[list[str]]:
    """Each order's newest letter on the page, with how many letters the order has, then
    its older letters under it, marked obsolete."""
    rows = []
    for found in groups:
        head = letter_row(found.head, now)
        count = 1 + len(found.older) + (found.newest_elsewhere is not None)
        if found.newest_elsewhere is not None:
            newest = found.newest_elsewhere
            head[-1] = f"obsolete: newest is {newest.id} (v{newest.version}); {head[-1]}"
        rows.append([*head[:5], str(count), *head[5:]])
        for older in found.older:
            line = letter_row(older, now)
            line[0] = f"└ {older.id}"
            line[-1] = f"obsolete; {line[-1]}"
            rows.append([*line[:5], "", *line[5:]])
    return rows


def group_summary(found: OrderGroup, now: float) -> dict[str, Any]:
    """An order group as one line of ``list --group order --json``."""
    return {
        **summary(found.head, now),
        "obsolete": found.head_obsolete,
        "newest_id": found.newest_elsewhere.id if found.newest_elsewhere else found.head.id,
        "older_ids": [older.id for older in found.older],
        "order_letters": 1 + len(found.older) + (found.newest_elsewhere is not None),
    }


def list_signatures(
    store: DeadLetterStore, filters: Filters, *, as_json: bool, columns: int | None
) -> None:
    """``list --group error``: the newest :data:`GROUP_SCAN` matching letters counted by
    error signature, the largest group first."""
    letters = [s.letter for s in itertools.islice(store.scan(filters, batch=BATCH), GROUP_SCAN)]
    groups = group_by_signature(letters)
    if as_json:
        for found in groups:
            click.echo(json.dumps(dataclasses.asdict(found), ensure_ascii=False))
        return
    if not groups:
        click.echo("No dead letters match.")
        return
    table(
        ["COUNT", "NEWEST", "SIGNATURE"],
        [[str(g.count), g.example_id, g.signature] for g in groups],
        columns=columns,
    )
    if len(letters) == GROUP_SCAN:
        click.echo(
            f"\nCounted the newest {GROUP_SCAN} letters only; narrow with filters for more.",
            err=True,
        )
    click.echo("\nList a group's letters with --grep and its text without numbers.")


def row(stored: Stored, now: float) -> list[str]:
    """A letter as one row of ``list``'s table."""
    return letter_row(stored.letter, now)


def letter_row(letter: DeadLetter, now: float) -> list[str]:
    """The cells of :func:`row`."""
    return [
        letter.id,
        format_age(now - letter.dead_at),
        letter.merchant,
        letter.order_ref,
        "-" if letter.version is None else str(letter.version),
        letter.reason,
        status_key(letter.status),
        letter.first_error,
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
        damaged.problem,
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
