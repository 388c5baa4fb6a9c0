"""``cartsync metrics``: serve Prometheus metrics for the whole deployment on one port."""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import click

from cartsync.worker.cli.common import settings_from_env

#: Interface the endpoint listens on by default: every one, as exporters do, so that a
#: Prometheus on another machine can scrape it. The metrics hold counts only, no order data.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104  (see above)
#: Seconds a connection may stay silent before or within its request, or stall reading the
#: answer: a scraper sends its request at once, and a half-sent one must not hold a thread.
REQUEST_TIMEOUT_S = 10.0


class _Handler(WSGIRequestHandler):
    """One scrape per connection, each socket operation under a time-out, and no line logged
    per request."""

    timeout = REQUEST_TIMEOUT_S

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # timed out or reset half way: nothing to answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_metrics_server(
    host: str, port: int, registry: Any, *, request_timeout_s: float = REQUEST_TIMEOUT_S
) -> tuple[Any, threading.Thread]:
    """Serve ``registry`` at ``http://host:port/metrics`` in a daemon thread, as
    prometheus_client's ``start_http_server`` does, but dropping idle and half-sent
    connections after ``request_timeout_s``. OSError when it cannot listen."""
    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family
        request_queue_size = 128  # not socketserver's 5: a burst must not wait for SYN retries

    class Handler(_Handler):
        timeout = request_timeout_s

    server = make_server(
        str(address[0]), port, make_wsgi_app(registry), Server, handler_class=Handler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread


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
    from cartsync.config.logging import configure_logging
    from cartsync.worker.health import redis_client
    from cartsync.worker.metrics import registry_for

    settings = settings_from_env(redis_url=redis_url)
    click.get_current_context().call_on_close(configure_logging(settings))
    chosen = port if port is not None else settings.metrics_port
    client = redis_client(settings)
    registry = registry_for(client, settings)
    try:
        server, thread = start_metrics_server(host, chosen, registry)
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
