"""Logging: cartsync's own loggers, and the set-up of a process cartsync runs (its commands,
its worker).

Logs carry merchant, order-ref, version, outcome, status and timings: never payload contents,
never customer data, never credentials. :func:`redact` enforces that with an allow-list, so a
key someone adds later is hidden until it is judged safe and added to :data:`SAFE_KEYS`.

Every cartsync module logs through :func:`get_logger`: structlog's API, delivered as records
of the standard library logger ``cartsync.<module>`` after cartsync's own processors (the
redaction above included) have run. So the redaction holds wherever cartsync runs, and the
process decides where the records go:

- in a host application using the Python API (``tasks/producer.py``), the host's logging
  configuration, untouched by cartsync: unconfigured, the standard library drops info lines
  and writes warnings to stderr; a host rendering records with structlog's
  ``ProcessorFormatter`` gets cartsync's (already redacted) event dicts;
- in cartsync's own processes, :func:`configure_logging`, called by each entry point with the
  settings: one JSON (or console) line per event, Celery's and kombu's records rendered the
  same way and redacted too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, NoReturn, Protocol

import structlog

from cartsync.config.settings import Settings

#: The standard library logger all of cartsync's loggers live under.
ROOT_LOGGER = "cartsync"

#: Event keys whose values may be written to a log. Everything else is replaced.
SAFE_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "logger_name",
        "outcome", "reason", "merchant", "order_ref", "update_id", "version", "attempt",
        "status", "duration_ms", "next_retry_s", "exception", "error_count", "error_paths",
        "warning_count", "letter_id", "replay_of", "queue", "published", "count", "url",
        "port", "pool", "concurrency", "superseded_by", "delivered_version", "task_id",
    }
)  # fmt: skip

#: What a redacted value is replaced with.
REDACTED = "[redacted]"

#: Keys a record's plain-text message leaves out: the host's log format shows them its way.
_SHOWN_BY_HOST = frozenset({"event", "level", "logger", "timestamp"})


def redact(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every key not in :data:`SAFE_KEYS`.

    Runs after ``format_exc_info``, which turns ``exc_info`` into the (safe) ``exception``
    text: run before it, it would replace ``exc_info`` and lose the traceback.
    """
    for key in event_dict:
        if key not in SAFE_KEYS:
            event_dict[key] = REDACTED
    return event_dict


class Event(dict[str, Any]):
    """An event dict travelling as a standard library record's message.

    ``ProcessorFormatter`` (cartsync's own handler, or a host's) reads it as the dict it is;
    any other formatter shows ``str()`` of it: the event name, then ``key=value`` pairs.
    """

    def __str__(self) -> str:
        pairs = " ".join(
            f"{key}={_plain(value)}" for key, value in self.items() if key not in _SHOWN_BY_HOST
        )
        return f"{self.get('event', '')} {pairs}".rstrip()


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if isinstance(value, str) and (not value or any(c.isspace() or c in '"=' for c in value)):
        text = json.dumps(value)
    return text


def to_standard_library(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> NoReturn:
    """The last processor: hand the event to the standard library logger as the message of a
    record (an :class:`Event`, with the markers ``ProcessorFormatter`` looks for, as
    structlog's ``wrap_for_formatter`` leaves them), and end structlog's own handling.

    The record is made here rather than by ``logger.info(...)``, which would search the stack
    for a caller only to find structlog's own frame (a worker logs one event per update).
    """
    record = logger.makeRecord(
        logger.name,
        _LEVELS[method_name],
        "(unknown file)",
        0,
        Event(event_dict),
        (),
        None,
        extra={"_logger": logger, "_name": method_name},
    )
    logger.handle(record)
    raise structlog.DropEvent


#: Standard library level of each structlog method name.
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


#: What every cartsync event goes through, in every process, before the standard library
#: gets it. Level first, so that a dropped level costs next to nothing.
PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.format_exc_info,
    redact,
    to_standard_library,
]


def get_logger(name: str) -> Any:
    """cartsync's logger ``name`` (``cartsync.<module>``), independent of any structlog
    configuration the process may have: see the module's docstring."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def log_format(settings: Settings, stream: Stream) -> str:
    """``json`` or ``console``: the setting, else json unless writing to a terminal."""
    if settings.log_format:
        return settings.log_format
    return "console" if stream.isatty() else "json"


class Stream(Protocol):
    """Where log lines are written: a text file, or :class:`LiveStderr`."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


class LiveStderr:
    """Whatever ``sys.stderr`` is at the time of writing: a command's log keeps going to its
    standard error even when click's test runner swaps it for each command it runs."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class LineFormatter(logging.Formatter):
    """Renders every record as one line of ``renderer`` (JSON or console): cartsync's events
    as they are (already redacted), other libraries' records with the same keys, their
    traceback formatted first and then redacted."""

    def __init__(self, renderer: Any) -> None:
        super().__init__()
        self.renderer = renderer
        self.stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)

    def format(self, record: logging.LogRecord) -> str:
        method = record.levelname.lower()
        event: MutableMapping[str, Any]
        if isinstance(record.msg, Event):
            event = dict(record.msg)
        else:
            event = {
                "event": record.getMessage(),
                "logger": record.name,
                "level": "critical" if method == "fatal" else method,
            }
            if record.exc_info:
                event["exc_info"] = record.exc_info
            event = redact(None, method, structlog.processors.format_exc_info(None, method, event))
        rendered: str = self.renderer(None, method, self.stamp(None, method, event))
        return rendered


def configure_logging(
    settings: Settings, stream: Stream | None = None, *, cache: bool = True
) -> Callable[[], None]:
    """Set up logging for a process cartsync runs (a command, the worker, the HTTP service):
    the standard library's root logger writes every record, cartsync's and Celery's, kombu's
    and the rest, to ``stream`` (default stdout), one line each in the settings' format, from
    the settings' level.

    Only entry points call this: it takes over the process's logging (structlog's global
    configuration stays as it is: cartsync's loggers do not use it). Returns a function that
    puts back the set-up it replaced (a command run in-process, by a test or the demo, calls
    it when done). ``cache`` is kept for callers of the earlier structlog set-up; it has no
    effect.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def restore() -> None:
        root.handlers, root.level = saved_handlers, saved_level

    out = stream or sys.stdout
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    renderer: Any
    if log_format(settings, out) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(LineFormatter(renderer))
    root.handlers = [handler]
    root.setLevel(level)
    return restore
