"""Looking closely: one letter in full (``show``) and who did what to letters (``audit``)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from cartsync.worker.cli.dlq.render import ERROR_WIDTH, command_for, table, truncate
from cartsync.worker.cli.dlq.select import DEFAULT_LIMIT, MAX_LIMIT
from cartsync.worker.cli.dlq.session import Session, with_session
from cartsync.worker.deadletters import (
    AuditEntry,
    Damaged,
    replay_update_id,
    valid_time,
)
from cartsync.worker.timefmt import format_age, format_time


@click.command()
@with_session
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The letter as one JSON object.")
def show(session: Session, letter_id: str, as_json: bool) -> None:
    """Everything about one letter, payload included (a damaged one: what is stored)."""
    found = session.store.read(letter_id)
    if isinstance(found, Damaged):
        show_damaged(found, as_json)
        return
    letter = found.letter
    if as_json:
        click.echo(json.dumps(letter.to_dict(), ensure_ascii=False, indent=2))
        return
    now = time.time()
    status = "none" if letter.status is None else f"HTTP {letter.status}"
    revision = letter.revision
    fields = [
        ("Letter", letter.id),
        ("Merchant", letter.merchant),
        ("Order", letter.order_ref),
        ("Version", "-" if letter.version is None else str(letter.version)),
        ("Update id", letter.update_id),
        ("Reason", f"{letter.reason} ({status})"),
        ("Dead at", f"{when(letter.dead_at)} ({format_age(now - letter.dead_at)} ago)"),
        ("Enqueued at", when(letter.enqueued_at)),
        ("Revision", f"{letter.revision} (replays as {replay_update_id(letter.id, revision)})"),
    ]
    for name, value in fields:
        click.echo(f"{name + ':':<13}{value}")
    click.echo("\nErrors:")
    for text in letter.errors or ["(none)"]:
        click.echo(f"  {text}")
    click.echo("\nAttempts:")
    if not letter.attempts:
        click.echo("  (none recorded)")
    for attempt in letter.attempts:
        click.echo("  " + describe_attempt(attempt))
    click.echo("\nHistory:")
    if not letter.history:
        click.echo("  (none)")
    for entry in letter.history:
        click.echo("  " + describe_history(entry))
    click.echo("\nPayload:")
    click.echo(json.dumps(letter.payload, ensure_ascii=False, indent=2))


def show_damaged(damaged: Damaged, as_json: bool) -> None:
    """What is stored under a damaged letter's id, as far as it decodes, and what to do."""
    if as_json:
        found = {"id": damaged.id, "damaged": damaged.problem, "stored": damaged.text}
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    click.echo(f"{'Letter:':<13}{damaged.id}")
    click.echo(f"{'Damaged:':<13}{damaged.problem}")
    click.echo(
        "\nIt cannot be replayed or edited. Keep what you need of it, then remove it with:\n"
        f"  {command_for('drop', damaged.id)}"
    )
    click.echo("\nStored:")
    click.echo(damaged.text)


def when(at: Any) -> str:
    """A time from a letter's attempts or history, or ``?`` when it is not one a letter may
    carry (history is kept as written: worker/deadletters/letter.py)."""
    return format_time(at) if valid_time(at) else "?"


def describe_attempt(attempt: dict[str, Any]) -> str:
    """One delivery attempt of a letter: when, what seQura (or the network) answered."""
    at = when(attempt.get("at"))
    result = attempt.get("exception") or (
        f"HTTP {attempt['status']}" if attempt.get("status") is not None else "?"
    )
    delay = attempt.get("delay_s")
    then = f", next try in {delay}s" if delay is not None else ""
    return f"{at}  {result}{then}"


def describe_history(entry: dict[str, Any]) -> str:
    """One entry of a letter's history (edits, imports, refused replays) in a line."""
    at = when(entry.get("at"))
    action = str(entry.get("action", "?"))
    by = f" by {entry['by']}" if entry.get("by") else ""
    if action == "edit":
        return f"{at}  edited{by}: revision {entry.get('revision')} (previous payload kept)"
    if action == "replayed_from":
        return f"{at}  parked again after a replay of letter {entry.get('letter')}"
    if action == "imported":
        source = f"letter {entry['letter']}" if entry.get("letter") else "a letter without an id"
        return f"{at}  imported{by} from {source} (update id there: {entry.get('update_id')})"
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    return f"{at}  {action.replace('_', ' ')}{by}{reason}"


@click.command()
@with_session
@click.option(
    "--limit",
    type=click.IntRange(1, None),
    help=f"Entries shown [default: {DEFAULT_LIMIT}; with --run, every entry of the run; "
    f"at most {MAX_LIMIT} without --run].",
)
@click.option(
    "--action",
    type=click.Choice(["replay", "edit", "drop", "purge", "import"]),
    help="Only this kind of action.",
)
@click.option("--letter", "letter_id", metavar="ID", help="Only entries about this letter.")
@click.option("--run", metavar="RUN", help="Only entries of this command run.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(
    session: Session,
    limit: int | None,
    action: str | None,
    letter_id: str | None,
    run: str | None,
    as_json: bool,
) -> None:
    """Who replayed, edited, dropped, purged or imported which letters, when, with what result."""
    if run is not None:
        found = session.store.run_entries(run, limit=limit, action=action, letter_id=letter_id)
        if as_json:
            # Streamed: a run can hold a million entries.
            for entry in found:
                click.echo(json.dumps(entry.__dict__, ensure_ascii=False))
            return
        entries = list(found)
    else:
        if limit is not None and limit > MAX_LIMIT:
            raise click.BadParameter(f"at most {MAX_LIMIT} without --run", param_hint="--limit")
        entries = session.store.audit_entries(
            limit=limit or DEFAULT_LIMIT, action=action, letter_id=letter_id
        )
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.__dict__, ensure_ascii=False))
        return
    if not entries:
        click.echo("No audit entries match.")
        return
    table(
        ["TIME", "WHO", "ACTION", "RUN", "LETTER", "RESULT"],
        [audit_row(e) for e in entries],
    )


def audit_row(entry: AuditEntry) -> list[str]:
    detail = entry.detail
    if entry.letter:
        extra = detail.get("reason") or detail.get("update_id") or ""
    else:
        extra = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "ids")
    result = f"{entry.result} ({truncate(str(extra), ERROR_WIDTH)})" if extra else entry.result
    return [format_time(entry.at), entry.by, entry.action, entry.run, entry.letter or "-", result]
