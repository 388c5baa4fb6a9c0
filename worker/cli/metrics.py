"""``cartsync metrics``: serve Prometheus metrics for the whole deployment on one port."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from cartsync.worker.cli.common import settings_from_env

#: Interface the endpoint listens on by default: every one, as exporters do, so that a
#: Prometheus on another machine can scrape it. The metrics hold counts only, no order data.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104  (see above)


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: CARTSYNC_METRICS_PORT, 9808).",
)
@click.option("--redis-url", envvar="CARTSYNC_REDIS_URL", default=None, help="Redis URL.")
def metrics(host: str, port: int | None, redis_url: str | None) -> None:
    """Serve Prometheus metrics at http://HOST:PORT/metrics until stopped.

    Run one per deployment: every worker counts into Redis, and this endpoint reads those
    counts and the live queue, retry and dead-letter numbers at each scrape.
    """
    from prometheus_client import start_http_server

    from cartsync.worker.health import redis_client
    from cartsync.worker.metrics import registry_for

    settings = settings_from_env(redis_url=redis_url)
    chosen = port if port is not None else settings.metrics_port
    client = redis_client(settings)
    registry = registry_for(client, settings)
    try:
        server, thread = start_http_server(chosen, addr=host, registry=registry)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{chosen}: {exc.strerror or exc}") from None
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving metrics on http://{shown}:{server.server_port}/metrics", err=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        client.close()
