"""The ``sentinel://`` form of ``CARTSYNC_REDIS_URL``: the Sentinels that know where Redis is.

    sentinel://[user:password@]host1:26379[/db];sentinel://host2:26379;sentinel://host3

Addresses are separated by ``;``, as kombu's ``sentinel://`` transport takes them. The Redis
password and database (of the master Sentinel names, not of the Sentinels) may be written on
any one address; :func:`kombu_url` moves them to the first, where kombu reads them. The
master's name is a setting of its own (``CARTSYNC_REDIS_SENTINEL_MASTER``).

Pure parsing, shared by the settings (which refuse a bad URL naming the variable) and the
connection factory (``worker/redisconn.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

#: The scheme of a Sentinel address.
SENTINEL_SCHEME = "sentinel"
#: Port of a Sentinel whose address names none (Redis's own default for Sentinel).
DEFAULT_SENTINEL_PORT = 26379
#: What separates the Sentinels' addresses (kombu's separator for failover URLs).
SEPARATOR = ";"
#: Example shown when a URL is refused.
EXAMPLE = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379/0"


@dataclass(frozen=True)
class SentinelURL:
    """The Sentinels' addresses, and the database and credentials of the master."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    """True for a ``sentinel://`` URL (a list of Sentinel addresses)."""
    return url.strip().lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a ``sentinel://`` URL; ValueError saying what is wrong (never quoting a
    password)."""
    sentinels: list[tuple[str, int]] = []
    db: int | None = None
    username: str | None = None
    password: str | None = None
    parts = [p.strip() for p in url.split(SEPARATOR)]
    for n, part in enumerate(parts, start=1):
        where = f"address {n} of {len(parts)}"
        if not part:
            raise ValueError(f"{where} is empty: separate the Sentinels with one ';'")
        scheme, sep, _ = part.partition("://")
        if not sep or scheme.lower() != SENTINEL_SCHEME:
            raise ValueError(f"{where} is not a sentinel:// address, like {EXAMPLE}")
        split = urlsplit(part)
        try:
            port = split.port
        except ValueError:
            raise ValueError(f"{where}: the port must be a number from 1 to 65535") from None
        if not split.hostname:
            raise ValueError(f"{where} names no host, like sentinel://10.0.0.1:26379")
        if port == 0:
            raise ValueError(f"{where}: the port must be a number from 1 to 65535")
        if split.query or split.fragment:
            raise ValueError(f"{where}: a Sentinel address takes no ?query or #fragment")
        path = split.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"{where}: the database (the path) must be a number, like /0")
            if db is not None and int(path) != db:
                raise ValueError("the addresses name two different databases")
            db = int(path)
        if split.username or split.password:
            if password is not None or username is not None:
                raise ValueError("write the Redis credentials on one address only")
            username = unquote(split.username) if split.username else None
            password = unquote(split.password) if split.password is not None else None
        sentinels.append((split.hostname, port or DEFAULT_SENTINEL_PORT))
    return SentinelURL(tuple(sentinels), db or 0, username, password)


def kombu_url(parsed: SentinelURL) -> str:
    """``parsed`` as kombu's ``sentinel://`` transport reads it: the credentials and the
    database on the first address (kombu takes them from there only)."""
    first, *rest = parsed.sentinels
    credentials = ""
    if parsed.username or parsed.password:
        user = quote(parsed.username or "", safe="")
        credentials = f"{user}:{quote(parsed.password or '', safe='')}@"
    head = f"{SENTINEL_SCHEME}://{credentials}{_hostport(first)}/{parsed.db}"
    return SEPARATOR.join([head, *(f"{SENTINEL_SCHEME}://{_hostport(a)}" for a in rest)])


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
