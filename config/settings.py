"""Settings from ``CARTSYNC_*`` environment variables.

Every setting has a default here, as a named constant with a ``#:`` comment, and is read in
exactly one place: :func:`load_settings`. ``docs/CONFIGURATION.md`` lists them all; a test
keeps the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cartsync.worker.errors import ConfigurationError

PREFIX = "CARTSYNC_"

#: Redis for the Celery broker, the order ledger, the schedule and the dead letters.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds a Redis connection attempt or command may take before cartsync reports Redis
#: unreachable (socket connect and read timeouts). Redis answers in a millisecond; a wait this
#: long means it is gone or stalled, and a caller (a shop's request enqueueing, an operator at
#: the CLI) is better told so than left hanging. Not a setting: one value for every client.
REDIS_TIMEOUT_S = 5.0
#: seQura's sandbox. Production is https://live.sequrapi.com.
DEFAULT_SEQURA_URL = "https://sandbox.sequrapi.com"
#: Seconds to wait for a TCP connection to seQura.
DEFAULT_CONNECT_TIMEOUT_S = 3.05
#: Seconds to wait for seQura's answer once connected.
DEFAULT_READ_TIMEOUT_S = 20.0
#: First backoff step in seconds; attempt n waits up to base * 2**(n-1).
DEFAULT_RETRY_BASE_S = 2.0
#: Longest single backoff wait in seconds.
DEFAULT_RETRY_CAP_S = 1800.0
#: Attempts (the first send included) before an update may be parked as ``exhausted``.
DEFAULT_RETRY_MAX_ATTEMPTS = 40
#: An update is parked as ``exhausted`` only once it has also been retrying this long.
DEFAULT_RETRY_MIN_WINDOW_S = 6 * 3600.0
#: Seconds a worker holds an order's lock at most; must exceed a whole HTTP call.
DEFAULT_LOCK_TTL_S = 60.0
#: Seconds before Redis hands an unacknowledged task to another worker. Tasks never wait
#: (backoff lives in cartsync's own schedule) and hand back what they have not started by
#: half of this, so it always exceeds a task's run.
DEFAULT_VISIBILITY_TIMEOUT_S = 300.0
#: Seconds an idle worker waits between looks at the schedule for due retries. New updates
#: wake a waiting worker at once.
DEFAULT_SCHEDULER_INTERVAL_S = 0.5
#: Seconds a claimed schedule entry stays hidden from other workers while it is published.
DEFAULT_SCHEDULER_LEASE_S = 30.0
#: Celery queue that carries order updates.
DEFAULT_QUEUE = "cartsync"
#: Prefix of every Redis key cartsync writes (besides Celery's own).
DEFAULT_KEY_PREFIX = "cartsync"
#: ``json`` or ``console``; empty means json unless standard output is a terminal.
DEFAULT_LOG_FORMAT = ""
#: Lowest log level written.
DEFAULT_LOG_LEVEL = "INFO"
#: Reject payload keys the seQura reference does not list.
DEFAULT_STRICT = False
#: Filled into ``order.platform.name`` when a producer leaves it out.
DEFAULT_PLATFORM_NAME = "custom"
#: Filled into ``order.platform.version`` when a producer leaves it out.
DEFAULT_PLATFORM_VERSION = "unknown"
#: Worker pool: threads suit a worker that mostly waits on HTTP.
DEFAULT_WORKER_POOL = "threads"
#: Tasks one worker runs at once.
DEFAULT_WORKER_CONCURRENCY = 64
#: Updates one Celery task carries at most. A backlog is cut into tasks of up to this many
#: updates (Celery's own cost, about 1.5 ms of CPU per task, is then shared); a trickle
#: travels one update per task.
DEFAULT_WORKER_BATCH = 16
#: Times processing one update may fail unexpectedly (a bug, a message that breaks the
#: worker) before it is parked as ``invalid``; until then it is tried again after a backoff.
DEFAULT_WORKER_MAX_FAILURES = 3
#: Port of the Prometheus metrics endpoint.
DEFAULT_METRICS_PORT = 9808
#: ``cartsync status`` fails when a dead letter is older than this many seconds.
DEFAULT_STATUS_MAX_DEAD_AGE_S = 3600.0
#: Seconds an update id is remembered, so that enqueueing it again is a no-op.
DEFAULT_IDEMPOTENCY_TTL_S = 7 * 24 * 3600.0
#: TOML file of the HTTP API's producers: hashed bearer tokens, merchants each may send for.
DEFAULT_PRODUCERS_FILE = ""
#: TOML file of the on-call console's users: password hashes and roles (empty: no logins).
DEFAULT_CONSOLE_USERS_FILE = ""
#: Header naming the user, set by an authenticating reverse proxy (empty: not trusted).
DEFAULT_CONSOLE_TRUSTED_HEADER = ""
#: Header naming that user's role, set by the same proxy (empty: the default role).
DEFAULT_CONSOLE_ROLE_HEADER = ""
#: Role of a proxy-authenticated user when no role header says otherwise.
DEFAULT_CONSOLE_DEFAULT_ROLE = "viewer"
#: Seconds a console login lasts, however active the user is.
DEFAULT_CONSOLE_SESSION_TTL_S = 8 * 3600.0
#: Send the console's session cookie over https only.
DEFAULT_CONSOLE_SECURE_COOKIE = True


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError("expected one of " + ", ".join(repr(a) for a in allowed))
        return value

    return parse


def _setting(default: Any, parse: Callable[[str], Any], doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """cartsync's configuration. Field ``x`` comes from ``CARTSYNC_X``."""

    redis_url: str = _setting(DEFAULT_REDIS_URL, str, "Redis URL")
    sequra_url: str = _setting(DEFAULT_SEQURA_URL, str, "seQura base URL")
    sequra_http_hosts: str = _setting("", str, "hosts allowed over plain http (sandboxes)")
    sequra_username: str = _setting("", str, "API user (single-merchant set-up)")
    sequra_password: str = _setting("", str, "API password (single-merchant set-up)", True)
    merchants_file: str = _setting("", str, "merchant accounts file (several merchants)")
    contract_options: str = _setting("", str, "contract options (single-merchant set-up)")
    connect_timeout_s: float = _setting(
        DEFAULT_CONNECT_TIMEOUT_S, _positive_float, "connect timeout"
    )
    read_timeout_s: float = _setting(DEFAULT_READ_TIMEOUT_S, _positive_float, "read timeout")
    retry_base_s: float = _setting(DEFAULT_RETRY_BASE_S, _positive_float, "backoff base")
    retry_cap_s: float = _setting(DEFAULT_RETRY_CAP_S, _positive_float, "backoff cap")
    retry_max_attempts: int = _setting(DEFAULT_RETRY_MAX_ATTEMPTS, _positive_int, "attempt limit")
    retry_min_window_s: float = _setting(DEFAULT_RETRY_MIN_WINDOW_S, float, "least retry time")
    lock_ttl_s: float = _setting(DEFAULT_LOCK_TTL_S, _positive_float, "order lock TTL")
    visibility_timeout_s: float = _setting(
        DEFAULT_VISIBILITY_TIMEOUT_S, _positive_float, "broker visibility timeout"
    )
    scheduler_interval_s: float = _setting(
        DEFAULT_SCHEDULER_INTERVAL_S, _positive_float, "schedule poll interval"
    )
    scheduler_lease_s: float = _setting(DEFAULT_SCHEDULER_LEASE_S, _positive_float, "claim lease")
    queue: str = _setting(DEFAULT_QUEUE, str, "Celery queue name")
    key_prefix: str = _setting(DEFAULT_KEY_PREFIX, str, "Redis key prefix")
    log_format: str = _setting(DEFAULT_LOG_FORMAT, _choice("", "json", "console"), "log format")
    log_level: str = _setting(
        DEFAULT_LOG_LEVEL, _choice("debug", "info", "warning", "error"), "log level"
    )
    strict: bool = _setting(DEFAULT_STRICT, _bool, "reject unknown payload keys")
    platform_name: str = _setting(DEFAULT_PLATFORM_NAME, str, "default platform.name")
    platform_version: str = _setting(DEFAULT_PLATFORM_VERSION, str, "default platform.version")
    worker_pool: str = _setting(
        DEFAULT_WORKER_POOL, _choice("threads", "prefork", "solo"), "worker pool"
    )
    worker_concurrency: int = _setting(DEFAULT_WORKER_CONCURRENCY, _positive_int, "concurrency")
    worker_batch: int = _setting(DEFAULT_WORKER_BATCH, _positive_int, "updates per task at most")
    worker_max_failures: int = _setting(
        DEFAULT_WORKER_MAX_FAILURES, _positive_int, "unexpected failures before parking"
    )
    metrics_port: int = _setting(DEFAULT_METRICS_PORT, _positive_int, "metrics port")
    status_max_dead_age_s: float = _setting(
        DEFAULT_STATUS_MAX_DEAD_AGE_S, _positive_float, "health threshold"
    )
    idempotency_ttl_s: float = _setting(
        DEFAULT_IDEMPOTENCY_TTL_S, _positive_float, "update id memory"
    )
    producers_file: str = _setting(DEFAULT_PRODUCERS_FILE, str, "HTTP API producers file")
    console_secret_key: str = _setting("", str, "console session signing key", True)
    console_users_file: str = _setting(DEFAULT_CONSOLE_USERS_FILE, str, "console users file")
    console_trusted_header: str = _setting(DEFAULT_CONSOLE_TRUSTED_HEADER, str, "proxy user header")
    console_role_header: str = _setting(DEFAULT_CONSOLE_ROLE_HEADER, str, "proxy role header")
    console_default_role: str = _setting(
        DEFAULT_CONSOLE_DEFAULT_ROLE, _choice("viewer", "operator", "admin"), "proxy user role"
    )
    console_session_ttl_s: float = _setting(
        DEFAULT_CONSOLE_SESSION_TTL_S, _positive_float, "console login lifetime"
    )
    console_secure_cookie: bool = _setting(
        DEFAULT_CONSOLE_SECURE_COOKIE, _bool, "console cookie over https only"
    )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings replaced (tests, the demo, the CLI's options)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return PREFIX + field_name.upper()


def setting_names() -> list[str]:
    """Every ``CARTSYNC_*`` variable cartsync reads."""
    return [env_name(f.name) for f in fields(Settings)]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``).

    A value that does not parse raises :class:`ConfigurationError` naming the variable;
    secret values are never repeated in the message.
    """
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = env_name(f.name)
        raw = source.get(name)
        if raw is None:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            shown = "(hidden)" if f.metadata["secret"] else repr(raw)
            raise ConfigurationError(f"{name}={shown} is not valid: {exc}") from None
    settings = Settings(**values)
    if settings.lock_ttl_s <= settings.connect_timeout_s + settings.read_timeout_s:
        raise ConfigurationError(
            f"{env_name('lock_ttl_s')} must exceed one whole call to seQura "
            f"(connect + read timeout = {settings.connect_timeout_s + settings.read_timeout_s}s)"
        )
    return settings
