"""What cartsync logs, caught in a test as the event dicts its loggers hand on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cartsync.config.logging import ROOT_LOGGER


class _Keep(logging.Handler):
    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(dict(record.msg))


@contextmanager
def captured_events() -> Iterator[list[dict[str, Any]]]:
    """Every event cartsync logs inside the block, at any level, after its redaction."""
    events: list[dict[str, Any]] = []
    logger = logging.getLogger(ROOT_LOGGER)
    handler, level = _Keep(events), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
