"""The HTTP app factory: the only place the service is built (``cartsync serve`` calls it).

Routes: seQura's drop-in ``PUT`` (``worker/web/sequra_api.py``), the native API
(``worker/web/native_api.py``), ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json``.

Access logs are one ``http_request`` event per request: the route's template (never the raw
path or query), status, duration and what the handler noted (merchant, order-ref, update id,
outcome). Never a header, never a body.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import redis
from flask import Flask, Response, g, request
from flask_smorest import Api, Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from cartsync.config.logging import get_logger
from cartsync.config.merchants import MerchantDirectory, load_merchants
from cartsync.config.producers import ProducerDirectory, load_producers
from cartsync.config.settings import Settings, load_settings
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.errors import ConfigurationError
from cartsync.worker.redisconn import connect
from cartsync.worker.web import bodies
from cartsync.worker.web.answers import native_error, sequra_error
from cartsync.worker.web.context import EXTENSION, Services, notes, start_clock
from cartsync.worker.web.intake import LATE, REDIS_DOWN, Intake
from cartsync.worker.web.lookup import Lookup
from cartsync.worker.web.metrics import HttpMetrics, registry_for
from cartsync.worker.web.native_api import blp as native_blp
from cartsync.worker.web.schemas import AnyErrors, Health
from cartsync.worker.web.sequra_api import blp as sequra_blp

log = get_logger("cartsync.web")

#: Seconds to wait for a connection to Redis before answering 503, at most.
REDIS_CONNECT_TIMEOUT_S = 1.0
#: Share of the request time limit one Redis wait (connecting, or an answer) may take: a
#: command is tried twice at most (a pooled connection Redis closed), so connecting and
#: answering, twice, stay within the limit.
REDIS_WAIT_SHARE = 0.25
#: Seconds the metrics' own Redis client waits: counting must never hold up answers.
METRICS_REDIS_TIMEOUT_S = 0.5
#: The document's version of this API.
API_VERSION = "1"


class ServiceApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with this service's error shape as every operation's default answer."""

    ERROR_SCHEMA = AnyErrors


ops = Blueprint("ops", __name__, description="Liveness, readiness, metrics.")


@ops.route("/healthz", methods=["GET"])
@ops.response(200, Health, description="The process answers.")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


@ops.route("/readyz", methods=["GET"])
@ops.response(200, Health, description="Redis answers: updates can be accepted.")
@ops.alt_response(503, schema=Health, description="Redis does not answer.")
def readyz() -> Any:
    from cartsync.worker.web.context import services

    try:
        services().client.ping()
    except (redis.RedisError, *REDIS_DOWN):
        return Response(
            '{"status": "redis unavailable"}',
            503,
            mimetype="application/json",
            headers={"Retry-After": "5"},
        )
    return {"status": "ready"}


