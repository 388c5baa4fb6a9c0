"""``cartsync serve``: the HTTP ingestion service under gunicorn.

One process per core (validation is CPU work, and a process holds Python's lock), a few
threads each (they mostly wait on Redis: one round trip per request). gunicorn's ``gthread``
workers rather than ``sync`` ones: they keep a client's connection alive between requests (a
shop's backend with a connection pool pays no TCP handshake per update) and a slow client
holds one thread, not a whole process. The app is built in each worker process after the
fork (``cartsync.worker.web.app.create_app``), so no Redis connection crosses a fork.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import click

from cartsync.worker.cli.common import settings_from_env

#: Interface to listen on: every one, so that shops' servers and a load balancer reach it.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104  (see above)
#: Port to listen on (``$PORT`` on Heroku-like platforms, see the Procfile).
DEFAULT_PORT = 8080
#: Threads per worker process: requests mostly wait on Redis.
DEFAULT_THREADS = 8
#: Seconds without a heartbeat before gunicorn restarts a worker process; also how long a
#: stopping worker may finish its requests. At least twice the request time limit
#: (``CARTSYNC_HTTP_REQUEST_TIMEOUT_S``, which bounds each request itself: with gthread, the
#: heartbeat comes from the process's main loop, not from the request threads).
DEFAULT_TIMEOUT_S = 30
#: Seconds an idle kept-alive connection stays open.
KEEPALIVE_S = 5
#: Longest request line and most headers accepted (gunicorn's own limits, stated here).
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELDS = 100


def default_workers() -> int:
    """One worker process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def gunicorn_options(
    host: str, port: int, workers: int, threads: int, timeout_s: int
) -> dict[str, Any]:
    """gunicorn's settings for the service."""
    shown = f"[{host}]" if ":" in host else host
    return {
        "bind": [f"{shown}:{port}"],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout_s,
        "graceful_timeout": timeout_s,
        "keepalive": KEEPALIVE_S,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        # The app writes one access event per request, without payloads or credentials.
        "accesslog": None,
        "errorlog": "-",
        "proc_name": "cartsync-serve",
    }


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: one per core).",
)
@click.option("--threads", type=click.IntRange(1, 256), default=DEFAULT_THREADS, show_default=True)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.IntRange(1, 3600),
    default=None,
    help=f"Seconds before a silent worker is restarted (default {DEFAULT_TIMEOUT_S}, or twice "
    "CARTSYNC_HTTP_REQUEST_TIMEOUT_S when that is more).",
)
@click.option(
    "--batch-max",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Updates per batch request at most (default 500).",
)
@click.option(
    "--new-token",
    metavar="NAME",
    default=None,
    help="Print a new bearer token for producer NAME and its producers-file table, and exit.",
)
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int,
    timeout_s: int | None,
    batch_max: int | None,
    new_token: str | None,
) -> None:
    """Serve the HTTP API: seQura's PUT drop-in, /v1/updates, lookups, /openapi.json."""
    from cartsync.config.producers import new_token as make_token

    if new_token is not None:
        if not new_token.strip():
            raise click.BadParameter("a producer needs a name", param_hint="'--new-token'")
        token, digest = make_token()
        click.echo(f"token (give it to the producer; it is not stored): {token}", err=True)
        # A JSON string is a TOML basic string too: any name comes out quoted and escaped.
        name = json.dumps(new_token)
        click.echo(f'[producers.{name}]\ntoken_sha256 = "{digest}"\nmerchants = ["*"]')
        return

    from gunicorn.app.base import BaseApplication

    from cartsync.config.logging import configure_logging
    from cartsync.config.merchants import load_merchants
    from cartsync.config.producers import load_producers
    from cartsync.worker.errors import ConfigurationError
    from cartsync.worker.web import bodies
    from cartsync.worker.web.app import create_app

    settings = settings_from_env()
    try:  # refuse a bad configuration here, once, not in every worker
        if not load_merchants(settings).configured:
            raise ConfigurationError(
                "no merchant accounts: set CARTSYNC_SEQURA_USERNAME/PASSWORD or "
                "CARTSYNC_MERCHANTS_FILE"
            )
        if not load_producers(settings).configured:
            click.echo(
                "cartsync serve: no CARTSYNC_PRODUCERS_FILE: the native API refuses every "
                "token; seQura's PUT works with merchant credentials",
                err=True,
            )
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(settings)
    if timeout_s is None:
        timeout_s = max(DEFAULT_TIMEOUT_S, math.ceil(2 * settings.http_request_timeout_s))
    options = gunicorn_options(host, port, workers or default_workers(), threads, timeout_s)
    most = batch_max or bodies.DEFAULT_BATCH_MAX

    class Service(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return create_app(settings, batch_max=most)

    Service().run()
