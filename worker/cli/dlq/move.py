"""Moving letters out of the store and back in: ``replay`` (through the normal pipeline),
``export`` (to JSON lines) and ``import`` (from them)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, TextIO

import click
import redis

from cartsync.worker.cli.common import FiniteFloat
from cartsync.worker.cli.dlq.importfile import check_file
from cartsync.worker.cli.dlq.render import describe, describe_damaged
from cartsync.worker.cli.dlq.select import filter_options, filters_from, select
from cartsync.worker.cli.dlq.session import (
    BATCH,
    Session,
    actor,
    as_option,
    batches,
    new_run_id,
    progress,
    quiet_logging,
    with_session,
)
from cartsync.worker.deadletters import AuditNote, Damaged, Stored

#: Letters named one by one in the summary after a replay (the rest are counted).
SHOWN_PROBLEMS = 20
#: A replay of this many letters or more runs in several processes unless --workers says.
PARALLEL_FROM = 200
#: Most replay processes chosen without --workers.
MAX_AUTO_WORKERS = 4


class Pacer:
    """Spaces calls ``1/rate`` seconds apart (no spacing without a rate)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.clock = clock
        self.next_at: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self.next_at is not None and self.next_at > now:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


# -- replay ------------------------------------------------------------------------------------


@click.command()
@with_session
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "all_", is_flag=True, help="Every letter.")
@filter_options
@click.option("--force", is_flag=True, help="Send even superseded letters, as the newest version.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed or refused, and why.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--rate", type=FiniteFloat(min=0, min_open=True), help="Letters per second.")
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    help=f"Replay processes [default: up to {MAX_AUTO_WORKERS}, one per CPU, for "
    f"{PARALLEL_FROM} letters or more].",
)
@as_option
def replay(
    session: Session,
    ids: tuple[str, ...],
    all_: bool,
    force: bool,
    dry_run: bool,
    yes: bool,
    rate: float | None,
    workers: int | None,
    as_: str | None,
    **options: Any,
) -> None:
    """Send letters back through the normal pipeline (validation, ledger, retries).

    A letter whose order has since had a newer version enqueued or delivered is refused
    unless --force, which sends it as the order's newest version. A letter leaves the store
    only once its update is safely enqueued: an interrupted replay can be run again and
    loses nothing and enqueues nothing twice.
    """
    from cartsync.worker.replay import CHUNK, Replayer, Result, refuse_damaged, replay_note
    from cartsync.worker.replay_pool import replay_in_processes

    selection = select(session.store, ids, all_, filters_from(options), "replay")
    count = selection.count()
    if count == 0:
        click.echo("Nothing to do.")
        return
    settings = quiet_logging(session.settings)
    run = new_run_id()
    by = actor(as_, announce=not dry_run)
    if dry_run:
        planner = Replayer(session.store, session.producer(), by=by, run=run, force=force)
        verdicts: Counter[str] = Counter()
        for stored in selection:
            if isinstance(stored, Damaged):
                verdicts["fail"] += 1
                click.echo(f"{'would fail':<13} {describe_damaged(stored)}")
                continue
            verdict = planner.plan(stored)
            verdicts[verdict.action] += 1
            word = {"replay": "would replay", "refuse": "would refuse", "fail": "would fail"}
            note = f": {verdict.reason}" if verdict.reason else ""
            click.echo(f"{word[verdict.action]:<13} {describe(stored.letter)}{note}")
        click.echo(
            f"Dry run: {verdicts['replay']} would be replayed, {verdicts['refuse']} refused, "
            f"{verdicts['fail']} would fail. Nothing was changed."
        )
        return
    forced = " with --force (each becomes its order's newest version)" if force else ""
    if not yes:
        click.confirm(f"Replay {count} dead letter(s){forced}?", abort=True)
    if workers is None:
        workers = min(MAX_AUTO_WORKERS, os.cpu_count() or 1) if count >= PARALLEL_FROM else 1
    session.store.record(
        AuditNote("replay", by, run, "started", {**selection.describe(), "force": force})
    )
    counts: Counter[str] = Counter()
    problems: list[str] = []
    pacer = Pacer(rate)
    finished = False
    try:
        with progress(count, "Replaying") as bar:

            def tally(result: Result) -> None:
                counts[result.outcome] += 1
                if result.outcome != "replayed" and len(problems) < SHOWN_PROBLEMS:
                    line = f"{result.outcome:<8} {result.letter_id} {result.what}: {result.detail}"
                    problems.append(line)
                bar.update(1)

            replay_audit = replay_note(by=by, run=run, force=force)

            def readable(entries: Iterable[Stored | Damaged]) -> Iterator[Stored]:
                """The letters that can be replayed; a damaged one fails on the spot."""
                for entry in entries:
                    if isinstance(entry, Damaged):
                        tally(refuse_damaged(session.store, replay_audit, entry))
                    else:
                        yield entry

            if workers == 1:
                replayer = Replayer(session.store, session.producer(), by=by, run=run, force=force)
                # Paced, a batch is about a second's worth, so letters leave soon after going.
                size = max(1, min(CHUNK, int(rate))) if rate else CHUNK
                for batch in batches(readable(selection), size):
                    for result in replayer.replay_many(batch, pace=pacer.wait if rate else None):
                        tally(result)
            else:
                replay_in_processes(
                    readable(selection),
                    settings=settings,
                    by=by,
                    run=run,
                    force=force,
                    processes=workers,
                    on_result=tally,
                    pace=pacer.wait if rate else None,
                )
        finished = True
    except KeyboardInterrupt:
        click.echo(
            "\nInterrupted. Run the same command again to finish: nothing is lost or sent twice.",
            err=True,
        )
    finally:
        report(problems, counts)
        # The per-letter entries were written with each change; this is only the summary.
        with contextlib.suppress(redis.RedisError):
            outcome = "finished" if finished else "interrupted"
            session.store.record(AuditNote("replay", by, run, outcome, dict(counts)))
    if not finished:
        sys.exit(130)
    if counts["failed"]:
        sys.exit(1)


