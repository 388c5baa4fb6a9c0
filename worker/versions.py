"""What cartsync runs on: its version and those of the parts an incident report needs.

``cartsync --version`` prints them, ``cartsync status`` adds the Redis server's, and the
metrics endpoint exposes them as ``cartsync_build_info``.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

#: Distribution name -> the name shown for it. redis-py is named so, to tell it from the server.
COMPONENTS = {"cartsync": "cartsync", "celery": "celery", "kombu": "kombu", "redis": "redis-py"}

#: Shown for a distribution that is not installed (a broken environment still reports).
NOT_INSTALLED = "not installed"


def versions() -> dict[str, str]:
    """Shown name -> version of cartsync, celery, kombu, redis-py and Python."""
    found: dict[str, str] = {}
    for distribution, shown in COMPONENTS.items():
        try:
            found[shown] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[shown] = NOT_INSTALLED
    found["Python"] = platform.python_version()
    return found


def version_lines() -> list[str]:
    """One ``name version`` line per component, cartsync first."""
    return [f"{name} {version}" for name, version in versions().items()]


def redis_server_version(client: Any) -> str:
    """The version a Redis server reports (``INFO server``); raises redis.RedisError."""
    return str(client.info("server").get("redis_version", "unknown"))
