"""Helpers shared by the CLI's commands: reading JSON, settings with overrides, Redis timeout.

Every command that reads JSON from a person (``validate``, ``enqueue``, ``dlq edit``,
``dlq import``) reads it through the one JSON codec (``tasks/codec.py``), which the HTTP API,
the Python API's validation and the worker use too, so that they all agree on every input:
UTF-8, a leading byte order mark accepted and dropped (editors on Windows write one),
standard JSON only (no ``NaN`` or ``Infinity``, which seQura would refuse), integers within
signed 64 bits, the codec's limits on size and nesting. Whatever the codec refuses is one
line (:class:`UnreadableJson`) naming the path and the rule, never a traceback.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import click

from cartsync.config.settings import InvalidSetting, Settings, env_name, load_settings
from cartsync.tasks import codec
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.errors import ConfigurationError, InvalidUpdate, UnreadableBody

#: Seconds a command waits for Redis before calling it unreachable. A person is waiting, and
#: a bulk command's round trips carry hundreds of letters. (The producer and the status and
#: metrics reads keep their own, shorter, timeouts: tasks/producer.py and worker/health.py.)
REDIS_TIMEOUT_S = 10.0

#: Problems one line names at most; it says how many more there are.
SHOWN_PROBLEMS = 3
#: What a line says of a file whose JSON breaks one of the codec's rules.
REFUSED = "is not JSON cartsync accepts:"


class UnreadableJson(ValueError):
    """A file or text holds no JSON the commands accept; the message says why, in one line."""


def loads_json(
    data: str | bytes,
    *,
    max_bytes: int = codec.MAX_BODY_BYTES,
    max_depth: int = codec.MAX_DEPTH,
) -> Any:
    """The JSON value in ``data``, read by the codec; UnreadableJson (a ValueError) when there
    is none. The message is one line: where the text stops being JSON (``Expecting value at
    line 1 column 9``: the place, never the content), or each path the codec refuses and why
    (``order.note: Not a finite number: ...``).
    """
    try:
        return codec.decode(data, max_bytes=max_bytes, max_depth=max_depth)
    except UnreadableBody as exc:
        raise UnreadableJson(_what(exc).removeprefix(f"{codec.NOT_JSON}: ")) from None
    except InvalidUpdate as exc:
        raise UnreadableJson(_each_path(exc)) from None


def read_json(source: str) -> Any:
    """The JSON in file ``source`` (``-`` for standard input), by the rule of :func:`loads_json`.

    Raises UnreadableJson with one line naming the source when there is no JSON to read
    (unreadable, too large, not UTF-8, not JSON), and InvalidUpdate, naming each path, for
    JSON that breaks one of the codec's rules: that is an invalid body, as ``validate`` and
    ``enqueue`` report one (exit 1), not an unreadable file.
    """
    name = "standard input" if source == "-" else source
    limit = codec.MAX_BODY_BYTES
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(limit + 1)
        else:
            with open(source, "rb") as handle:
                raw = handle.read(limit + 1)
    except OSError as exc:
        raise UnreadableJson(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise UnreadableJson(
            f"{name} {REFUSED} {ROOT}: more than {limit} bytes; at most {limit} are accepted"
        )
    try:
        return codec.decode(raw)
    except UnreadableBody as exc:
        what = _what(exc)  # "Not JSON: Expecting value at ..." or "Not UTF-8 text (byte 3)"
        raise UnreadableJson(f"{name} is {what[:1].lower()}{what[1:]}") from None


def _what(exc: InvalidUpdate) -> str:
    """The one message of an unreadable body, without its final full stop."""
    return " ".join(m for messages in exc.errors.values() for m in messages).removesuffix(".")


def _each_path(exc: InvalidUpdate) -> str:
    """``path: message`` for the first few problems, and how many more there are."""
    lines = exc.lines()
    shown = "; ".join(line.removesuffix(".") for line in lines[:SHOWN_PROBLEMS])
    more = len(lines) - SHOWN_PROBLEMS
    return f"{shown}; and {more} more" if more > 0 else shown


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
