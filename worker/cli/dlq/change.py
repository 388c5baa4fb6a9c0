"""Changing letters in place: fixing a payload (``edit``) and deleting letters for good
(``drop`` by id or filter, ``purge`` by age). Each change is recorded in the audit log."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from typing import Any

import click
import redis

from cartsync.config.settings import Settings
from cartsync.worker import keys
from cartsync.worker.cli.common import UnreadableJson, loads_json
from cartsync.worker.cli.dlq.render import describe, describe_damaged
from cartsync.worker.cli.dlq.select import (
    Selection,
    duration_option,
    filter_options,
    filters_from,
    select,
)
from cartsync.worker.cli.dlq.session import (
    BATCH,
    Session,
    actor,
    as_option,
    batches,
    new_run_id,
    progress,
    with_session,
)
from cartsync.worker.deadletters import (
    AuditNote,
    Damaged,
    DeadLetterStore,
    Stored,
    replay_update_id,
)
from cartsync.worker.errors import ConfigurationError

# -- edit --------------------------------------------------------------------------------------


@click.command()
@with_session
@click.argument("letter_id", metavar="ID")
@as_option
def edit(session: Session, letter_id: str, as_: str | None) -> None:
    """Fix a letter's payload in $EDITOR; it is validated on save.

    The original payload stays in the letter's history. Replay the letter afterwards.
    """
    from cartsync.tasks.producer import order_identity

    stored = session.store.load(letter_id)
    letter = stored.letter
    marker = keys.update(session.settings.key_prefix, replay_update_id(letter.id, letter.revision))
    if session.client.exists(marker):
        raise click.ClickException(
            f"letter {letter.id} was enqueued by a replay that did not finish; run "
            f"`cartsync dlq replay {letter.id}` to finish it instead of editing"
        )
    options = contract_options(session.settings, letter.merchant)
    identity = order_identity(letter.payload)
    text = json_text(letter.payload)
    while True:
        edited = click.edit(text, extension=".json", require_save=True)
        if edited is None or json_equal(edited, letter.payload):
            click.echo("No changes; the letter is as it was.")
            return
        body, problems, warnings = check_payload(edited, identity, options, session.settings)
        if not problems:
            break
        click.echo("The payload is not valid:", err=True)
        for line in problems:
            click.echo(f"  {line}", err=True)
        if not click.confirm("Edit again? (no: abort and keep the letter as it was)", default=True):
            raise click.ClickException("edit aborted; the letter is as it was")
        text = edited
    revision, outcome = save_revision(session.store, stored, body, actor(as_))
    if outcome != "replaced":
        raise click.ClickException(
            f"letter {letter.id} was {'removed' if outcome == 'gone' else 'changed'} by someone "
            "else while you edited it; nothing was saved"
        )
    for path, messages in sorted(warnings.items()):
        for message in messages:
            click.echo(f"warning: {path}: {message}", err=True)
    click.echo(
        f"Saved revision {revision} of letter {letter.id}. "
        f"Replay it with: cartsync dlq replay {letter.id}"
    )


def save_revision(store: DeadLetterStore, stored: Stored, body: Any, by: str) -> tuple[int, str]:
    """Save ``body`` as the next revision of a letter's payload, if the letter is still as
    read (``stored``), with its history entry and audit note; returns the revision and the
    store's outcome (``replaced``, ``gone`` or ``changed``). The CLI's ``dlq edit`` and the
    console's edit both save through it."""
    letter = stored.letter
    revision = letter.revision + 1
    changed = replace(
        letter,
        payload=body,
        history=[
            *letter.history,
            {
                "at": time.time(),
                "by": by,
                "action": "edit",
                "revision": revision,
                "previous_payload": letter.payload,
            },
        ],
    )
    note = AuditNote(
        "edit",
        by,
        new_run_id(),
        f"saved revision {revision}",
        {"merchant": letter.merchant, "order_ref": letter.order_ref},
    )
    return revision, store.replace(stored, changed, audit=note)


def json_text(payload: Any) -> str:
    """A payload as the editor shows it: indented, non-ASCII letters as they are."""
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


def contract_options(settings: Settings, merchant: str) -> frozenset[str]:
    """The merchant's contract options, or none when its account is unknown."""
    from cartsync.config.merchants import load_merchants

    try:
        return load_merchants(settings).get(merchant).options
    except ConfigurationError:
        return frozenset()


def json_equal(text: str, payload: Any) -> bool:
    """Whether the edited ``text`` is still ``payload`` (saved unchanged, or only reformatted)."""
    try:
        return bool(loads_json(text) == payload)
    except UnreadableJson:
        return False


