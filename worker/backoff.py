"""The retry policy: how long to wait before the next attempt, and when to give up.

Pure functions, so that the policy can be read, tested and tabulated without a worker.
"""

from __future__ import annotations

import random

#: Exponents beyond this add nothing (the cap is reached long before) and would overflow.
_MAX_EXPONENT = 62


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """Longest wait after failed attempt ``attempt`` (1-based): base * 2**(attempt-1), capped."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return float(min(cap, base * 2.0**exponent))


def compute_backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt``: full jitter, honouring ``Retry-After``.

    Full jitter (uniform between 0 and the ceiling) spreads the retries of many updates that
    failed together, so a recovering seQura is not hit by all of them at once. When seQura
    says ``Retry-After``, the wait is never shorter than it asks, but still never exceeds the cap.
    """
    delay = (rng or random).uniform(0.0, backoff_ceiling(attempt, base=base, cap=cap))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def exhausted(
    attempts: int, *, retrying_for_s: float, max_attempts: int, min_window_s: float
) -> bool:
    """True when an update has had its attempts and its time, and belongs in the dead letters.

    Both must be spent: with full jitter a run of short waits could otherwise use up the
    attempts in far less time than a seQura outage lasts.
    """
    return attempts >= max_attempts and retrying_for_s >= min_window_s


def schedule_table(*, base: float, cap: float, attempts: int) -> list[tuple[int, float, float]]:
    """(attempt, longest wait, expected time elapsed) for each failed attempt, for the docs."""
    rows = []
    elapsed = 0.0
    for attempt in range(1, attempts + 1):
        ceiling = backoff_ceiling(attempt, base=base, cap=cap)
        elapsed += ceiling / 2
        rows.append((attempt, ceiling, elapsed))
    return rows
