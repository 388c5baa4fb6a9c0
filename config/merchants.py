"""Merchant accounts: who cartsync sends as, and which contract options each merchant has.

Two set-ups, never both at once (an ambiguous configuration is refused rather than guessed):

- **one merchant**: ``CARTSYNC_SEQURA_USERNAME`` / ``CARTSYNC_SEQURA_PASSWORD`` apply to whatever
  merchant-ref the payload carries; ``CARTSYNC_CONTRACT_OPTIONS`` (comma-separated) holds its
  contract options;
- **several merchants**: ``CARTSYNC_MERCHANTS_FILE`` names a TOML file, one table per
  merchant-ref (see ``config/merchants.example.toml``)::

      [merchants.camisasonline]
      username = "camisasonline"
      password_env = "CAMISAS_PASSWORD"     # or: password = "..."
      options = ["multistore", "shipment_ref"]

  ``password_env`` names an environment variable, so that the file itself holds no secret.

Every problem is one line naming the merchant and the key; a password is never repeated.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cartsync.config.settings import Settings, env_name
from cartsync.config.tomlfile import TableFile
from cartsync.worker.errors import ConfigurationError, UnknownMerchant

# Contract options: which parts of the payload a merchant may (or must) send. They are kept
# with the accounts that carry them; what each one means for the payload is in
# tasks/schemas/options.py, and docs/SEQURA_API.md sums them up.
MULTISTORE = "multistore"
SHIPMENT_REF = "shipment_ref"
GARAGE = "garage"
SERVICES = "services"
TRAVEL = "travel"

#: Every contract option cartsync knows.
CONTRACT_OPTIONS = frozenset({MULTISTORE, SHIPMENT_REF, GARAGE, SERVICES, TRAVEL})

#: Options that bring others with them (seQura: garages "are also multistore").
IMPLIED = {GARAGE: frozenset({MULTISTORE})}

#: Keys a merchant's table in the accounts file may hold.
MERCHANT_KEYS = frozenset({"username", "password", "password_env", "options"})
#: The accounts file: a ``[merchants.REF]`` table per merchant.
MERCHANTS_FILE = TableFile("merchants", "merchant", "merchant-ref", "REF", MERCHANT_KEYS)

NOT_CONFIGURED = (
    "no seQura credentials configured: set CARTSYNC_SEQURA_USERNAME/PASSWORD "
    "or CARTSYNC_MERCHANTS_FILE"
)


@dataclass(frozen=True)
class MerchantAccount:
    """A merchant's seQura API user. The password never shows in a repr."""

    ref: str
    username: str
    password: str = field(repr=False)
    options: frozenset[str] = frozenset()


class MerchantDirectory:
    """Looks up the account to send a merchant's updates with."""

    def __init__(
        self,
        accounts: Iterable[MerchantAccount] = (),
        *,
        single: MerchantAccount | None = None,
    ) -> None:
        """``single`` is the one-merchant account (its ``ref`` is ignored); else ``accounts``."""
        self._accounts = {account.ref: account for account in accounts}
        self._single = single
        if single is not None and self._accounts:
            raise ValueError("a directory is either single-merchant or holds accounts")

    @property
    def single(self) -> bool:
        """True when one set of credentials serves whatever merchant-ref a payload carries."""
        return self._single is not None

    @property
    def configured(self) -> bool:
        return self._single is not None or bool(self._accounts)

    def get(self, merchant_ref: str) -> MerchantAccount:
        """The account for ``merchant_ref``; UnknownMerchant when the file has none for it."""
        if self._single is not None:
            return MerchantAccount(
                ref=merchant_ref,
                username=self._single.username,
                password=self._single.password,
                options=self._single.options,
            )
        if not self._accounts:
            raise ConfigurationError(NOT_CONFIGURED)
        try:
            return self._accounts[merchant_ref]
        except KeyError:
            raise UnknownMerchant(merchant_ref) from None

    def refs(self) -> list[str]:
        """The merchant-refs configured by file (none in single-merchant mode: any goes)."""
        return sorted(self._accounts)

    def __repr__(self) -> str:
        if self._single is not None:
            return f"MerchantDirectory(single=True, options={sorted(self._single.options)})"
        return f"MerchantDirectory(refs={self.refs()})"