def check_payload(
    text: str, identity: tuple[str, str] | None, options: frozenset[str], settings: Settings
) -> tuple[Any, list[str], dict[str, list[str]]]:
    """(body, problems, warnings) of an edited payload; no problems means it may be saved."""
    from cartsync.tasks.producer import order_identity, with_platform_defaults
    from cartsync.tasks.validation import validate_update
    from cartsync.worker.errors import InvalidUpdate

    try:
        body = loads_json(text)
    except UnreadableJson as exc:
        return None, [f"not JSON: {exc}"], {}
    if identity is not None and order_identity(body) not in (None, identity):
        return (
            body,
            [
                f"order.merchant.id must stay {identity[0]!r} and "
                f"order.merchant_reference.order_ref_1 {identity[1]!r}: "
                "a letter cannot move to another order"
            ],
            {},
        )
    try:
        validated = validate_update(
            with_platform_defaults(body, settings), options=options, strict=settings.strict
        )
    except InvalidUpdate as exc:
        return body, exc.lines(), {}
    return body, [], validated.warnings


# -- drop and purge ----------------------------------------------------------------------------


@click.command()
@with_session
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "all_", is_flag=True, help="Every letter.")
@filter_options
@click.option("--dry-run", is_flag=True, help="List what would be dropped.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@as_option
def drop(
    session: Session,
    ids: tuple[str, ...],
    all_: bool,
    dry_run: bool,
    yes: bool,
    as_: str | None,
    **options: Any,
) -> None:
    """Delete letters for good (they are recorded in the audit log)."""
    selection = select(session.store, ids, all_, filters_from(options), "drop")
    remove_letters(session, selection, "drop", dry_run=dry_run, yes=yes, as_=as_)


@click.command()
@with_session
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=duration_option,
    required=True,
    help="Age, such as 30d or 12h.",
)
@filter_options
@click.option("--dry-run", is_flag=True, help="List what would be purged.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@as_option
def purge(
    session: Session,
    older_than: float,
    dry_run: bool,
    yes: bool,
    as_: str | None,
    **options: Any,
) -> None:
    """Delete letters older than a duration (and matching the filters, if any)."""
    cutoff = time.time() - older_than
    if options.get("until") is not None:
        cutoff = min(cutoff, options["until"])
    options["until"] = cutoff
    selection = select(session.store, (), False, filters_from(options), "purge")
    remove_letters(session, selection, "purge", dry_run=dry_run, yes=yes, as_=as_)


#: Progress label and past tense of each deleting command.
_REMOVAL_WORDS = {"drop": ("Dropping", "dropped"), "purge": ("Purging", "purged")}


def remove_letters(
    session: Session,
    selection: Selection,
    action: str,
    *,
    dry_run: bool,
    yes: bool,
    as_: str | None = None,
) -> None:
    """Delete the selected letters (``action``: drop or purge), asking first unless ``yes``."""
    doing, done = _REMOVAL_WORDS[action]
    count = selection.count()
    if count == 0:
        click.echo("Nothing to do.")
        return
    if dry_run:
        shown = 0
        for entry in selection:
            what = (
                f"{describe(entry.letter)} {entry.letter.reason}"
                if isinstance(entry, Stored)
                else describe_damaged(entry)
            )
            click.echo(f"would {action} {what}")
            shown += 1
        click.echo(f"Dry run: {shown} letter(s) would be {done}. Nothing was changed.")
        return
    if not yes:
        click.confirm(f"{action.capitalize()} {count} dead letter(s) for good?", abort=True)
    run = new_run_id()
    by = actor(as_)
    note = AuditNote(action, by, run, done)
    removed = 0
    try:
        with progress(count, doing) as bar:
            for batch in batches(selection, BATCH):
                items = [
                    (stored, note.about(stored.letter, done), None)
                    for stored in batch
                    if isinstance(stored, Stored)
                ]
                # Unchecked: a letter edited since it was listed is dropped all the same.
                outcomes = session.store.remove_many(items, check=False)
                for damaged in batch:
                    if isinstance(damaged, Damaged):
                        audit = note.with_result(done, damaged=damaged.problem)
                        outcomes.append(
                            session.store.remove_damaged(damaged, audit=audit, check=False)
                        )
                removed += outcomes.count("removed")
                bar.update(len(batch))
    finally:
        with contextlib.suppress(redis.RedisError):
            session.store.record(
                AuditNote(action, by, run, f"{removed} {done}", selection.describe())
            )
        click.echo(f"{removed} letter(s) {done}.")
