"""Accounts files: TOML with one table per entry, ``[SECTION.NAME]``.

The merchants file (``config/merchants.py``) and the producers file (``config/producers.py``)
share this shape. :class:`TableFile` reads such a file and checks what every one of them needs
(one top-level table, at least one entry, each entry a table with a name and only known keys);
what an entry's keys mean is its module's business. Every problem is a ConfigurationError of
one line that starts with where it is; a value from the file is never repeated.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cartsync.worker.errors import ConfigurationError


@dataclass(frozen=True)
class TableFile:
    """One kind of accounts file, e.g. ``TableFile("merchants", "merchant", "merchant-ref",
    "REF", keys)`` for ``[merchants.REF]`` tables."""

    #: The top-level table that holds the entries (``merchants``).
    section: str
    #: What one entry is, in messages (``merchant``).
    noun: str
    #: What names an entry, in messages (``merchant-ref``).
    name: str
    #: The name's placeholder in ``[section.PLACEHOLDER]`` hints (``REF``).
    placeholder: str
    #: Keys an entry may hold.
    keys: Collection[str]

    def load(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The TOML document at ``path``; ConfigurationError when it cannot be read or parsed."""
        shown = self.where(path)
        try:
            with Path(path).open("rb") as handle:
                return tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigurationError(f"{shown} does not exist") from None
        except IsADirectoryError:
            raise ConfigurationError(f"{shown} is a directory") from None
        except OSError as exc:
            raise ConfigurationError(f"{shown} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{shown} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            # tomllib says where ("at line 3, column 9"), never what the line holds.
            raise ConfigurationError(f"{shown} is not valid TOML: {exc}") from None

    def where(self, path: str | os.PathLike[str]) -> str:
        """How messages name the file at ``path`` (``merchants file accounts.toml``)."""
        return f"{self.section} file {path}"

    def entries(
        self, document: Mapping[str, Any], where: str
    ) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Each entry of a parsed document, in order: (name, its table, its label for messages).

        An entry is checked as it is reached (name, table, known keys), so that the first
        problem of the file is the one reported, whether here or in the caller's own checks.
        """
        extra = sorted(set(document) - {self.section})
        if extra:
            raise ConfigurationError(
                f"{where}: unknown top-level key {extra[0]!r} "
                f"(expected [{self.section}.{self.placeholder}])"
            )
        tables = document.get(self.section)
        if not isinstance(tables, dict) or not tables:
            raise ConfigurationError(
                f"{where}: no {self.section} "
                f"(add a [{self.section}.{self.placeholder}] table per {self.noun})"
            )
        for name, entry in tables.items():
            label = f"{where}: {self.noun} {name!r}"
            if not name.strip():
                raise ConfigurationError(f"{where}: a {self.name} is empty")
            if not isinstance(entry, dict):
                raise ConfigurationError(f"{label} must be a table ([{self.section}.{name}])")
            unknown = sorted(set(entry) - set(self.keys))
            if unknown:
                raise ConfigurationError(
                    f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(self.keys))})"
                )
            yield name, entry, label
