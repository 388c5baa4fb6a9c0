"""Count the Redis round trips a process makes, by what each one carried.

redis-py sends every command, and every pipeline, with one ``send_packed_command`` call on a
connection (kombu's Redis transport goes through redis-py too, its BRPOP included). Wrapping
that method counts round trips exactly, in the process that makes them, and reading the
packed bytes back says what went: the command names, the first key, and for ``EVALSHA`` the
name of cartsync's script (``worker/lua``). A round trip is then named by its commands in
order (``MULTI``/``EXEC`` kept, so that a transaction shows), e.g.
``MULTI HGETALL:cartsync:metrics:updates ... EXEC``.

:func:`install` patches redis-py in the calling process; :func:`counts` is a snapshot.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from importlib import resources
from typing import Any

from redis import connection as redis_connection

from cartsync.worker import scripts

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_installed = False


def script_names() -> dict[str, str]:
    """sha1 of each of cartsync's scripts (as registered, libraries copied in) -> its name."""
    names = {}
    for entry in resources.files(scripts.SCRIPTS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".lua") and not name.startswith(scripts.LIBRARY_PREFIX):
            stem = name[: -len(".lua")]
            names[hashlib.sha1(scripts.source(stem).encode()).hexdigest()] = stem  # noqa: S324
    return names


def key_kind(key: str) -> str:
    """A key without what names one order or update: ``cartsync:order:shop:A-1`` ->
    ``cartsync:order``; kombu's keys (``unacked``, the queue's list) stay as they are."""
    if key.startswith("_kombu.binding."):
        return "_kombu.binding"
    return ":".join(key.split(":")[:2])


def parse_packed(data: bytes, shas: dict[str, str]) -> list[str]:
    """The commands in RESP-packed bytes, each as ``NAME`` or ``NAME:key-kind``
    (``EVALSHA:script``)."""
    out: list[str] = []
    pos = 0
    size = len(data)
    while pos < size and data[pos : pos + 1] == b"*":
        end = data.index(b"\r\n", pos)
        count = int(data[pos + 1 : end])
        pos = end + 2
        args: list[bytes] = []
        for _ in range(count):
            end = data.index(b"\r\n", pos)
            length = int(data[pos + 1 : end])
            start = end + 2
            if len(args) < 4:
                args.append(data[start : start + length])
            pos = start + length + 2
        out.append(describe([a.decode("utf-8", "replace") for a in args], shas))
    return out


def describe(args: list[str], shas: dict[str, str]) -> str:
    """``NAME`` plus what it works on: the script of an EVALSHA/EVAL, else the first key."""
    name = args[0].upper() if args else "?"
    if name == "EVALSHA" and len(args) > 1:
        return f"EVALSHA:{shas.get(args[1], args[1][:8])}"
    if name == "EVAL":
        return "EVAL"
    if name in {"MULTI", "EXEC", "PING", "INFO", "CLIENT", "SCRIPT", "CONFIG", "WAIT"}:
        return name
    return f"{name}:{key_kind(args[1])}" if len(args) > 1 else name


def install() -> None:
    """Count every round trip this process makes from now on (idempotent)."""
    global _installed
    if _installed:
        return
    shas = script_names()
    original: Any = redis_connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> Any:
        data = command.encode() if isinstance(command, str) else b"".join(bytes(c) for c in command)
        try:
            label = " ".join(parse_packed(data, shas)) or "?"
        except (ValueError, IndexError):
            label = "?"
        with _lock:
            _counts[label] += 1
        return original(self, command, check_health)

    redis_connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    _installed = True


def counts() -> dict[str, int]:
    """Round trips so far, by what they carried."""
    with _lock:
        return dict(_counts)
