"""Durations and instants as people type and read them, for the command line.

Pure functions, no clock of their own: the caller passes ``now``. ``cartsync status`` and
``cartsync dlq`` both show ages with :func:`format_age`, so that the same letter reads the
same age wherever an on-call engineer looks.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The word that may follow a duration meaning "that long before now" (``2h ago``).
AGO = "ago"
#: The longest duration taken: a hundred years. Anything longer is a typo, and would reach
#: before the epoch or beyond what a date can hold.
MAX_DURATION_S = 100 * 365 * 86400


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
    if total > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than a hundred years")
    return total


def parse_instant(text: str, now: float) -> float:
    """Seconds since the epoch for an ISO 8601 date or time (UTC unless it says otherwise),
    or for a duration meaning that long before ``now`` (``2h`` or ``2h ago``, the form the
    runbook and ``--help`` show)."""
    with_zone = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(with_zone)
    except ValueError:
        try:
            return now - parse_duration(_without_ago(text))
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date/time (2024-05-01, 2024-05-01T10:30Z) "
                "nor a duration ago (90m, 2h ago, 7d)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is outside the dates this machine can count") from None


def _without_ago(text: str) -> str:
    words = text.strip()
    if words.lower().endswith(AGO):
        return words[: -len(AGO)]
    return words


def format_age(seconds: float) -> str:
    """A short human duration: ``45s``, ``12m 05s``, ``3h 07m``, ``2d 04h``.

    The two largest units, the second zero-padded, so that ages line up in a column.
    """
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_time(at: float) -> str:
    """An instant in UTC to the second, as the audit log and ``dlq show`` print it."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
