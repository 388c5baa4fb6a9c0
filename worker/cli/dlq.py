"""``cartsync dlq``: see what is stuck and why, fix it, replay it safely.

Every command reads the Redis URL from ``--redis-url`` or ``CARTSYNC_REDIS_URL`` (then the
settings' default), and every other option from ``CARTSYNC_DLQ_<COMMAND>_<OPTION>`` too
(``CARTSYNC_DLQ_LIST_MERCHANT=shop1``). Commands that change letters (replay, drop, purge)
say how many letters match and ask before acting (``--yes`` skips), offer ``--dry-run``, and
record what they did in the audit log, with the OS user as "who".

An unknown id, a bad option or an unreachable Redis is one line on stderr and a non-zero
exit (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import itertools
import json
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlsplit

import click
import redis

from cartsync.config.settings import Settings, load_settings
from cartsync.worker import keys
from cartsync.worker.deadletters import (
    ID_PATTERN,
    AuditEntry,
    AuditNote,
    DeadLetter,
    DeadLetterStore,
    Filters,
    Reason,
    Stored,
    id_bound,
    replay_update_id,
    status_key,
)
from cartsync.worker.errors import CartsyncError, ConfigurationError

if TYPE_CHECKING:
    from cartsync.tasks.producer import Producer

#: Letters ``list`` shows per page unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 50
#: Largest page ``list`` serves: a page is read in one round trip.
MAX_LIMIT = 5000
#: Seconds to wait for Redis before calling it unreachable.
REDIS_TIMEOUT_S = 10.0
#: Characters of the first error line shown in tables.
ERROR_WIDTH = 70
#: Letters named one by one in the summary after a replay (the rest are counted).
SHOWN_PROBLEMS = 20
#: Letters fetched per round trip by bulk commands.
BATCH = 500
#: A replay of this many letters or more runs in several processes unless --workers says.
PARALLEL_FROM = 200
#: Most replay processes chosen without --workers.
MAX_AUTO_WORKERS = 4

F = TypeVar("F", bound=Callable[..., Any])


# -- pure helpers ------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``2h``, ``7d``, ``1w`` or a sum such as ``1d12h``."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("expected a duration such as 30m, 12h or 7d")
    total, position = 0.0, 0
    for match in _DURATION.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f"{text!r} is not a duration such as 30m, 12h, 7d or 1d12h")
    return total


def parse_instant(text: str, now: float) -> float:
    """Seconds since the epoch for an ISO 8601 date or time (UTC unless it says otherwise),
    or for a duration meaning that long ago (``2h``)."""
    with_zone = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(with_zone)
    except ValueError:
        try:
            return now - parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date/time (2024-05-01, 2024-05-01T10:30Z) "
                "nor a duration ago (90m, 2h, 7d)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_age(seconds: float) -> str:
    """A short age: ``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def safe_url(url: str) -> str:
    """A Redis URL without its password."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    except ValueError:
        return "(unparseable URL)"


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def who() -> str:
    """The OS user, as the audit log names people."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


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


# -- the session every command works in --------------------------------------------------------


@dataclass
class Session:
    settings: Settings
    client: redis.Redis
    store: DeadLetterStore

    def producer(self) -> Producer:
        # Imported on use: the schemas and Celery are not needed to list or show letters.
        from cartsync.tasks.producer import Producer

        return Producer(self.settings, client=self.client)


def open_session(redis_url: str | None) -> Session:
    settings = load_settings()
    if redis_url:
        settings = settings.with_overrides(redis_url=redis_url)
    ctx = click.get_current_context()
    ctx.meta["cartsync.redis_url"] = settings.redis_url
    try:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--redis-url") from None
    ctx.call_on_close(client.close)
    return Session(settings, client, DeadLetterStore(client, settings.key_prefix))


