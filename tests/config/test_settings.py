"""Settings come from CARTSYNC_* variables, with clear errors and secrets kept out of sight."""

import re
from dataclasses import fields

import pytest

from cartsync.config.settings import (
    DEFAULT_REDIS_URL,
    InvalidSetting,
    Settings,
    env_name,
    load_settings,
    setting_names,
)
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


SECONDS = [f.name for f in fields(Settings) if f.name.endswith("_s")]
#: Whole-number settings for which 0 means something (off).
ZERO_MEANS_OFF = {"redis_min_replicas"}
WHOLE_NUMBERS = [
    f.name for f in fields(Settings) if f.type in ("int", int) and f.name not in ZERO_MEANS_OFF
]


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "-1", "1e300", "abc", ""])
def test_a_duration_must_be_a_finite_number_in_bounds(name, raw):
    """Every window, cap, time-out, interval, lease and TTL refuses NaN, infinity, negative and
    absurd values, in one error naming the variable and the value."""
    variable = env_name(name)
    with pytest.raises(InvalidSetting, match=f"^{variable}='{re.escape(raw)}' is not valid: "):
        load_settings({variable: raw})


@pytest.mark.parametrize("name", WHOLE_NUMBERS)
@pytest.mark.parametrize("raw", ["0", "-1", "99999999", "1.5", "nan", "many"])
def test_a_count_or_port_must_be_a_whole_number_in_bounds(name, raw):
    """Attempts, concurrency, batch size and the metrics port refuse zero, negative, huge and
    fractional values."""
    with pytest.raises(InvalidSetting, match=f"^{env_name(name)}="):
        load_settings({env_name(name): raw})


def test_ports_stop_at_65535():
    """A metrics port over 65535 is refused; 65535 itself is fine."""
    with pytest.raises(InvalidSetting, match="port number from 1 to 65535"):
        load_settings({"CARTSYNC_METRICS_PORT": "65536"})
    assert load_settings({"CARTSYNC_METRICS_PORT": "65535"}).metrics_port == 65535


def test_a_zero_retry_window_is_allowed():
    """Zero is a valid least retry time (park as soon as the attempts are spent)."""
    assert load_settings({"CARTSYNC_RETRY_MIN_WINDOW_S": "0"}).retry_min_window_s == 0.0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "amqp://guest@localhost//",
        "nonsense",
        "",
        "127.0.0.1:6379",
        "redis://127.0.0.1:99999/0",
        "redis://127.0.0.1:0/0",
        "redis://127.0.0.1:port/0",
        "redis:///0",
        "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:6379?db=x",
        "unix://",
    ],
)
def test_a_redis_url_must_be_one_redis_and_kombu_can_use(url):
    """Anything but a redis://, rediss:// or unix:// URL with a host (or a socket path) and a
    port from 1 to 65535 is refused, instead of reaching kombu, which would read it as
    another transport (an empty one as AMQP on localhost) and retry it a hundred times."""
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_REDIS_URL="):
        load_settings({"CARTSYNC_REDIS_URL": url})


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@redis.internal:6380/3",
        "rediss://user:secret@redis.example.com:6380/0",
        "redis://localhost",
        "unix:///run/redis/redis.sock?db=2",
    ],
)
def test_redis_rediss_and_unix_urls_are_accepted(url):
    """The three schemes redis-py reads are accepted as given."""
    assert load_settings({"CARTSYNC_REDIS_URL": url}).redis_url == url


def test_the_redis_password_stays_out_of_reprs_and_errors():
    """A Redis password, in the URL's user part or its query, never shows in the settings'
    repr nor in the message refusing the URL."""
    settings = load_settings({"CARTSYNC_REDIS_URL": "redis://u:hunter2@h:6379/0?password=pw2"})
    assert "hunter2" not in repr(settings)
    assert "pw2" not in repr(settings)
    assert "redis://u:***@h:6379/0" in repr(settings)
    with pytest.raises(InvalidSetting) as refused:
        load_settings({"CARTSYNC_REDIS_URL": "redis://:hunter2@h:99999/0"})
    assert "hunter2" not in str(refused.value)


def test_overrides_are_checked_like_the_environment():
    """with_overrides (the CLI's options, the demo) refuses what the environment would."""
    settings = load_settings({})
    for changes in (
        {"redis_url": "nonsense"},
        {"redis_url": "http://x"},
        {"retry_cap_s": float("nan")},
        {"read_timeout_s": -1.0},
        {"metrics_port": 99999},
        {"worker_batch": 0},
        {"strict": "perhaps"},
    ):
        with pytest.raises(InvalidSetting) as refused:
            settings.with_overrides(**changes)
        assert refused.value.field == next(iter(changes))


def test_the_backoff_base_may_not_exceed_its_cap():
    """A first backoff step longer than the longest wait is refused, naming both variables."""
    with pytest.raises(InvalidSetting, match=r"CARTSYNC_RETRY_BASE_S .* CARTSYNC_RETRY_CAP_S"):
        load_settings({"CARTSYNC_RETRY_BASE_S": "60", "CARTSYNC_RETRY_CAP_S": "30"})


@pytest.mark.parametrize(
    "hosts", ["sandbox.sequrapi.com", "sandbox,LIVE.SEQURAPI.COM.", "sequrapi.com"]
)
def test_sequra_itself_cannot_be_allowed_over_plain_http(hosts):
    """CARTSYNC_SEQURA_HTTP_HOSTS may name sandboxes on a private network, never seQura."""
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_SEQURA_HTTP_HOSTS="):
        load_settings({"CARTSYNC_SEQURA_HTTP_HOSTS": hosts})
    assert load_settings({"CARTSYNC_SEQURA_HTTP_HOSTS": "sandbox,notsequrapi.com"})


