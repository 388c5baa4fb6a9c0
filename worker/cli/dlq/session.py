"""What every ``cartsync dlq`` command works in: settings, a Redis client, the letter store,
who is acting, and errors turned into one line.

Commands take a :class:`Session` through :func:`with_session`, which also adds
``--redis-url``. :class:`DlqGroup` turns cartsync's own errors and Redis failures into one
line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import itertools
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
import redis

from cartsync.config.settings import Settings, load_settings
from cartsync.worker.cli.common import REDIS_TIMEOUT_S
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.errors import CartsyncError
from cartsync.worker.redisconn import connect
from cartsync.worker.urls import safe_url

if TYPE_CHECKING:
    from cartsync.tasks.producer import Producer

#: Letters fetched per round trip by bulk commands.
BATCH = 500
#: Where :func:`open_session` leaves the Redis URL for :class:`DlqGroup`'s error message.
REDIS_URL_META = "cartsync.redis_url"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
    ctx.meta[REDIS_URL_META] = settings.redis_url
    try:
        client = connect(
            settings,
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
            url = safe_url(ctx.meta.get(REDIS_URL_META, ""))
            raise click.ClickException(
                f"Redis at {url} does not answer ({type(exc).__name__})"
            ) from None
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis answered with an error: {exc}") from None


def who() -> str:
    """The login name, as the audit log names people who do not say who they are: the
    terminal's login (``os.getlogin``), else the user the process runs as."""
    with contextlib.suppress(OSError):
        return os.getlogin()
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


#: Longest name ``--as`` takes.
MAX_NAME = 100
#: The variable ``--as`` falls back to.
AS_ENVVAR = "CARTSYNC_DLQ_AS"


def _as_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise click.BadParameter(
            f"a name of 1 to {MAX_NAME} printable characters, not {value[:MAX_NAME]!r}"
        )
    return name


def as_option(command: F) -> F:
    """Adds ``--as NAME`` (or ``CARTSYNC_DLQ_AS``): who the audit log names for the change."""
    return click.option(
        "--as",
        "as_",
        metavar="NAME",
        envvar=AS_ENVVAR,
        callback=_as_name,
        help=f"Who the audit log names [env: {AS_ENVVAR}; default: your login name].",
    )(command)


def actor(name: str | None, *, announce: bool = True) -> str:
    """Who a change is recorded as: ``--as``'s name, else the login name; with
    ``announce``, says which on stderr (the audit names whoever a server's login is)."""
    if name is not None:
        source = "--as" if _from_option() else AS_ENVVAR
        by = name
    else:
        source, by = "the login name; --as NAME to name yourself", who()
    if announce:
        click.echo(f"Recorded in the audit log as {by!r} ({source}).", err=True)
    return by


def _from_option() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    found = ctx.get_parameter_source("as_")
    return found is not click.core.ParameterSource.ENVIRONMENT


def new_run_id() -> str:
    """One command run's id in the audit log: when it started, and a little randomness."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def progress(length: int, label: str) -> Any:
    """A progress bar on stderr, so that standard output stays the command's result."""
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


def quiet_logging(settings: Settings) -> Settings:
    """Send the pipeline's log events to stderr, warnings only unless CARTSYNC_LOG_LEVEL is
    set, so that a replay of a million letters does not print a million lines. The previous
    configuration comes back when the command ends. Returns the settings used."""
    import logging

    import structlog

    from cartsync.config.logging import LiveStderr, configure_logging

    if "CARTSYNC_LOG_LEVEL" not in os.environ:
        settings = settings.with_overrides(log_level="warning")
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def restore() -> None:
        structlog.configure(**saved)
        root.handlers, root.level = saved_handlers, saved_level

    configure_logging(settings, stream=LiveStderr(), cache=False)
    click.get_current_context().call_on_close(restore)
    return settings
