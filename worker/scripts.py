"""The Lua scripts, one ``.lua`` file each in ``worker/lua``, registered with a client.

Every change that must happen all at once (the ledger's accept and claim, the schedule's
moves, the dead-letter store's park and remove) is a Lua script. Each file starts with a
comment listing its KEYS and ARGV; the Python method that runs it passes them by name.
"""

from __future__ import annotations

import functools
from importlib import resources

import redis
from redis.commands.core import Script

#: The package holding the ``.lua`` files (shipped as package data).
SCRIPTS_PACKAGE = "cartsync.worker.lua"


@functools.cache
def source(name: str) -> str:
    """The text of ``worker/lua/{name}.lua``, read once per process."""
    return (resources.files(SCRIPTS_PACKAGE) / f"{name}.lua").read_text(encoding="utf-8")


def load(client: redis.Redis, name: str) -> Script:
    """The script ``name`` registered with ``client``: calling it runs EVALSHA, and loads the
    script first when Redis does not know it (after a restart, say)."""
    return client.register_script(source(name))