@pytest.mark.parametrize("name", ["CARTSYNC_QUEUE", "CARTSYNC_KEY_PREFIX"])
@pytest.mark.parametrize("raw", ["", "two words", "prefix*", "a\nb"])
def test_queue_and_key_prefix_are_plain_names(name, raw):
    """The queue name and the key prefix are non-empty, without spaces or glob characters
    (the prefix ends up in SCAN patterns)."""
    with pytest.raises(InvalidSetting, match=f"^{name}="):
        load_settings({name: raw})


def test_the_documented_bounds_are_the_codes():
    """docs/CONFIGURATION.md's accepted values name each bound the code enforces."""
    from pathlib import Path

    from cartsync.config import settings as module

    doc = (Path(__file__).parents[2] / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    accepted = doc.split("## Accepted values", 1)[1]
    names = ["MAX_CALL_TIMEOUT_S", "MAX_PERIOD_S", "MIN_SCHEDULER_INTERVAL_S",
             "MAX_SCHEDULER_INTERVAL_S", "MAX_RETRY_ATTEMPTS", "MAX_WORKER_CONCURRENCY",
             "MAX_WORKER_BATCH", "MIN_NOTIFY_INTERVAL_S", "MAX_REDIS_MIN_REPLICAS",
             "MAX_REDIS_REPLICA_TIMEOUT_MS"]  # fmt: skip
    bounds = [getattr(module, name) for name in names]
    missing = [b for b in bounds if f" {b:g} " not in accepted and f" {int(b)} " not in accepted]
    assert missing == []


SENTINELS = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


def test_a_sentinel_url_with_its_master_is_accepted():
    """Sentinels' addresses separated by ';', with the master's name, are one valid setting."""
    settings = load_settings(
        {"CARTSYNC_REDIS_URL": SENTINELS, "CARTSYNC_REDIS_SENTINEL_MASTER": "mymaster"}
    )
    assert settings.redis_url == SENTINELS
    assert settings.redis_sentinel_master == "mymaster"


def test_a_sentinel_url_without_a_master_name_is_refused_naming_the_variable():
    """Sentinels watch masters by name: a sentinel:// URL alone names no Redis."""
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_REDIS_SENTINEL_MASTER must name"):
        load_settings({"CARTSYNC_REDIS_URL": SENTINELS})


def test_a_master_name_without_sentinels_is_refused():
    """A master name (or a Sentinel password) with a plain Redis URL is a half-done change."""
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_REDIS_SENTINEL_MASTER is set, but"):
        load_settings({"CARTSYNC_REDIS_SENTINEL_MASTER": "mymaster"})
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_REDIS_SENTINEL_PASSWORD is set"):
        load_settings({"CARTSYNC_REDIS_SENTINEL_PASSWORD": "pw"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sentinel://", "address 1 of 1 names no host"),
        ("sentinel://h1:26379;;sentinel://h2", "address 2 of 3 is empty"),
        ("sentinel://h1:26379;redis://h2:6379", "address 2 of 2 is not a sentinel:// address"),
        ("sentinel://h1:99999", "the port must be a number from 1 to 65535"),
        ("sentinel://h1:0", "the port must be a number from 1 to 65535"),
        ("sentinel://h1/zero", "the database (the path) must be a number"),
        ("sentinel://h1/1;sentinel://h2/2", "two different databases"),
        ("sentinel://:a@h1;sentinel://:b@h2", "credentials on one address only"),
        ("sentinel://h1?db=1", "takes no ?query"),
    ],
)
def test_a_bad_sentinel_url_is_refused_saying_what_is_wrong(url, problem):
    """Each mistake in the Sentinels' addresses is one error naming the variable and the
    address at fault, before anything connects."""
    env = {"CARTSYNC_REDIS_URL": url, "CARTSYNC_REDIS_SENTINEL_MASTER": "mymaster"}
    with pytest.raises(InvalidSetting, match=r"^CARTSYNC_REDIS_URL=") as refused:
        load_settings(env)
    assert problem in str(refused.value)


def test_passwords_in_sentinel_urls_stay_out_of_reprs():
    """The master's password on any Sentinel address, and the Sentinels' own, are hidden."""
    settings = load_settings(
        {
            "CARTSYNC_REDIS_URL": "sentinel://h1;sentinel://:hunter2@h2/1",
            "CARTSYNC_REDIS_SENTINEL_MASTER": "m",
            "CARTSYNC_REDIS_SENTINEL_PASSWORD": "sentinel-pw",
        }
    )
    assert "hunter2" not in repr(settings)
    assert "sentinel-pw" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("CARTSYNC_REDIS_MIN_REPLICAS", "-1"),
        ("CARTSYNC_REDIS_MIN_REPLICAS", "17"),
        ("CARTSYNC_REDIS_MIN_REPLICAS", "one"),
        ("CARTSYNC_REDIS_REPLICA_TIMEOUT_MS", "0"),
        ("CARTSYNC_REDIS_REPLICA_TIMEOUT_MS", "2001"),
        ("CARTSYNC_REDIS_REPLICA_TIMEOUT_MS", "0.5"),
    ],
)
def test_replica_confirmation_settings_keep_their_bounds(name, raw):
    """Replicas to wait for are 0 (off) to 16; the wait is 1 to 2000 ms, shorter than any
    client's socket time-out."""
    with pytest.raises(InvalidSetting, match=f"^{name}='{re.escape(raw)}' is not valid"):
        load_settings({name: raw})
    assert load_settings({"CARTSYNC_REDIS_MIN_REPLICAS": "0"}).redis_min_replicas == 0
