"""Durations and instants as people type them, and ages as ``status`` and ``dlq`` print them."""

import pytest

from cartsync.worker.timefmt import format_age, format_time, parse_duration, parse_instant

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 7 * DAY),
        ("1w", 7 * DAY),
        ("1d12h", 1.5 * DAY),
        ("1.5h", 5400),
    ],
)
def test_durations_parse(text, seconds):
    """Durations combine s, m, h, d and w units."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d7", "7 days", "1h-", "-2h", "2h ago"])
def test_bad_durations_are_refused(text):
    """Anything but number-unit pairs is a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_instants_are_iso_in_utc_or_a_duration_ago():
    """A naive ISO time is UTC, an offset is honoured, and a duration counts back from now."""
    assert parse_instant("2024-05-01", 0) == 1714521600.0
    assert parse_instant("2024-05-01T02:00:00+02:00", 0) == 1714521600.0
    assert parse_instant("2024-05-01T00:00Z", 0) == 1714521600.0
    assert parse_instant("2h", 10_000.0) == 2800.0


@pytest.mark.parametrize("text", ["2h ago", "2h  ago", " 2h ago ", "2H AGO", "1h60m ago"])
def test_a_duration_may_end_in_ago(text):
    """A duration followed by "ago", as the runbook and --help write it, counts back from now."""
    assert parse_instant(text, 10_000.0) == 2800.0


@pytest.mark.parametrize("text", ["ago", "yesterday", "2h from now", "ago 2h"])
def test_what_is_neither_an_instant_nor_a_duration_is_refused(text):
    """Anything else is a ValueError that shows both accepted forms."""
    with pytest.raises(ValueError, match="2h ago"):
        parse_instant(text, 10_000.0)


def test_ages_are_short():
    """Ages show the two largest units at most, the second one zero-padded."""
    assert [format_age(s) for s in (5, 125, 3 * 3600 + 300, 2 * DAY + 7200)] == [
        "5s",
        "2m 05s",
        "3h 05m",
        "2d 02h",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m 00s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (86400 + 3 * 3600, "1d 03h"),
        (-5, "0s"),
    ],
)
def test_format_age(seconds, text):
    """Ages read as seconds, minutes, hours or days with the next unit beside them."""
    assert format_age(seconds) == text


def test_times_are_utc_to_the_second():
    """An instant prints as a UTC date and time with a Z."""
    assert format_time(1714521600.5) == "2024-05-01 00:00:00Z"
