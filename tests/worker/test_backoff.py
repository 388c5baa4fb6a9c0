"""The retry policy's arithmetic."""

import random

from hypothesis import given
from hypothesis import strategies as st

from cartsync.config.settings import (
    DEFAULT_RETRY_BASE_S,
    DEFAULT_RETRY_CAP_S,
    DEFAULT_RETRY_MAX_ATTEMPTS,
    DEFAULT_RETRY_MIN_WINDOW_S,
)
from cartsync.worker.backoff import backoff_ceiling, compute_backoff, exhausted, schedule_table


def test_ceiling_doubles_from_base_until_the_cap():
    """The longest wait doubles with each attempt, starting at base, and stops at the cap."""
    assert [backoff_ceiling(n, base=2, cap=20) for n in range(1, 6)] == [2, 4, 8, 16, 20]


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.01, max_value=60),
    cap=st.floats(min_value=0.01, max_value=86_400),
    seed=st.integers(),
)
def test_delay_is_never_negative_nor_above_its_ceiling(attempt, base, cap, seed):
    """Full jitter stays within [0, ceiling] for any attempt, even huge ones."""
    delay = compute_backoff(attempt, base=base, cap=cap, rng=random.Random(seed))
    assert 0 <= delay <= backoff_ceiling(attempt, base=base, cap=cap)


@given(retry_after=st.floats(min_value=0, max_value=10_000), seed=st.integers())
def test_retry_after_is_a_floor_but_the_cap_still_holds(retry_after, seed):
    """A Retry-After is never cut short, except where it exceeds the cap."""
    delay = compute_backoff(1, base=1, cap=600, retry_after=retry_after, rng=random.Random(seed))
    assert min(retry_after, 600) <= delay <= 600


def test_jitter_spreads_delays():
    """Delays for the same attempt differ between updates (full jitter, not a fixed step)."""
    rng = random.Random(7)
    delays = {round(compute_backoff(5, base=2, cap=600, rng=rng), 3) for _ in range(50)}
    assert len(delays) > 40


def test_exhausted_needs_both_the_attempts_and_the_time():
    """An update is parked only when it has used its attempts and retried for the window."""
    assert not exhausted(40, retrying_for_s=100, max_attempts=40, min_window_s=3600)
    assert not exhausted(39, retrying_for_s=7200, max_attempts=40, min_window_s=3600)
    assert exhausted(40, retrying_for_s=3600, max_attempts=40, min_window_s=3600)


def test_default_schedule_rides_out_six_hours():
    """With the defaults, an update keeps retrying through a six-hour seQura outage."""
    assert DEFAULT_RETRY_MIN_WINDOW_S >= 6 * 3600
    rows = schedule_table(
        base=DEFAULT_RETRY_BASE_S, cap=DEFAULT_RETRY_CAP_S, attempts=DEFAULT_RETRY_MAX_ATTEMPTS
    )
    # The expected time the attempts take is itself beyond six hours.
    assert rows[-1][2] >= 6 * 3600
