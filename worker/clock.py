"""Elapsed time in milliseconds, measured one way for seQura's latency and a task's duration.

The seQura client times each call and the task times each attempt; both read
:func:`time.perf_counter` (monotonic, the finest clock) through :func:`ms_since`, so that a
call's latency and the attempt around it are comparable.
"""

from __future__ import annotations

import time

#: Decimal places of a duration written to a log event (``duration_ms``): hundredths of a
#: millisecond, finer than anyone reads and short in the JSON. Metrics and dead letters take
#: the unrounded value and round it themselves where they store it.
LOGGED_MS_DIGITS = 2


def ms_since(started: float) -> float:
    """Milliseconds since ``started`` (a :func:`time.perf_counter` reading), unrounded."""
    return (time.perf_counter() - started) * 1000.0


def logged_ms_since(started: float) -> float:
    """Milliseconds since ``started``, rounded to :data:`LOGGED_MS_DIGITS` places for a log."""
    return round(ms_since(started), LOGGED_MS_DIGITS)