def report(problems: list[str], counts: Counter[str]) -> None:
    """A replay's summary: the first refused or failed letters, then the counts, in colour."""
    for line in problems:
        colour = "red" if line.startswith("failed") else "yellow"
        click.echo(click.style(line, fg=colour))
    if len(problems) == SHOWN_PROBLEMS and counts["refused"] + counts["failed"] > len(problems):
        click.echo("(more refused or failed letters: see `cartsync dlq audit`)")
    parts = [
        click.style(f"{counts['replayed']} replayed", fg="green"),
        click.style(f"{counts['refused']} refused", fg="yellow" if counts["refused"] else None),
        click.style(f"{counts['failed']} failed", fg="red" if counts["failed"] else None),
    ]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped (no longer in the store)")
    click.echo(", ".join(parts) + ".")


# -- export and import -------------------------------------------------------------------------


@click.command("export")
@with_session
@filter_options
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="File to write (default: standard output).",
)
def export_letters(session: Session, output: TextIO, **options: Any) -> None:
    """Write letters as JSON lines (all of them unless filtered); damaged ones are skipped."""
    filters = filters_from(options)
    written = damaged = 0
    for entry in session.store.entries(filters, batch=BATCH):
        if isinstance(entry, Damaged):
            damaged += 1
            continue
        output.write(entry.letter.to_json() + "\n")
        written += 1
    output.flush()
    click.echo(f"Exported {written} letter(s).", err=True)
    if damaged:
        click.echo(
            f"Skipped {damaged} damaged letter(s): `cartsync dlq list` shows them.", err=True
        )


@click.command("import")
@with_session
@click.argument("source", metavar="FILE", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check the file and count, change nothing.")
@as_option
def import_letters(session: Session, source: BinaryIO, dry_run: bool, as_: str | None) -> None:
    """Read letters written by `export` back in, as new letters of this store.

    The whole file is checked before anything is stored. Each letter gets a new id here;
    its id in the file stays in its history. Letters imported before are skipped.
    """
    name = getattr(source, "name", "-")
    with check_file(source, name) as checked:
        if dry_run:
            click.echo(
                f"Dry run: {checked.count} valid letter(s) in the file. Nothing was changed."
            )
            return
        run = new_run_id()
        by = actor(as_)
        outcomes: Counter[str] = Counter()
        note = AuditNote("import", by, run, "imported", {"file": name})
        try:
            for batch in batches(checked.letters(), BATCH):
                for result in session.store.park_imported(batch, audit=note):
                    outcomes[result] += 1
        except (redis.ConnectionError, redis.TimeoutError):
            done = outcomes.total()
            raise click.ClickException(
                f"Redis stopped answering after {done} of {checked.count} letter(s); run the "
                "same import again: letters already stored are recognized and skipped"
            ) from None
    session.store.record(
        AuditNote("import", by, run, f"{outcomes['parked']} imported", {"file": name, **outcomes})
    )
    click.echo(f"Imported {outcomes['parked']} letter(s); {outcomes['duplicate']} already present.")