@ops.route("/metrics", methods=["GET"])
@ops.doc(
    responses={
        "200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
)
def metrics() -> Response:
    from cartsync.worker.web.context import services

    try:
        services().metrics.flush()  # this process's latest counts too
        text = generate_latest(registry_for(services().metrics))
    except (redis.RedisError, *REDIS_DOWN):
        return native_error(503, {ROOT: ["Redis does not answer."]})
    return Response(text, 200, mimetype=CONTENT_TYPE_LATEST)


def redis_for(settings: Settings, timeout_s: float) -> redis.Redis:
    """A client that gives up quickly: each wait at most ``timeout_s``, one quick retry (a
    pooled connection Redis closed), then the error, which the caller answers with 503."""
    return connect(
        settings,
        socket_connect_timeout=min(REDIS_CONNECT_TIMEOUT_S, timeout_s),
        socket_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
    )


def redis_wait_s(request_timeout_s: float) -> float:
    """Seconds one Redis wait may take within a request's time limit."""
    return request_timeout_s * REDIS_WAIT_SHARE


def create_app(
    settings: Settings | None = None,
    *,
    merchants: MerchantDirectory | None = None,
    producers: ProducerDirectory | None = None,
    batch_max: int = bodies.DEFAULT_BATCH_MAX,
) -> Flask:
    """The HTTP app. Reads settings, merchant accounts and producers when not given.

    Raises ConfigurationError when no merchant account is configured (nobody could send).
    """
    settings = settings or load_settings()
    merchants = merchants or load_merchants(settings)
    if not merchants.configured:
        raise ConfigurationError(
            "cartsync serve needs merchant accounts: set CARTSYNC_SEQURA_USERNAME/PASSWORD "
            "or CARTSYNC_MERCHANTS_FILE"
        )
    producers = producers if producers is not None else load_producers(settings)
    client = redis_for(settings, redis_wait_s(settings.http_request_timeout_s))
    found = Services(
        settings=settings,
        client=client,
        merchants=merchants,
        producers=producers,
        intake=Intake(client, settings, merchants),
        lookup=Lookup(client, settings.key_prefix),
        metrics=HttpMetrics(
            redis_for(settings, METRICS_REDIS_TIMEOUT_S), settings.key_prefix
        ),
        batch_max=batch_max,
    )
    app = Flask("cartsync.web")
    app.config.update(
        API_TITLE="cartsync",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        # The stream is read up to each route's own limit; this bounds everything else.
        MAX_CONTENT_LENGTH=bodies.BATCH_MAX_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION] = found
    api = ServiceApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Queue seQura Order Updates: seQura's own call, drop-in, "
                "and a native API with idempotency, batches and status lookups."
            }
        },
    )
    api.spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(sequra_blp)
    api.register_blueprint(native_blp)
    api.register_blueprint(ops)
    from cartsync.worker.web.console import install_console

    install_console(app, settings, client, merchants)  # the on-call console, when configured
    _install_hooks(app, found)
    return app


def _install_hooks(app: Flask, found: Services) -> None:
    @app.before_request
    def start() -> None:
        limit_s = found.settings.http_request_timeout_s
        start_clock(limit_s)
        # A client that stops sending its body must not hold a thread: under gunicorn, the
        # body is read from the connection as the handler asks for it (gthread makes the
        # socket blocking again for the next request on it).
        connection = request.environ.get("gunicorn.socket")
        if isinstance(connection, socket.socket):
            connection.settimeout(limit_s)

    @app.after_request
    def finish(response: Response) -> Response:
        started = g.get("cartsync_started", time.perf_counter())
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        note = notes()
        log.info(
            "http_request",
            url=f"{request.method} {rule}",
            status=response.status_code,
            duration_ms=duration_ms,
            **note.log_fields(),
        )
        method, status, enqueue_s = request.method, response.status_code, list(note.enqueue_s)
        # Counted once the answer has gone out, so a slow Redis never delays it.
        response.call_on_close(lambda: found.metrics.observe(rule, method, status, enqueue_s))
        return response

    def sequra_path() -> bool:
        return request.path.startswith("/merchants/")

    def late() -> Response:
        # The client's body did not come within the limit (werkzeug reports the socket's
        # timeout as a disconnection): nothing was read whole, so nothing was enqueued.
        notes().outcome = "late"
        headers = {"Connection": "close"}
        if sequra_path():
            return sequra_error(503, LATE, **headers)
        return native_error(503, {ROOT: [LATE]}, **headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if isinstance(exc.__context__, TimeoutError):
            return late()
        code = exc.code or 500
        text = exc.description or exc.name
        if code == 413:
            text = "The request is too large."
        if sequra_path():
            return sequra_error(code, text)
        return native_error(code, {ROOT: [text]})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        if isinstance(exc, TimeoutError):
            return late()
        log.error("http_error", exception=type(exc).__name__)
        if isinstance(exc, (*REDIS_DOWN, redis.RedisError)):
            text = "Redis does not answer; retry later."
            return sequra_error(503, text) if sequra_path() else native_error(503, {ROOT: [text]})
        text = "Internal error; nothing was enqueued unless a 202 was answered before."
        return sequra_error(500, text) if sequra_path() else native_error(500, {ROOT: [text]})
