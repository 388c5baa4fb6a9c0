"""``cartsync enqueue FILE|-``: validate one update and queue it; prints the update id.

Standard output carries the update id and nothing else (``ID=$(cartsync enqueue f)``):
warnings, refusals and the log (warnings only, unless ``CARTSYNC_LOG_LEVEL`` is set) go to
standard error.

``--lines`` takes JSON Lines instead, one body a line, many bodies for one process, and prints
one JSON result a line (:func:`line_result`): a bad line never stops the others.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

import click

from cartsync.tasks import codec
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
@click.option(
    "--lines",
    is_flag=True,
    help="FILE holds JSON Lines, one body a line; print one JSON result a line.",
)
@click.option("--redis-url", envvar="CARTSYNC_REDIS_URL", default=None, help="Redis URL.")
def enqueue(
    source: str, version: int | None, update_id: str | None, lines: bool, redis_url: str | None
) -> None:
    """Validate the API body in FILE (or standard input) and queue it for delivery.

    Exit status: 0 queued (or already queued), 1 invalid body or unknown merchant (with
    --lines: at least one line), 2 unreadable input or Redis unreachable.
    """
    from cartsync.tasks.producer import Producer

    settings = settings_from_env(redis_url=redis_url)
    log_to_stderr(settings)
    if lines:
        if version is not None or update_id is not None:
            raise click.UsageError("--version and --update-id name one update: not with --lines")
        enqueue_lines(source, Producer(settings))
        return
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


def enqueue_lines(source: str, producer: Any) -> None:
    """Enqueue each line of ``source``; one result line each. Stops, exit 2, when Redis goes
    away: the lines after the one named were not enqueued, the ones before were."""
    refused = 0
    try:
        stream: BinaryIO = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise click.UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        for number, raw in numbered_lines(stream):
            try:
                receipt = producer.enqueue(codec.decode(raw))
            except InvalidUpdate as exc:
                refused += 1
                click.echo(line_result(number, errors=exc.errors))
                continue
            except ConfigurationError as exc:
                refused += 1
                click.echo(line_result(number, errors={"order.merchant.id": [str(exc)]}))
                continue
            except BrokerUnavailable as exc:
                click.echo(f"cartsync: line {number}: {exc}; later lines were not read", err=True)
                raise SystemExit(2) from None
            click.echo(
                line_result(
                    number,
                    update_id=receipt.update_id,
                    version=receipt.version,
                    status=receipt.status,
                )
            )
    if refused:
        raise SystemExit(1)


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each non-blank line, none read past the codec's body limit."""
    number = 0
    while raw := stream.readline(codec.MAX_BODY_BYTES + 1):
        number += 1
        if len(raw) > codec.MAX_BODY_BYTES and not raw.endswith(b"\n"):
            # The rest of an over-long line is skipped, so the next line is read whole.
            while (more := stream.readline(codec.MAX_BODY_BYTES)) and not more.endswith(b"\n"):
                pass
        if raw.strip():
            yield number, raw


def line_result(number: int, **fields: Any) -> str:
    """One line of ``--lines`` output: ``{"line": N, "update_id", "version", "status"}`` for
    an accepted body, ``{"line": N, "errors": {path: [messages]}}`` for a refused one."""
    return json.dumps({"line": number, **fields}, ensure_ascii=False, sort_keys=False)
