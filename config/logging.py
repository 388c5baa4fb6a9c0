"""Logging set-up: structlog for cartsync's own events, the same renderer for everything else.

Logs carry merchant, order-ref, version, outcome, status and timings: never payload contents,
never customer data, never credentials. :func:`redact` enforces that with an allow-list, so a
key someone adds later is hidden until it is judged safe and added to :data:`SAFE_KEYS`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from cartsync.config.settings import Settings

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


def redact(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every key not in :data:`SAFE_KEYS`."""
    for key in event_dict:
        if key not in SAFE_KEYS:
            event_dict[key] = REDACTED
    return event_dict


def log_format(settings: Settings, stream: TextIO) -> str:
    """``json`` or ``console``: the setting, else json unless writing to a terminal."""
    if settings.log_format:
        return settings.log_format
    return "console" if stream.isatty() else "json"


def configure_logging(
    settings: Settings, stream: TextIO | None = None, *, cache: bool = True
) -> None:
    """Configure structlog and the standard library's root logger (Celery's, kombu's).

    ``cache=False`` keeps loggers re-reading the configuration (tests reconfigure it).
    """
    out = stream or sys.stdout
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    renderer: Any
    if log_format(settings, out) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
    # Celery, kombu and the rest log through the standard library; render them the same way.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
