"""Settings come from CARTSYNC_* variables, with clear errors and secrets kept out of sight."""

import pytest

from cartsync.config.settings import DEFAULT_REDIS_URL, load_settings, setting_names
from cartsync.worker.errors import ConfigurationError


def test_defaults_apply_when_nothing_is_set():
    """An empty environment gives the documented defaults."""
    assert load_settings({}).redis_url == DEFAULT_REDIS_URL


def test_values_are_parsed_by_type():
    """Numbers and flags are parsed from their text."""
    settings = load_settings({"CARTSYNC_RETRY_CAP_S": "60", "CARTSYNC_STRICT": "yes"})
    assert settings.retry_cap_s == 60.0
    assert settings.strict is True


def test_a_bad_value_names_the_variable():
    """A value that does not parse is one error naming the variable and what was expected."""
    with pytest.raises(ConfigurationError, match="CARTSYNC_RETRY_MAX_ATTEMPTS='many'"):
        load_settings({"CARTSYNC_RETRY_MAX_ATTEMPTS": "many"})


def test_secrets_stay_out_of_reprs_and_errors():
    """The password never shows in the settings' repr."""
    settings = load_settings({"CARTSYNC_SEQURA_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings)


def test_lock_must_outlast_a_call():
    """A lock TTL shorter than a whole HTTP call is refused: two workers could send at once."""
    with pytest.raises(ConfigurationError, match="CARTSYNC_LOCK_TTL_S"):
        load_settings({"CARTSYNC_LOCK_TTL_S": "5", "CARTSYNC_READ_TIMEOUT_S": "10"})


def test_every_setting_is_documented():
    """docs/CONFIGURATION.md lists every CARTSYNC_* variable cartsync reads."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    missing = [name for name in setting_names() if f"`{name}`" not in doc]
    assert missing == []
