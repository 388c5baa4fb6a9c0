"""Settings from ``CARTSYNC_*`` environment variables.

Longer than cartsync's other modules on purpose: it is two declarative tables (the fields with
their defaults, and their bounds) over one small loader, and splitting the tables would put a
setting's default and its limits in two places.

Every setting has a default here, as a named constant with a ``#:`` comment, and is read in
exactly one place: :func:`load_settings`. ``docs/CONFIGURATION.md`` lists them all; a test
keeps the two in step.

Each field names one parse function, which takes the variable's text or an already typed value
(``Settings.with_overrides``, the CLI's options) and returns the value or raises ValueError
saying what is wrong with it; :data:`BOUNDS` adds the limits a value must keep. Every
:class:`Settings`, however it was made, has passed both and the rules between fields
(:meth:`Settings.__post_init__`), so a process that holds one holds a usable configuration: a
bad value stops it at start-up with one line naming the variable, never later in the middle
of a delivery.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cartsync.worker.errors import ConfigurationError
from cartsync.worker.redisurl import SEPARATOR, is_sentinel_url, parse_sentinel_url

PREFIX = "CARTSYNC_"

#: Longest connect or read time-out of a call to seQura a setting may ask for (ten minutes):
#: a worker thread waits that long, holding the order's lock.
MAX_CALL_TIMEOUT_S = 600.0
#: Longest wait, window, lease or TTL a setting may ask for (a year). Anything longer is a
#: typo; and Redis refuses expiry times in milliseconds beyond 64 bits.
MAX_PERIOD_S = 365 * 24 * 3600.0
#: Shortest pause between an idle worker's looks at the schedule: below it the pump spins.
MIN_SCHEDULER_INTERVAL_S = 0.01
#: Longest pause between an idle worker's looks at the schedule (retries wait that long more).
MAX_SCHEDULER_INTERVAL_S = 60.0
#: Most attempts an update may be given before it is parked.
MAX_RETRY_ATTEMPTS = 10_000
#: Most threads (or processes) one worker may run; each holds a Redis connection.
MAX_WORKER_CONCURRENCY = 1024
#: Most updates one Celery task may carry (a task hands back the rest by half the
#: visibility timeout, and its message holds every payload).
MAX_WORKER_BATCH = 1000
#: URL schemes redis-py and cartsync accept for Redis.
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: seQura's own domain: reached over https only, whatever CARTSYNC_SEQURA_HTTP_HOSTS says.
SEQURA_DOMAIN = "sequrapi.com"
#: What a password in a URL is shown as (repr, messages).
HIDDEN = "***"

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
#: Seconds an HTTP request may take at most (``cartsync serve``): past it, an update not yet
#: safe in Redis is answered 503 with Retry-After, and Redis waits are cut to fit in it.
DEFAULT_HTTP_REQUEST_TIMEOUT_S = 5.0
#: Most seconds ``CARTSYNC_HTTP_REQUEST_TIMEOUT_S`` may be: a shop's checkout waits on it.
MAX_HTTP_REQUEST_TIMEOUT_S = 60.0
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
#: URL that receives a Slack-compatible message when dead letters appear (empty: none sent).
DEFAULT_NOTIFY_WEBHOOK_URL = ""
#: Seconds between dead-letter notifications: new letters are counted into one message each.
DEFAULT_NOTIFY_INTERVAL_S = 60.0
#: Shortest notification interval: a message's retries must fit in half of one.
MIN_NOTIFY_INTERVAL_S = 10.0
#: Base URL the console is reached at (https://cartsync.example.com), for links in messages.
DEFAULT_CONSOLE_BASE_URL = ""
#: Name of the master the Sentinels watch (their ``SENTINEL MONITOR`` name); needed, and only
#: allowed, when ``CARTSYNC_REDIS_URL`` lists Sentinels (``sentinel://...``).
DEFAULT_REDIS_SENTINEL_MASTER = ""
#: Replicas that must confirm an accepted update, or a parked letter, before cartsync counts
#: it done (Redis's ``WAIT``). 0: off, Redis's asynchronous replication as it is (a failover
#: may lose what the old master acknowledged last).
DEFAULT_REDIS_MIN_REPLICAS = 0
#: Milliseconds to wait for those replicas; past it the producer answers "unavailable".
DEFAULT_REDIS_REPLICA_TIMEOUT_MS = 500
#: Most replicas a write may wait for (more is a typo: Sentinel set-ups run one to a few).
MAX_REDIS_MIN_REPLICAS = 16
#: Longest wait for replicas, in milliseconds: it must end well before the shortest socket
#: time-out of cartsync's Redis clients (the HTTP app's, 3 s), or the wait reads as Redis gone.
MAX_REDIS_REPLICA_TIMEOUT_MS = 2000


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError("expected a number")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _plain(number: float) -> str:
    """``number`` as a person writes it: 31536000, 0.01."""
    return str(int(number)) if number == int(number) else repr(number)


def _whole(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError("expected a whole number")
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _seconds(low: float, high: float, *, low_open: bool = True) -> Callable[[Any], float]:
    """A number of seconds above ``low`` (or from it, when not ``low_open``) up to ``high``."""
    bound = "greater than" if low_open else "at least"
    between = f"{bound} {_plain(low)} and at most {_plain(high)}"

    def parse(raw: Any) -> float:
        value = _number(raw)
        if value < low or (low_open and value == low) or value > high:
            raise ValueError(f"expected seconds {between}")
        return value

    return parse


def _count(low: int, high: int) -> Callable[[Any], int]:
    """A whole number from ``low`` to ``high``."""

    def parse(raw: Any) -> int:
        value = _whole(raw)
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return value

    return parse


def _positive_float(raw: Any) -> float:
    value = _number(raw)
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def _positive_int(raw: Any) -> int:
    value = _whole(raw)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _port(raw: Any) -> int:
    value = _whole(raw)
    if not 1 <= value <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return value


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("expected text")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValueError("holds a control character")
    return raw


def _name(raw: Any) -> str:
    """A queue name or key prefix: Redis key material, also used in SCAN patterns."""
    value = _text(raw)
    if not value or any(c.isspace() or c in "*?[]" for c in value):
        raise ValueError("expected a non-empty name without spaces or any of * ? [ ]")
    return value


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError("expected one of " + ", ".join(repr(a) for a in allowed))
        return value

    return parse


def _redis_url(raw: Any) -> str:
    """A URL redis-py and kombu can both use: ``redis://``, ``rediss://`` or ``unix://``, or
    the Sentinels' addresses (``sentinel://h1:26379;sentinel://h2:26379``, worker/redisurl.py).

    Anything else would reach kombu, which reads an unknown scheme as another transport (an
    empty URL as AMQP on localhost) and retries it a hundred times instead of failing.
    """
    url = _text(raw).strip()
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return url
    scheme = url.partition("://")[0]
    if "://" not in url or scheme not in REDIS_SCHEMES:
        raise ValueError(
            "expected a redis://, rediss:// or unix:// URL, like redis://127.0.0.1:6379/0, "
            "or Sentinels' addresses, like sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"
        )
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL names the socket's path, like unix:///run/redis.sock")
    else:
        if not parts.hostname:
            raise ValueError("the URL names no host, like redis://127.0.0.1:6379/0")
        if port == 0:
            raise ValueError("the port must be a number from 1 to 65535")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError("the database (the URL's path) must be a number, like /0")
    db_query = dict(parse_qsl(parts.query)).get("db")
    if db_query is not None and not db_query.isdigit():
        raise ValueError("the db in the URL's query must be a number")
    return url


def _web_url(raw: Any) -> str:
    """Empty, or an http(s) URL naming a host (a webhook, the console's address)."""
    url = _text(raw).strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL naming a host")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    return url


def is_sequra_host(host: str) -> bool:
    """True for seQura's own hosts (``sequrapi.com`` and everything under it)."""
    name = host.strip().lower().rstrip(".")
    return name == SEQURA_DOMAIN or name.endswith("." + SEQURA_DOMAIN)


def _http_hosts(raw: Any) -> str:
    value = _text(raw)
    named = [name for name in value.split(",") if is_sequra_host(name)]
    if named:
        raise ValueError(
            f"must not name seQura's own hosts ({named[0].strip()}): seQura is reached over "
            "https only"
        )
    return value


def hide_password(url: str) -> str:
    """``url`` with the password in it (user info or ``password=`` in the query) replaced."""
    if SEPARATOR in url:  # Sentinels' addresses: a password may be on any of them
        return SEPARATOR.join(hide_password(part) for part in url.split(SEPARATOR))
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, question, query = rest.partition("?")
    location, slash, path = rest.partition("/")
    userinfo, at, hostport = location.rpartition("@")
    if at and ":" in userinfo:
        location = f"{userinfo.partition(':')[0]}:{HIDDEN}@{hostport}"
    if question:
        pairs = [
            f"{k}={HIDDEN}" if k.lower() == "password" else f"{k}={v}"
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = "&".join(pairs)
    return f"{scheme}{sep}{location}{slash}{path}{question}{query}"


def _master_name(raw: Any) -> str:
    """The name of a master Sentinel watches, or empty (no Sentinel)."""
    value = _text(raw).strip()
    if any(c.isspace() for c in value):
        raise ValueError("expected the master's name as Sentinel knows it, without spaces")
    return value


#: Bounds each setting's value must also keep, once its field's parse function has read it
#: (the field table below stays one line per setting: type, default, description).
BOUNDS: dict[str, Callable[[Any], Any]] = {
    "redis_url": _redis_url,
    "sequra_http_hosts": _http_hosts,
    "connect_timeout_s": _seconds(0, MAX_CALL_TIMEOUT_S),
    "read_timeout_s": _seconds(0, MAX_CALL_TIMEOUT_S),
    "retry_base_s": _seconds(0, MAX_PERIOD_S),
    "retry_cap_s": _seconds(0, MAX_PERIOD_S),
    "retry_max_attempts": _count(1, MAX_RETRY_ATTEMPTS),
    "retry_min_window_s": _seconds(0, MAX_PERIOD_S, low_open=False),
    "lock_ttl_s": _seconds(0, MAX_PERIOD_S),
    "visibility_timeout_s": _seconds(0, MAX_PERIOD_S),
    "scheduler_interval_s": _seconds(
        MIN_SCHEDULER_INTERVAL_S, MAX_SCHEDULER_INTERVAL_S, low_open=False
    ),
    "scheduler_lease_s": _seconds(0, MAX_PERIOD_S),
    "queue": _name,
    "key_prefix": _name,
    "worker_concurrency": _count(1, MAX_WORKER_CONCURRENCY),
    "worker_batch": _count(1, MAX_WORKER_BATCH),
    "worker_max_failures": _count(1, MAX_RETRY_ATTEMPTS),
    "metrics_port": _port,
    "status_max_dead_age_s": _seconds(0, MAX_PERIOD_S),
    "idempotency_ttl_s": _seconds(0, MAX_PERIOD_S),
    "http_request_timeout_s": _seconds(0, MAX_HTTP_REQUEST_TIMEOUT_S),
    "console_session_ttl_s": _seconds(0, MAX_PERIOD_S),
    "notify_webhook_url": _web_url,
    "notify_interval_s": _seconds(MIN_NOTIFY_INTERVAL_S, MAX_PERIOD_S, low_open=False),
    "console_base_url": _web_url,
    "redis_sentinel_master": _master_name,
    "redis_min_replicas": _count(0, MAX_REDIS_MIN_REPLICAS),
    "redis_replica_timeout_ms": _count(1, MAX_REDIS_REPLICA_TIMEOUT_MS),
}


class InvalidSetting(ConfigurationError):
    """One setting's value is wrong. ``field`` is the Settings field, ``problem`` what is
    wrong with the value (without the value), so that a command can name its own option."""

    def __init__(self, field_name: str, problem: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.problem = problem


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """cartsync's configuration. Field ``x`` comes from ``CARTSYNC_X``.

    Made only of valid values: :meth:`__post_init__` checks every field and the rules between
    them, whether the values come from the environment or from :meth:`with_overrides`.
    """

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
    http_request_timeout_s: float = _setting(
        DEFAULT_HTTP_REQUEST_TIMEOUT_S, _positive_float, "HTTP request time limit"
    )
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
    # A Slack webhook's URL is its credential.
    notify_webhook_url: str = _setting(
        DEFAULT_NOTIFY_WEBHOOK_URL, str, "dead-letter notification webhook", True
    )
    notify_interval_s: float = _setting(
        DEFAULT_NOTIFY_INTERVAL_S, _positive_float, "dead-letter notification interval"
    )
    console_base_url: str = _setting(DEFAULT_CONSOLE_BASE_URL, str, "console URL for links")
    redis_sentinel_master: str = _setting(DEFAULT_REDIS_SENTINEL_MASTER, str, "Sentinel master")
    redis_sentinel_password: str = _setting("", str, "password of the Sentinels", True)
    redis_min_replicas: int = _setting(DEFAULT_REDIS_MIN_REPLICAS, _whole, "replicas to wait for")
    redis_replica_timeout_ms: int = _setting(
        DEFAULT_REDIS_REPLICA_TIMEOUT_MS, _positive_int, "wait for replicas (ms)"
    )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = HIDDEN
            elif f.name in URL_FIELDS:
                value = hide_password(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def __post_init__(self) -> None:
        """Check every field (normalising it: ``INFO`` becomes ``info``), then the rules
        between fields; InvalidSetting names the first variable that is wrong."""
        for f in fields(self):
            value = getattr(self, f.name)
            parsed = _parse_field(f.name, f.metadata, value, _shown(f.name, f.metadata, value))
            if parsed is not value:
                object.__setattr__(self, f.name, parsed)
        for name, problem in cross_field_problems(self):
            raise InvalidSetting(name, problem, f"{env_name(name)} {problem}")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings replaced (tests, the demo, the CLI's options), checked
        as the environment's values are: InvalidSetting when one is wrong."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


#: Fields holding a URL that may carry a password (shown without it).
URL_FIELDS = frozenset({"redis_url", "sequra_url", "console_base_url"})


def _shown(name: str, metadata: Mapping[str, Any], value: Any) -> str:
    """How a value appears in a message: never a secret, nor a password inside a URL."""
    if metadata["secret"]:
        return "(hidden)"
    if name in URL_FIELDS and isinstance(value, str):
        return repr(hide_password(value))
    return repr(value)


def _parse_field(name: str, metadata: Mapping[str, Any], value: Any, shown: str) -> Any:
    try:
        parsed = metadata["parse"](value)
        check = BOUNDS.get(name)
        return parsed if check is None else check(parsed)
    except (ValueError, TypeError) as exc:
        wrong_type = f"has the wrong type ({type(value).__name__})"
        problem = str(exc) if isinstance(exc, ValueError) else wrong_type
        raise InvalidSetting(
            name, problem, f"{env_name(name)}={shown} is not valid: {problem}"
        ) from None


def cross_field_problems(settings: Settings) -> list[tuple[str, str]]:
    """(field, problem) for each rule between settings that ``settings`` breaks."""
    problems = []
    call_s = settings.connect_timeout_s + settings.read_timeout_s
    if settings.lock_ttl_s <= call_s:
        problems.append(
            (
                "lock_ttl_s",
                f"must exceed one whole call to seQura (connect + read timeout = {call_s:g}s)",
            )
        )
    if settings.retry_base_s > settings.retry_cap_s:
        problems.append(
            (
                "retry_base_s",
                f"({settings.retry_base_s:g}s) must not exceed "
                f"{env_name('retry_cap_s')} ({settings.retry_cap_s:g}s)",
            )
        )
    sentinel = is_sentinel_url(settings.redis_url)
    if sentinel and not settings.redis_sentinel_master:
        problems.append(
            (
                "redis_sentinel_master",
                "must name the master the Sentinels watch (their SENTINEL MONITOR name) when "
                f"{env_name('redis_url')} lists Sentinels (sentinel://...)",
            )
        )
    if not sentinel and (settings.redis_sentinel_master or settings.redis_sentinel_password):
        name = "redis_sentinel_master"
        if not settings.redis_sentinel_master:
            name = "redis_sentinel_password"
        problems.append(
            (name, f"is set, but {env_name('redis_url')} is not a sentinel:// URL: unset one")
        )
    return problems


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return PREFIX + field_name.upper()


def setting_names() -> list[str]:
    """Every ``CARTSYNC_*`` variable cartsync reads."""
    return [env_name(f.name) for f in fields(Settings)]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``).

    A value that does not parse, or is out of bounds, raises :class:`InvalidSetting` (a
    :class:`ConfigurationError`) naming the variable; secret values are never repeated in
    the message, nor the password of a URL.
    """
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = source.get(env_name(f.name))
        if raw is not None:
            values[f.name] = _parse_field(f.name, f.metadata, raw, _shown(f.name, f.metadata, raw))
    return Settings(**values)
