"""Helpers shared by the CLI's commands: reading JSON, settings with overrides, Redis timeout.

Every command that reads JSON from a person (``validate``, ``enqueue``, ``dlq edit``,
``dlq import``) reads it by the same rule, :func:`loads_json`: UTF-8, a leading byte order
mark accepted and dropped (editors on Windows write one), standard JSON only (no ``NaN`` or
``Infinity``, which seQura would refuse), and a nesting too deep to parse reported, not
raised as a RecursionError.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, NoReturn

import click

from cartsync.config.settings import InvalidSetting, Settings, env_name, load_settings
from cartsync.worker.errors import ConfigurationError

#: Seconds a command waits for Redis before calling it unreachable. A person is waiting, and
#: a bulk command's round trips carry hundreds of letters. (The producer and the status and
#: metrics reads keep their own, shorter, timeouts: tasks/producer.py and worker/health.py.)
REDIS_TIMEOUT_S = 10.0

#: The byte order mark some editors put at the start of a UTF-8 file.
BOM = "\ufeff"


class UnreadableJson(ValueError):
    """A file or text holds no JSON the commands accept; the message says why, in one line."""


def loads_json(text: str) -> Any:
    """The JSON value in ``text``; UnreadableJson (a ValueError) when there is none."""
    try:
        return json.loads(text.removeprefix(BOM), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        # json names the line and column, never the content.
        raise UnreadableJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise UnreadableJson(str(exc)) from None
    except RecursionError:
        raise UnreadableJson("it nests too deeply to be an Order Update body") from None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def read_json(source: str) -> Any:
    """The JSON in file ``source`` (``-`` for standard input), by the rule of :func:`loads_json`.

    Raises UnreadableJson with one line naming the source: unreadable, not UTF-8, not JSON.
    """
    name = "standard input" if source == "-" else source
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as handle:
                raw = handle.read()
    except OSError as exc:
        raise UnreadableJson(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableJson(f"{name} is not UTF-8 text") from None
    try:
        return loads_json(text)
    except UnreadableJson as exc:
        raise UnreadableJson(f"{name} is not JSON: {exc}") from None


def read_json_body(source: str) -> Any:
    """:func:`read_json` for a command's FILE argument: a usage error (exit 2) otherwise."""
    try:
        return read_json(source)
    except UnreadableJson as exc:
        raise click.UsageError(str(exc)) from None


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the environment with the non-None ``overrides`` (the command's options,
    by field name); a bad value exits 2 with one line naming the option or the variable.

    A variable that an option overrides is not read, so a wrong one in the environment does
    not stop a command told better on its command line.
    """
    changes = {k: v for k, v in overrides.items() if v is not None}
    skipped = {env_name(name) for name in changes}
    try:
        settings = load_settings({k: v for k, v in os.environ.items() if k not in skipped})
    except ConfigurationError as exc:
        raise BadSetting(str(exc)) from None
    try:
        return settings.with_overrides(**changes) if changes else settings
    except InvalidSetting as exc:
        if exc.field not in changes or _from_environment(exc.field):
            raise BadSetting(str(exc)) from None  # names the variable(s)
        option = "'--" + exc.field.replace("_", "-") + "'"
        raise click.BadParameter(exc.problem, param_hint=option) from None
    except ConfigurationError as exc:
        raise BadSetting(str(exc)) from None


class BadSetting(click.ClickException):
    """A wrong ``CARTSYNC_*`` variable: ``Error:`` and the one line naming it, exit 2 (not a
    usage error: the command line was fine, so no usage text)."""

    exit_code = 2


def log_to_stderr(settings: Settings) -> None:
    """Send the current command's log to standard error (its standard output is its result),
    warnings only unless CARTSYNC_LOG_LEVEL is set; the set-up it replaced comes back when
    the command ends."""
    from cartsync.config.logging import LiveStderr, configure_logging

    if env_name("log_level") not in os.environ:
        settings = settings.with_overrides(log_level="warning")
    restore = configure_logging(settings, stream=LiveStderr(), cache=False)
    click.get_current_context().call_on_close(restore)


def _from_environment(field_name: str) -> bool:
    """Whether the current command's option for ``field_name`` took its value from the
    environment variable it reads (``envvar``), not from the command line."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(field_name) if ctx is not None else None
    return source is click.core.ParameterSource.ENVIRONMENT


class FiniteFloat(click.FloatRange):
    """A float range that also refuses NaN and infinity, which FloatRange lets through."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
