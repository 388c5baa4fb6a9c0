"""Helpers shared by the CLI's commands: reading a JSON body, settings with overrides."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cartsync.config.settings import Settings, load_settings
from cartsync.worker.errors import ConfigurationError


def read_json_body(source: str) -> Any:
    """The JSON in file ``source`` (``-`` for standard input); a usage error (exit 2) otherwise."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise click.UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise click.UsageError(f"{source} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(
            f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the environment with the non-None ``overrides``; bad values exit 2."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_overrides(**changes) if changes else settings