def with_session(command: F) -> F:
    """Adds ``--redis-url`` and passes the :class:`Session` as the first argument."""

    @click.option(
        "--redis-url",
        envvar="CARTSYNC_REDIS_URL",
        metavar="URL",
        help="Redis holding the dead letters [env: CARTSYNC_REDIS_URL].",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, redis_url: str | None, **kwargs: Any) -> Any:
        return command(open_session(redis_url), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class DlqGroup(click.Group):
    """Turns cartsync's own errors and Redis failures into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CartsyncError as exc:  # DeadLetterNotFound, BrokerUnavailable, settings...
            raise click.ClickException(str(exc)) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = safe_url(ctx.meta.get("cartsync.redis_url", ""))
            raise click.ClickException(
                f"Redis at {url} does not answer ({type(exc).__name__})"
            ) from None
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis answered with an error: {exc}") from None


# -- filters -----------------------------------------------------------------------------------


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


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


FILTER_NAMES = ("merchant", "reason", "status", "order", "since", "until", "grep")


def filter_options(command: F) -> F:
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


@dataclass
class Selection:
    """The letters a bulk command acts on: named ids, or everything matching filters."""

    store: DeadLetterStore
    filters: Filters
    named: list[Stored] | None = None
    #: Letters that die after the command started are left for the next run.
    below: str | None = None

    def count(self) -> int:
        if self.named is not None:
            return len(self.named)
        return self.store.count(self.filters)

    def __iter__(self) -> Iterator[Stored]:
        if self.named is not None:
            return iter(self.named)
        return self.store.scan(self.filters, below=self.below, batch=BATCH)

    def describe(self) -> dict[str, Any]:
        if self.named is not None:
            return {"ids": [s.letter.id for s in self.named][:100], "count": len(self.named)}
        return {"filters": self.filters.describe() or "all"}


def select(
    store: DeadLetterStore, ids: tuple[str, ...], all_: bool, filters: Filters, verb: str
) -> Selection:
    if ids and (all_ or not filters.empty):
        raise click.UsageError(f"give letter ids or --all/filters to {verb}, not both")
    if not ids and not all_ and filters.empty:
        raise click.UsageError(f"say which letters to {verb}: ids, --all, or filters")
    if ids:
        unique = list(dict.fromkeys(ids))
        loaded = store.load_many([i for i in unique if ID_PATTERN.match(i)])
        found = {s.letter.id: s for s in loaded if s is not None}
        missing = [i for i in unique if i not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise click.ClickException(f"no dead letter with id {missing[0]!r}{more}")
        return Selection(store, filters, named=[found[i] for i in unique])
    return Selection(store, filters, below=id_bound(time.time() + 0.001))


def batches(items: Iterable[Stored], size: int) -> Iterator[list[Stored]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def progress(length: int, label: str) -> Any:
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


# -- the commands ------------------------------------------------------------------------------


@click.group(
    cls=DlqGroup,
    context_settings={"auto_envvar_prefix": "CARTSYNC_DLQ", "help_option_names": ["-h", "--help"]},
)
def dlq() -> None:
    """Inspect, fix and replay dead letters (updates seQura would not take).

    Every option can also come from the environment: CARTSYNC_REDIS_URL for --redis-url,
    CARTSYNC_DLQ_<COMMAND>_<OPTION> for the rest (CARTSYNC_DLQ_LIST_MERCHANT=shop1).
    """


@dlq.command("list")
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
    page = session.store.page(filters, limit=limit, cursor=cursor)
    now = time.time()
    if as_json:
        for stored in page.letters:
            click.echo(json.dumps(summary(stored.letter, now), ensure_ascii=False))
        if page.cursor:
            click.echo(f"next page: --cursor {page.cursor}", err=True)
        return
    if not page.letters:
        click.echo("No dead letters match.")
        return
    rows = [
        [
            s.letter.id,
            format_age(now - s.letter.dead_at),
            s.letter.merchant,
            s.letter.order_ref,
            "-" if s.letter.version is None else str(s.letter.version),
            s.letter.reason,
            status_key(s.letter.status),
            truncate(s.letter.first_error, ERROR_WIDTH),
        ]
        for s in page.letters
    ]
    table(["ID", "AGE", "MERCHANT", "ORDER", "V", "REASON", "STATUS", "ERROR"], rows)
    if page.cursor:
        click.echo(f"\nMore: add --cursor {page.cursor} for the next page.")


def summary(letter: DeadLetter, now: float) -> dict[str, Any]:
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


def table(header: list[str], rows: list[list[str]], out: TextIO | None = None) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(line.rstrip(), file=out)


@dlq.command()
@with_session
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The letter as one JSON object.")
def show(session: Session, letter_id: str, as_json: bool) -> None:
    """Everything about one letter, payload included."""
    letter = session.store.get(letter_id)
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
        ("Dead at", f"{format_time(letter.dead_at)} ({format_age(now - letter.dead_at)} ago)"),
        ("Enqueued at", format_time(letter.enqueued_at)),
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


def describe_attempt(attempt: dict[str, Any]) -> str:
    at = attempt.get("at")
    when = format_time(at) if isinstance(at, int | float) else "?"
    result = attempt.get("exception") or (
        f"HTTP {attempt['status']}" if attempt.get("status") is not None else "?"
    )
    delay = attempt.get("delay_s")
    then = f", next try in {delay}s" if delay is not None else ""
    return f"{when}  {result}{then}"


def describe_history(entry: dict[str, Any]) -> str:
    at = entry.get("at")
    when = format_time(at) if isinstance(at, int | float) else "?"
    action = str(entry.get("action", "?"))
    by = f" by {entry['by']}" if entry.get("by") else ""
    if action == "edit":
        return f"{when}  edited{by}: revision {entry.get('revision')} (previous payload kept)"
    if action == "replayed_from":
        return f"{when}  parked again after a replay of letter {entry.get('letter')}"
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    return f"{when}  {action.replace('_', ' ')}{by}{reason}"


@dlq.command()
@with_session
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def stats(session: Session, as_json: bool) -> None:
    """Counts by reason, status and merchant, and the oldest letter's age."""
    result = session.store.stats()
    now = time.time()
    oldest_age = None
    if result.oldest_id is not None:
        oldest_age = now - session.store.get(result.oldest_id).dead_at
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


@dlq.command()
@with_session
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "all_", is_flag=True, help="Every letter.")
@filter_options
@click.option("--force", is_flag=True, help="Send even superseded letters, as the newest version.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed or refused, and why.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Letters per second.")
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    help=f"Replay processes [default: up to {MAX_AUTO_WORKERS}, one per CPU, for "
    f"{PARALLEL_FROM} letters or more].",
)
def replay(
    session: Session,
    ids: tuple[str, ...],
    all_: bool,
    force: bool,
    dry_run: bool,
    yes: bool,
    rate: float | None,
    workers: int | None,
    **options: Any,
) -> None:
    """Send letters back through the normal pipeline (validation, ledger, retries).

    A letter whose order has since had a newer version enqueued or delivered is refused
    unless --force, which sends it as the order's newest version. A letter leaves the store
    only once its update is safely enqueued: an interrupted replay can be run again and
    loses nothing and enqueues nothing twice.
    """
    from cartsync.worker.replay import CHUNK, Replayer, replay_in_processes

    selection = select(session.store, ids, all_, filters_from(options), "replay")
    count = selection.count()
    if count == 0:
        click.echo("Nothing to do.")
        return
    settings = quiet_logging(session.settings)
    run = new_run_id()
    by = who()
    if dry_run:
        planner = Replayer(session.store, session.producer(), by=by, run=run, force=force)
        verdicts: Counter[str] = Counter()
        for stored in selection:
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

            def tally(result: Any) -> None:
                counts[result.outcome] += 1
                if result.outcome != "replayed" and len(problems) < SHOWN_PROBLEMS:
                    line = f"{result.outcome:<8} {result.letter_id} {result.what}: {result.detail}"
                    problems.append(line)
                bar.update(1)

            if workers == 1:
                replayer = Replayer(session.store, session.producer(), by=by, run=run, force=force)
                # Paced, a batch is about a second's worth, so letters leave soon after going.
                size = max(1, min(CHUNK, int(rate))) if rate else CHUNK
                for batch in batches(selection, size):
                    for result in replayer.replay_many(batch, pace=pacer.wait if rate else None):
                        tally(result)
            else:
                replay_in_processes(
                    selection,
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


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (click's test runner swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def quiet_logging(settings: Settings) -> Settings:
    """Send the pipeline's log events to stderr, warnings only unless CARTSYNC_LOG_LEVEL is
    set, so that a replay of a million letters does not print a million lines. The previous
    configuration comes back when the command ends. Returns the settings used."""
    import logging

    import structlog

    from cartsync.config.logging import configure_logging

    if "CARTSYNC_LOG_LEVEL" not in os.environ:
        settings = settings.with_overrides(log_level="warning")
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def restore() -> None:
        structlog.configure(**saved)
        root.handlers, root.level = saved_handlers, saved_level

    configure_logging(settings, stream=_Stderr(), cache=False)  # type: ignore[arg-type]
    click.get_current_context().call_on_close(restore)
    return settings


def describe(letter: DeadLetter) -> str:
    version = "-" if letter.version is None else f"v{letter.version}"
    return f"{letter.id} {letter.merchant}/{letter.order_ref} {version}"


def report(problems: list[str], counts: Counter[str]) -> None:
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


@dlq.command()
@with_session
@click.argument("letter_id", metavar="ID")
def edit(session: Session, letter_id: str) -> None:
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
    text = json.dumps(letter.payload, ensure_ascii=False, indent=2) + "\n"
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
    revision = letter.revision + 1
    by = who()
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
    outcome = session.store.replace(stored, changed, audit=note)
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


def contract_options(settings: Settings, merchant: str) -> frozenset[str]:
    """The merchant's contract options, or none when its account is unknown."""
    from cartsync.config.merchants import load_merchants

    try:
        return load_merchants(settings).get(merchant).options
    except ConfigurationError:
        return frozenset()


def json_equal(text: str, payload: Any) -> bool:
    try:
        return bool(json.loads(text) == payload)
    except ValueError:
        return False


def check_payload(
    text: str, identity: tuple[str, str] | None, options: frozenset[str], settings: Settings
) -> tuple[Any, list[str], dict[str, list[str]]]:
    """(body, problems, warnings) of an edited payload; no problems means it may be saved."""
    from cartsync.tasks.producer import order_identity, with_platform_defaults
    from cartsync.tasks.validation import validate_update
    from cartsync.worker.errors import InvalidUpdate

    try:
        body = json.loads(text)
    except ValueError as exc:
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


@dlq.command()
@with_session
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "all_", is_flag=True, help="Every letter.")
@filter_options
@click.option("--dry-run", is_flag=True, help="List what would be dropped.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def drop(
    session: Session, ids: tuple[str, ...], all_: bool, dry_run: bool, yes: bool, **options: Any
) -> None:
    """Delete letters for good (they are recorded in the audit log)."""
    selection = select(session.store, ids, all_, filters_from(options), "drop")
    remove_letters(session, selection, "drop", dry_run=dry_run, yes=yes)


@dlq.command()
@with_session
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=_duration,
    required=True,
    help="Age, such as 30d or 12h.",
)
@filter_options
@click.option("--dry-run", is_flag=True, help="List what would be purged.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge(session: Session, older_than: float, dry_run: bool, yes: bool, **options: Any) -> None:
    """Delete letters older than a duration (and matching the filters, if any)."""
    cutoff = time.time() - older_than
    if options.get("until") is not None:
        cutoff = min(cutoff, options["until"])
    options["until"] = cutoff
    selection = select(session.store, (), False, filters_from(options), "purge")
    remove_letters(session, selection, "purge", dry_run=dry_run, yes=yes)


#: Progress label and past tense of each deleting command.
_REMOVAL_WORDS = {"drop": ("Dropping", "dropped"), "purge": ("Purging", "purged")}


def remove_letters(
    session: Session, selection: Selection, action: str, *, dry_run: bool, yes: bool
) -> None:
    doing, done = _REMOVAL_WORDS[action]
    count = selection.count()
    if count == 0:
        click.echo("Nothing to do.")
        return
    if dry_run:
        shown = 0
        for stored in selection:
            click.echo(f"would {action} {describe(stored.letter)} {stored.letter.reason}")
            shown += 1
        click.echo(f"Dry run: {shown} letter(s) would be {done}. Nothing was changed.")
        return
    if not yes:
        click.confirm(f"{action.capitalize()} {count} dead letter(s) for good?", abort=True)
    run = new_run_id()
    by = who()
    note = AuditNote(action, by, run, done)
    removed = 0
    try:
        with progress(count, doing) as bar:
            for batch in batches(selection, BATCH):
                items = [
                    (
                        stored,
                        note.with_result(
                            done,
                            merchant=stored.letter.merchant,
                            order_ref=stored.letter.order_ref,
                            reason=stored.letter.reason,
                            version=stored.letter.version,
                        ),
                        None,
                    )
                    for stored in batch
                ]
                # Unchecked: a letter edited since it was listed is dropped all the same.
                outcomes = session.store.remove_many(items, check=False)
                removed += outcomes.count("removed")
                bar.update(len(batch))
    finally:
        with contextlib.suppress(redis.RedisError):
            session.store.record(
                AuditNote(action, by, run, f"{removed} {done}", selection.describe())
            )
        click.echo(f"{removed} letter(s) {done}.")


@dlq.command("export")
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
    """Write letters as JSON lines (all of them unless filtered)."""
    filters = filters_from(options)
    written = 0
    for stored in session.store.scan(filters, batch=BATCH):
        output.write(stored.letter.to_json() + "\n")
        written += 1
    output.flush()
    click.echo(f"Exported {written} letter(s).", err=True)


@dlq.command("import")
@with_session
@click.argument("source", metavar="FILE", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Check the file and count, change nothing.")
def import_letters(session: Session, source: TextIO, dry_run: bool) -> None:
    """Read letters written by `export` back in; letters already here are skipped.

    The whole file is checked before anything is stored.
    """
    if source.seekable():
        # Check in one pass, store in a second: a large file is never held in memory.
        valid = sum(1 for _ in read_letters(source))
        source.seek(0)
        letters: Iterable[DeadLetter] = read_letters(source)
    else:
        letters = list(read_letters(source))
        valid = len(letters)
    if dry_run:
        click.echo(f"Dry run: {valid} valid letter(s) in the file. Nothing was changed.")
        return
    run = new_run_id()
    by = who()
    outcomes: Counter[str] = Counter()
    note = AuditNote("import", by, run, "imported", {"file": getattr(source, "name", "-")})
    iterator = iter(letters)
    while batch := list(itertools.islice(iterator, BATCH)):
        for result in session.store.park_many(batch, audit=note):
            outcomes[result] += 1
    session.store.record(
        AuditNote(
            "import",
            by,
            run,
            f"{outcomes['parked']} imported",
            {"file": getattr(source, "name", "-"), **outcomes},
        )
    )
    skipped = outcomes["duplicate"] + outcomes["taken"]
    click.echo(f"Imported {outcomes['parked']} letter(s); {skipped} already present.")


def read_letters(source: Iterable[str]) -> Iterator[DeadLetter]:
    """The letters of a JSON-lines file; a bad line stops everything, naming it."""
    name = getattr(source, "name", "-")
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            yield DeadLetter.from_dict(json.loads(line))
        except ValueError as exc:
            message = f"{name}, line {number}: {exc}; nothing was imported"
            raise click.ClickException(message) from None


@dlq.command()
@with_session
@click.option(
    "--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True
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
    limit: int,
    action: str | None,
    letter_id: str | None,
    run: str | None,
    as_json: bool,
) -> None:
    """Who replayed, edited, dropped, purged or imported which letters, when, with what result."""
    entries = [
        e
        for e in session.store.audit_entries(
            limit=limit if run is None else MAX_LIMIT, action=action, letter_id=letter_id
        )
        if run is None or e.run == run
    ][:limit]
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