def load_merchants(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> MerchantDirectory:
    """The merchant accounts ``settings`` describe. ``environ`` serves ``password_env``."""
    user_vars = f"{env_name('sequra_username')}/{env_name('sequra_password')}"
    single_set = bool(settings.sequra_username or settings.sequra_password)
    if settings.merchants_file and single_set:
        raise ConfigurationError(
            f"both {env_name('merchants_file')} and {user_vars} are set: use one of them"
        )
    if settings.merchants_file:
        if settings.contract_options.strip():
            raise ConfigurationError(
                f"{env_name('contract_options')} applies to the single-merchant set-up only; "
                f"give contract options per merchant in {env_name('merchants_file')}"
            )
        accounts = load_merchants_file(settings.merchants_file, environ)
        return MerchantDirectory(accounts.values())
    if single_set:
        if not settings.sequra_username:
            raise ConfigurationError(
                f"{env_name('sequra_username')} is empty but {env_name('sequra_password')} is set"
            )
        if not settings.sequra_password:
            raise ConfigurationError(
                f"{env_name('sequra_password')} is empty but {env_name('sequra_username')} is set"
            )
        options = parse_options(
            settings.contract_options.split(","), where=env_name("contract_options")
        )
        return MerchantDirectory(
            single=MerchantAccount(
                ref="",
                username=settings.sequra_username,
                password=settings.sequra_password,
                options=options,
            )
        )
    return MerchantDirectory()


def load_merchants_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> dict[str, MerchantAccount]:
    """Read an accounts file: merchant-ref -> account. ConfigurationError names the problem."""
    source = os.environ if environ is None else environ
    return parse_merchants(MERCHANTS_FILE.load(path), source, where=MERCHANTS_FILE.where(path))


def parse_merchants(
    document: Mapping[str, Any], environ: Mapping[str, str], where: str = "merchants file"
) -> dict[str, MerchantAccount]:
    """Accounts from a parsed accounts document (see the module docstring for its shape)."""
    return {
        ref: _account(ref, entry, environ, label)
        for ref, entry, label in MERCHANTS_FILE.entries(document, where)
    }


def _account(
    ref: str, entry: Mapping[str, Any], environ: Mapping[str, str], label: str
) -> MerchantAccount:
    username = entry.get("username")
    if not isinstance(username, str) or not username:
        raise ConfigurationError(f"{label}: username is missing")
    password = _password(entry, environ, label)
    options_raw = entry.get("options", [])
    if not isinstance(options_raw, list) or not all(isinstance(o, str) for o in options_raw):
        raise ConfigurationError(f"{label}: options must be a list of strings")
    options = parse_options(options_raw, where=label)
    return MerchantAccount(ref=ref, username=username, password=password, options=options)


def _password(entry: Mapping[str, Any], environ: Mapping[str, str], label: str) -> str:
    if "password" in entry and "password_env" in entry:
        raise ConfigurationError(f"{label}: give password or password_env, not both")
    if "password_env" in entry:
        variable = entry["password_env"]
        if not isinstance(variable, str) or not variable:
            raise ConfigurationError(f"{label}: password_env must name an environment variable")
        value = environ.get(variable, "")
        if not value:
            raise ConfigurationError(
                f"{label}: missing password (environment variable {variable} is not set)"
            )
        return value
    password = entry.get("password")
    if password is None:
        raise ConfigurationError(f"{label}: missing password (set password_env or password)")
    if not isinstance(password, str) or not password:
        raise ConfigurationError(f"{label}: missing password (password must be a non-empty string)")
    return password


def parse_options(raw: Iterable[str], where: str) -> frozenset[str]:
    """Contract options as an operator writes them (any case, blanks ignored); an unknown one
    is a ConfigurationError that starts with ``where``."""
    return _known(frozenset(item.strip().lower() for item in raw if item.strip()), where)


def normalize(options: Collection[str]) -> frozenset[str]:
    """The options in effect: names checked, implied options added.

    Raises ConfigurationError naming the first unknown option.
    """
    effective = set(_known(frozenset(options)))
    for option in options:
        effective |= IMPLIED.get(option, frozenset())
    return frozenset(effective)


def _known(options: frozenset[str], where: str | None = None) -> frozenset[str]:
    unknown = sorted(options - CONTRACT_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"{where + ': ' if where else ''}unknown contract option {unknown[0]!r} "
            f"(known: {', '.join(sorted(CONTRACT_OPTIONS))})"
        )
    return options
