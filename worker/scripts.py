"""The Lua scripts, one ``.lua`` file each in ``worker/lua``, registered with a client.

Every change that must happen all at once (the ledger's accept and claim, the schedule's
moves, the dead-letter store's park and remove) is a Lua script. Each file starts with a
comment listing its KEYS and ARGV; the Python method that runs it passes them by name.

Redis runs each script on its own, with nothing to import, so functions several scripts need
(comparing versions) live once in a library file, ``worker/lua/_NAME.lua``, and a script's
line ``-- #include NAME`` is replaced by that file's text when the script is read.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import redis
from redis.commands.core import Script

#: The package holding the ``.lua`` files (shipped as package data).
SCRIPTS_PACKAGE = "cartsync.worker.lua"


#: A script's line naming a library file to copy in.
INCLUDE = re.compile(r"^-- #include (\w+)$", re.MULTILINE)
#: What a library file's name starts with: it is no script of its own.
LIBRARY_PREFIX = "_"


@functools.cache
def source(name: str) -> str:
    """The text of ``worker/lua/{name}.lua`` with its libraries copied in, read once per
    process."""
    return INCLUDE.sub(lambda line: _read(LIBRARY_PREFIX + line.group(1)).rstrip("\n"), _read(name))


def _read(name: str) -> str:
    return (resources.files(SCRIPTS_PACKAGE) / f"{name}.lua").read_text(encoding="utf-8")


def load(client: redis.Redis, name: str) -> Script:
    """The script ``name`` registered with ``client``: calling it runs EVALSHA, and loads the
    script first when Redis does not know it (after a restart, say)."""
    return client.register_script(source(name))
