"""Console users: who they are and which role each has.

Two sources, both optional:

- ``CARTSYNC_CONSOLE_USERS_FILE``, a TOML file, one table per user (the password is kept as a
  werkzeug.security hash; ``python -m cartsync.worker.web.console.users NAME ROLE`` prints a
  table to paste)::

      [users.alice]
      password_hash = "scrypt:32768:8:1$..."
      role = "operator"                       # viewer, operator or admin

- ``CARTSYNC_CONSOLE_TRUSTED_HEADER``: a header naming the user, set by an authenticating
  reverse proxy, and the role from ``CARTSYNC_CONSOLE_ROLE_HEADER`` or
  ``CARTSYNC_CONSOLE_DEFAULT_ROLE``. Whoever can reach cartsync without that proxy can send
  the header and be anyone: see the README's "The on-call console".

Every problem with the file is one line naming the user and the key; a hash is never repeated.
"""

from __future__ import annotations

import getpass
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from cartsync.worker.errors import ConfigurationError
from cartsync.worker.web.console.roles import Role, parse_role

#: Keys a user's table may hold.
USER_KEYS = frozenset({"password_hash", "role"})
#: User names: what an audit entry and a log line can show as they are.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
#: Compared against when the user is unknown, so that a wrong name costs as long as a wrong
#: password and the login's timing does not tell which names exist.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: Role
    password_hash: str = ""


@dataclass(frozen=True)
class Principal:
    """Who is acting in a request: a user name and a role, and how they were recognised."""

    name: str
    role: Role
    #: ``login`` (users file) or ``proxy`` (trusted header).
    via: str

    @property
    def audit_name(self) -> str:
        """How the dead-letter audit names them (the CLI names OS users)."""
        return f"console:{self.name}"


def parse_users(data: Mapping[str, object], source: str) -> dict[str, ConsoleUser]:
    """Users out of a users file's parsed TOML; ConfigurationError names the first problem."""
    unknown = sorted(set(data) - {"users"})
    if unknown:
        raise ConfigurationError(f"{source}: unknown table {unknown[0]!r} (expected [users.NAME])")
    tables = data.get("users", {})
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"{source}: 'users' must be a table of users")
    found: dict[str, ConsoleUser] = {}
    for name, table in tables.items():
        where = f"{source}: user {name!r}"
        if not NAME_PATTERN.match(name):
            raise ConfigurationError(f"{where}: names are letters, digits and ._@+- only")
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"{where} must be a table")
        extra = sorted(set(table) - USER_KEYS)
        if extra:
            raise ConfigurationError(f"{where}: unknown key {extra[0]!r}")
        password_hash = table.get("password_hash")
        if not isinstance(password_hash, str) or "$" not in password_hash:
            raise ConfigurationError(
                f"{where}: password_hash must be a werkzeug.security hash "
                "(python -m cartsync.worker.web.console.users NAME ROLE makes one)"
            )
        raw_role = table.get("role")
        role = parse_role(raw_role if isinstance(raw_role, str) else None)
        if role is None:
            raise ConfigurationError(f"{where}: role must be viewer, operator or admin")
        found[name] = ConsoleUser(name, role, password_hash)
    return found


def load_users(path: str) -> dict[str, ConsoleUser]:
    """The users of the file at ``path`` (none when ``path`` is empty)."""
    if not path:
        return {}
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(
            f"CARTSYNC_CONSOLE_USERS_FILE={path!r} cannot be read ({exc.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None
    return parse_users(data, path)


def authenticate(users: Mapping[str, ConsoleUser], name: str, password: str) -> Principal | None:
    """The user these credentials are, or None (in the same time whether or not the name is
    known)."""
    user = users.get(name)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return Principal(user.name, user.role, "login")


def from_proxy(
    user_header: str | None, role_header: str | None, default_role: str
) -> Principal | None:
    """The user an authenticating proxy named in its headers, or None when it named nobody (or
    a name the audit could not show as it is). An unknown role reads as no role: nobody."""
    if user_header is None or not NAME_PATTERN.match(user_header.strip()):
        return None
    role = parse_role(role_header if role_header else default_role)
    if role is None:
        return None
    return Principal(user_header.strip(), role, "proxy")


def user_table(name: str, role: str, password: str) -> str:
    """A users-file table for this user (the password hashed)."""
    return (
        f'[users.{name}]\npassword_hash = "{generate_password_hash(password)}"\nrole = "{role}"\n'
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m cartsync.worker.web.console.users NAME ROLE``: asks for a password and
    prints the user's table for the users file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or parse_role(args[1]) is None or not NAME_PATTERN.match(args[0]):
        print("usage: python -m cartsync.worker.web.console.users NAME viewer|operator|admin")
        return 2
    password = getpass.getpass(f"Password for {args[0]}: ")
    if password != getpass.getpass("Again: "):
        print("The passwords differ; nothing printed.", file=sys.stderr)
        return 1
    print(user_table(args[0], args[1].lower(), password), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
