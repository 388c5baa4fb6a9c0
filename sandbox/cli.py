"""``cartsync sandbox``: run the local seQura stand-in until interrupted."""

from __future__ import annotations

import ipaddress
import signal
import sys
from types import FrameType

import click

from cartsync.config.merchants import load_merchants_file
from cartsync.sandbox.server import ADMIN, SandboxServer
from cartsync.sandbox.state import ACCEPT_STATUSES, Account, Faults, parse_account
from cartsync.worker.errors import ConfigurationError

#: Port the sandbox listens on unless told otherwise (0 picks a free one).
DEFAULT_PORT = 8765

_rate = click.FloatRange(0.0, 1.0)


def _accounts(merchants_file: str | None, specs: tuple[str, ...]) -> list[Account]:
    accounts: list[Account] = []
    if merchants_file:
        try:
            loaded = load_merchants_file(merchants_file)
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--merchants") from None
        accounts.extend(Account(a.ref, a.username, a.password) for a in loaded.values())
    for spec in specs:
        try:
            accounts.append(parse_account(spec))
        except ValueError as exc:
            # The value may hold a password: name the option, not the value.
            raise click.BadParameter(str(exc), param_hint="--account") from None
    return accounts


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning for a sandbox listening beyond this machine, or None on loopback."""
    if is_loopback(host):
        return None
    return (
        f"cartsync sandbox: warning: listening on {host or 'every interface'}, reachable from "
        f"other machines, and its admin endpoints ({ADMIN}/...) are unauthenticated: anyone "
        "who reaches this port can read every order, add accounts and inject faults"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--merchants",
    "merchants_file",
    type=click.Path(dir_okay=False),
    help="Merchant accounts file (the format of CARTSYNC_MERCHANTS_FILE).",
)
@click.option(
    "--account",
    "account_specs",
    multiple=True,
    metavar="REF:USER:PASSWORD",
    help="A merchant account; repeat for more. With none, any credentials pass.",
)
@click.option("--auto-create", is_flag=True, help="Create unknown orders on their first update.")
@click.option(
    "--status",
    type=click.Choice([str(s) for s in ACCEPT_STATUSES]),
    default="200",
    show_default=True,
    help="Answer to an accepted update.",
)
@click.option("--fail-rate", type=_rate, default=0.0, help="Share of calls answered 500/502/503.")
@click.option("--timeout-rate", type=_rate, default=0.0, help="Share of calls never answered.")
@click.option(
    "--drop-rate",
    type=_rate,
    default=0.0,
    help="Share of calls whose connection is closed unanswered.",
)
@click.option("--rate-limit-rate", type=_rate, default=0.0, help="Share of calls answered 429.")
@click.option(
    "--retry-after",
    default="2",
    show_default=True,
    help="Retry-After of a 429: seconds or an HTTP date.",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0.0),
    default=0.0,
    help="Delay added to every update call.",
)
@click.option(
    "--hang-s",
    type=click.FloatRange(min=0.0, min_open=True, max=300.0),
    default=30.0,
    show_default=True,
    help="How long a never-answered call holds its connection.",
)
@click.option("--seed", type=int, default=None, help="Seed for the fault dice (repeatable runs).")
@click.option("--verbose", "-v", is_flag=True, help="Print one line per request on stderr.")
def sandbox(
    port: int,
    host: str,
    merchants_file: str | None,
    account_specs: tuple[str, ...],
    auto_create: bool,
    status: str,
    fail_rate: float,
    timeout_rate: float,
    drop_rate: float,
    rate_limit_rate: float,
    retry_after: str,
    latency_ms: float,
    hang_s: float,
    seed: int | None,
    verbose: bool,
) -> None:
    """Run a local stand-in for seQura's Order Update API, with fault injection.

    Admin endpoints under /_admin create orders, show their history and change faults at
    run time (see sandbox/server.py).
    """
    accounts = _accounts(merchants_file, account_specs)
    try:
        faults = Faults(
            status=int(status),
            fail_rate=fail_rate,
            rate_limit_rate=rate_limit_rate,
            retry_after=retry_after,
            timeout_rate=timeout_rate,
            drop_rate=drop_rate,
            latency_ms=latency_ms,
            hang_s=hang_s,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    log = (lambda line: click.echo(line, err=True)) if verbose else None
    try:
        server = SandboxServer(
            host, port, accounts, auto_create=auto_create, faults=faults, seed=seed, log=log
        )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    signal.signal(signal.SIGTERM, _interrupt)
    warning = exposure_warning(host)
    if warning is not None:
        click.echo(warning, err=True)
    who = f"{len(accounts)} account(s)" if accounts else "any credentials"
    click.echo(
        f"sandbox listening on {server.url} ({who}, auto-create {'on' if auto_create else 'off'})"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
