"""Producers of the HTTP API: who may send updates over ``POST /v1/updates``, and for whom.

``CARTSYNC_PRODUCERS_FILE`` names a TOML file, one table per producer (see
``config/producers.example.toml``)::

    [producers.shop-backend]
    token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    merchants = ["camisasonline", "zapatos"]      # or ["*"]: every merchant

A producer sends ``Authorization: Bearer TOKEN``; the file holds only the SHA-256 of each
token (hex). A token is 32 random bytes (:func:`new_token`), so its hash cannot be reversed
by guessing: a slow password hash (bcrypt, argon2) protects guessable passwords, and would
cost tens of milliseconds of CPU on every request without protecting a random token any
better. The file therefore holds no secret and can live in version control.

Every problem is one line naming the producer and the key; a token is never repeated.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cartsync.config.settings import Settings
from cartsync.config.tomlfile import TableFile
from cartsync.worker.errors import ConfigurationError

#: Keys a producer's table may hold.
PRODUCER_KEYS = frozenset({"token_sha256", "merchants"})
#: The producers file: a ``[producers.NAME]`` table per producer.
PRODUCERS_FILE = TableFile("producers", "producer", "producer name", "NAME", PRODUCER_KEYS)
#: In a producer's ``merchants``: every merchant.
ANY_MERCHANT = "*"
#: Random bytes in a token :func:`new_token` makes (256 bits).
TOKEN_BYTES = 32

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def token_hash(token: str) -> str:
    """The SHA-256 of a bearer token, as the producers file holds it (lowercase hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh bearer token and its hash: (token to hand the producer, hash for the file)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


@dataclass(frozen=True)
class ProducerAccount:
    """One producer: its name, its token's hash, and the merchants it may send for."""

    name: str
    token_sha256: str
    merchants: frozenset[str]

    def may_send_for(self, merchant: str) -> bool:
        return ANY_MERCHANT in self.merchants or merchant in self.merchants


class ProducerDirectory:
    """Finds the producer a bearer token belongs to."""

    def __init__(self, accounts: Iterable[ProducerAccount] = ()) -> None:
        self._accounts = tuple(accounts)

    @property
    def configured(self) -> bool:
        return bool(self._accounts)

    def authenticate(self, token: str) -> ProducerAccount | None:
        """The producer whose token this is, or None. Compares every hash in constant time."""
        given = token_hash(token)
        found = None
        for account in self._accounts:
            if hmac.compare_digest(account.token_sha256, given):
                found = account
        return found

    def names(self) -> list[str]:
        return sorted(account.name for account in self._accounts)

    def __repr__(self) -> str:
        return f"ProducerDirectory(names={self.names()})"


def load_producers(settings: Settings) -> ProducerDirectory:
    """The producers ``settings`` name; an empty directory (nobody may send) when none."""
    if not settings.producers_file:
        return ProducerDirectory()
    return ProducerDirectory(load_producers_file(settings.producers_file).values())


def load_producers_file(path: str | os.PathLike[str]) -> dict[str, ProducerAccount]:
    """Read a producers file: name -> account. ConfigurationError names the problem."""
    return parse_producers(PRODUCERS_FILE.load(path), where=PRODUCERS_FILE.where(path))


def parse_producers(
    document: Mapping[str, Any], where: str = "producers file"
) -> dict[str, ProducerAccount]:
    """Accounts from a parsed producers document (see the module docstring for its shape)."""
    accounts = {
        name: _account(name, entry, label)
        for name, entry, label in PRODUCERS_FILE.entries(document, where)
    }
    hashes = [account.token_sha256 for account in accounts.values()]
    if len(set(hashes)) != len(hashes):
        raise ConfigurationError(f"{where}: two producers share one token")
    return accounts


def _account(name: str, entry: Mapping[str, Any], label: str) -> ProducerAccount:
    digest = entry.get("token_sha256")
    if not isinstance(digest, str) or not _HEX_SHA256.match(digest.lower()):
        raise ConfigurationError(
            f"{label}: token_sha256 must be the 64 hex digits of the token's SHA-256"
        )
    merchants = entry.get("merchants")
    if (
        not isinstance(merchants, list)
        or not merchants
        or not all(isinstance(m, str) and m for m in merchants)
    ):
        raise ConfigurationError(
            f'{label}: merchants must be a non-empty list of merchant-refs (or ["*"])'
        )
    return ProducerAccount(name, digest.lower(), frozenset(merchants))
