"""``cartsync enqueue FILE|-``: validate one update and queue it; prints the update id.

Standard output carries the update id and nothing else (``ID=$(cartsync enqueue f)``):
warnings, refusals and the log (warnings only, unless ``CARTSYNC_LOG_LEVEL`` is set) go to
standard error.
"""

from __future__ import annotations

import click

from cartsync.tasks.message import MAX_VERSION
from cartsync.worker.cli.common import log_to_stderr, read_json_body, settings_from_env
from cartsync.worker.errors import BrokerUnavailable, ConfigurationError, InvalidUpdate


@click.command()
@click.argument("source", metavar="FILE|-")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1, max=MAX_VERSION),
    default=None,
    help=f"The update's version (your row version, say), 1 to {MAX_VERSION}; "
    "default: the next one.",
)
@click.option(
    "--update-id", default=None, help="Idempotency key: enqueueing the same id again does nothing."
)
@click.option("--redis-url", envvar="CARTSYNC_REDIS_URL", default=None, help="Redis URL.")
def enqueue(source: str, version: int | None, update_id: str | None, redis_url: str | None) -> None:
    """Validate the API body in FILE (or standard input) and queue it for delivery.

    Exit status: 0 queued (or already queued), 1 invalid body or unknown merchant,
    2 unreadable input or Redis unreachable.
    """
    from cartsync.tasks.producer import Producer

    settings = settings_from_env(redis_url=redis_url)
    log_to_stderr(settings)
    try:
        body = read_json_body(source)
        receipt = Producer(settings).enqueue(body, version=version, update_id=update_id)
    except InvalidUpdate as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        raise SystemExit(1) from None
    except BrokerUnavailable as exc:
        click.echo(f"cartsync: {exc}", err=True)
        raise SystemExit(2) from None
    except ConfigurationError as exc:
        click.echo(f"cartsync: {exc}", err=True)
        raise SystemExit(1) from None
    for path, messages in sorted(receipt.warnings.items()):
        for message in messages:
            click.echo(f"warning: {path}: {message}", err=True)
    if receipt.status == "superseded":
        click.echo(
            f"cartsync: order {receipt.order_ref} already has version {receipt.version}, "
            "newer than this one: nothing enqueued",
            err=True,
        )
    elif receipt.status == "duplicate":
        click.echo(
            f"cartsync: update {receipt.update_id} was enqueued before: nothing to do", err=True
        )
    click.echo(receipt.update_id)
