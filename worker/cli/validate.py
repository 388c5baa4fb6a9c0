"""``cartsync validate FILE``: check an Order Update body without sending or enqueueing it.

Exit status: 0 valid (warnings do not change it), 1 invalid, 2 when the command cannot judge
(FILE unreadable or not JSON, an unknown contract option, a broken configuration). Errors go
to standard output, one ``path: message`` line each; warnings to standard error, each line
starting ``warning: ``. No traceback for any user mistake.

Contract options: ``--options`` when given; otherwise the merchant's entry in the merchant
accounts configuration (``--merchant``, else the body's ``order.merchant.id``); when no
merchant accounts are configured at all, ``CARTSYNC_CONTRACT_OPTIONS``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import click

from cartsync.config.merchants import load_merchants, parse_options
from cartsync.config.settings import Settings, env_name, load_settings
from cartsync.tasks.producer import with_platform_defaults
from cartsync.tasks.validation import CONTRACT_OPTIONS, validate_update
from cartsync.worker.cli.common import UnreadableJson, read_json
from cartsync.worker.errors import ConfigurationError, InvalidUpdate, path_sort_key

#: Exit status when the body is invalid.
EXIT_INVALID = 1
#: Exit status when the command cannot judge the body (unreadable, not JSON, bad option).
EXIT_UNUSABLE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_UNUSABLE)


def _read(file: str) -> Any:
    """The JSON in ``file`` (``-``: standard input); exit 2 with one line if there is none."""
    try:
        return read_json(file)
    except UnreadableJson as exc:
        _fail(str(exc))


def _merchant_ref(body: Any) -> str | None:
    order = body.get("order") if isinstance(body, Mapping) else None
    merchant = order.get("merchant") if isinstance(order, Mapping) else None
    ref = merchant.get("id") if isinstance(merchant, Mapping) else None
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        return None
    return str(ref)


def _configured_options(settings: Settings, merchant: str | None, body: Any) -> frozenset[str]:
    """The contract options the merchant accounts configuration gives this body's merchant."""
    directory = load_merchants(settings)
    if not directory.configured:
        return parse_options(settings.contract_options.split(","), env_name("contract_options"))
    ref = merchant if merchant is not None else _merchant_ref(body)
    if ref is None:
        # No merchant to look up: order.merchant.id will be reported missing anyway.
        return frozenset()
    return directory.get(ref).options


def _lines(messages: Mapping[str, list[str]]) -> list[str]:
    return [f"{path}: {m}" for path in sorted(messages, key=path_sort_key) for m in messages[path]]


@click.command()
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help='Print {"errors": {...}, "warnings": {...}}.')
@click.option(
    "--options",
    "options_raw",
    metavar="OPTION,...",
    help=f"Contract options, overriding the merchant's ({', '.join(sorted(CONTRACT_OPTIONS))}).",
)
@click.option("--merchant", help="Merchant-ref whose options to use (default: order.merchant.id).")
@click.option(
    "--strict/--no-strict",
    default=None,
    help=f"Reject keys the reference does not list (default: {env_name('strict')}).",
)
def validate(
    file: str, as_json: bool, options_raw: str | None, merchant: str | None, strict: bool | None
) -> None:
    """Check the Order Update body in FILE (- for standard input): {"order": {...}}."""
    try:
        given = None if options_raw is None else parse_options(options_raw.split(","), "--options")
    except ConfigurationError as exc:
        _fail(str(exc))
    try:
        body = _read(file)
        settings = load_settings()
        options = given if given is not None else _configured_options(settings, merchant, body)
        strict_mode = settings.strict if strict is None else strict
        # Checked as enqueue would send it: `platform` filled from the settings where absent,
        # so that validate and enqueue agree on every body.
        filled = with_platform_defaults(body, settings)
        validated = validate_update(filled, options=options, strict=strict_mode)
    except ConfigurationError as exc:
        _fail(str(exc))
    except InvalidUpdate as exc:
        _report(exc.errors, exc.warnings, as_json)
        raise click.exceptions.Exit(EXIT_INVALID) from None
    _report({}, validated.warnings, as_json)
    if not as_json:
        click.echo(f"valid ({_summary(validated.body, options, strict_mode)})")


def _report(
    errors: Mapping[str, list[str]],
    warnings: Mapping[str, list[str]],
    as_json: bool,
) -> None:
    if as_json:
        ordered_errors = {path: errors[path] for path in sorted(errors, key=path_sort_key)}
        ordered_warnings = {path: warnings[path] for path in sorted(warnings, key=path_sort_key)}
        document = {"errors": ordered_errors, "warnings": ordered_warnings}
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    for line in _lines(warnings):
        click.echo(f"warning: {line}", err=True)
    for line in _lines(errors):
        click.echo(line)


def _summary(body: Mapping[str, Any], options: frozenset[str], strict: bool) -> str:
    order = body["order"]
    items = len(order["unshipped_cart"]["items"]) + len(order["shipped_cart"]["items"])
    shown = ",".join(sorted(options)) or "none"
    mode = ", strict" if strict else ""
    return f"{items} item(s), contract options: {shown}{mode}"
