"""The sandbox's HTTP side: seQura's Order Update endpoint plus admin endpoints, on loopback.

A ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive: a worker's pooled connections
each get a thread and are reused, so a benchmark through the sandbox measures cartsync. Nagle
is off so that small answers go out at once.

Endpoints (admin ones take and give JSON; merchant and order-ref go in the query string or the
body, never in the path, so that any value works):

======  ==========================================  =========================================
PUT     /merchants/{merchant}/orders/{order-ref}     the Order Update API
GET     /_admin/health                               ``{"ok": true}``
POST    /_admin/orders                               check out an order: ``merchant``,
                                                     ``order_ref``, ``order`` (carts),
                                                     ``original_total`` (both optional)
GET     /_admin/orders                               every order, summarised
GET     /_admin/order?merchant=M&order_ref=O         state, history (every accepted update, in
                                                     the order accepted) and call count
GET     /_admin/calls[?merchant=M&order_ref=O]       update calls received (per order or all)
GET     /_admin/stats                                calls, accepted updates, answers given
GET     /_admin/faults, PUT /_admin/faults           read or change faults (partial update)
POST    /_admin/scripts                              ``merchant``, ``order_ref``, ``answers``:
                                                     e.g. ``[503, 503, "timeout", "drop"]``
POST    /_admin/accounts                             add ``ref``, ``username``, ``password``
POST    /_admin/reset                                forget orders, scripts, counters, faults
======  ==========================================  =========================================
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cartsync.sandbox.admin import SandboxAdmin
from cartsync.sandbox.state import (
    Account,
    Answer,
    Faults,
    SandboxState,
    UpdateRequest,
    accounts_from,
)

#: Largest request body read, in bytes.
MAX_BODY = 10 * 1024 * 1024
#: Seconds a connection may wait for its next request (a kept-alive one between calls, a new
#: one before its first): a worker's pooled connections are reused long before.
IDLE_TIMEOUT_S = 30.0
#: Seconds a request, once its first byte has come, may pause while sending the rest (and its
#: client while reading the answer): a half-sent request is dropped then, not left holding a
#: thread.
REQUEST_TIMEOUT_S = 10.0
#: Request headers an accepted update's history entry keeps (never Authorization).
RECORDED_HEADERS = (
    "Content-Type",
    "Accept",
    "User-Agent",
    "Sequra-Merchant-Id",
    "X-Cartsync-Update-Version",
)
#: Prefix of the admin endpoints; cannot collide with ``/merchants/...``.
ADMIN = "/_admin"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of new pooled connections must not hit SYN retries

    def __init__(
        self,
        address: tuple[str, int],
        state: SandboxState,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.state = state
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.stopping = threading.Event()
        self.log: Callable[[str], None] | None = None
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self.state.count_connection()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open connection, so that no kept-alive one outlives the server."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):  # already closed by its client
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cartsync-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def handle_one_request(self) -> None:
        """Wait up to the idle time-out for a request to start, then up to the request
        time-out for each further part of it: an idle or half-sent connection is closed, and
        its thread freed, instead of being held open."""
        try:
            self.connection.settimeout(self.server.idle_timeout_s)
            started = self.rfile.peek(1)  # type: ignore[attr-defined]
            self.connection.settimeout(self.server.request_timeout_s)
        except OSError:  # the time-out, or a connection reset while idle
            started = b""
        if not started:
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        except OSError:  # a time-out part way through the request line or the headers
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines go through _log, which never shows bodies or credentials

    def _log(self, status: int | str) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.command} {self.path} -> {status}")

    # -- plumbing --------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self._send(Answer.error(411, "send a Content-Length"))
            self.close_connection = True
            return None
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._send(Answer.error(413, "body too large or Content-Length invalid"))
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, answer: Answer) -> None:
        if answer.action == "drop":
            self.close_connection = True
            self._log("dropped")
            return
        if answer.action == "hang":
            # Hold the connection (bounded, and cut short by stop()), then close it unanswered.
            self.server.stopping.wait(self.server.state.faults.hang_s)
            self.close_connection = True
            self._log("never answered")
            return
        payload = b"" if answer.body is None else json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json")
        if answer.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and answer.status != 204:
            self.wfile.write(payload)
        self._log(answer.status)

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except OSError:  # the client went away, or stalled past the request time-out
            self.close_connection = True
        except Exception:  # a sandbox bug: answer 500 and show it, rather than hang a client
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(Answer.error(500, "sandbox error"))

    # -- methods ---------------------------------------------------------------------

    def do_PUT(self) -> None:
        self._guard(self._put)

    def do_GET(self) -> None:
        self._guard(lambda: self._admin("GET"))

    def do_POST(self) -> None:
        self._guard(lambda: self._admin("POST"))

    def do_DELETE(self) -> None:
        self._guard(lambda: self._admin("DELETE"))

    def _put(self) -> None:
        received_at = time.time()
        body = self._read_body()
        if body is None:
            return
        if self.path.startswith(ADMIN + "/"):
            self._admin("PUT", body)
            return
        route = order_route(self.path)
        if route is None:
            self._send(Answer.error(404, "Not Found"))
            return
        state = self.server.state
        latency = state.faults.latency_ms
        if latency > 0:
            self.server.stopping.wait(latency / 1000.0)
        recorded = {name: value for name in RECORDED_HEADERS if (value := self.headers.get(name))}
        answer = state.handle_update(
            UpdateRequest(
                merchant=route[0],
                order_ref=route[1],
                authorization=self.headers.get("Authorization"),
                body=body,
                version=self.headers.get("X-Cartsync-Update-Version"),
                received_at=received_at,
                path=self.path,
                headers=recorded,
            )
        )
        self._send(answer)

    def _admin(self, method: str, body: bytes | None = None) -> None:
        if body is None:
            body = self._read_body()
            if body is None:
                return
        parts = urlsplit(self.path)
        if not parts.path.startswith(ADMIN + "/"):
            self._send(Answer.error(405 if parts.path.startswith("/merchants/") else 404))
            return
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            data = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            self._send(Answer.error(400, "the body is not UTF-8 JSON"))
            return
        if not isinstance(data, dict):
            self._send(Answer.error(400, "the body must be a JSON object"))
            return
        try:
            status, result = admin_call(
                self.server.state, method, parts.path[len(ADMIN) :], query, data
            )
        except (KeyError, ValueError, TypeError) as exc:
            self._send(Answer.error(400, str(exc).strip("'\"")))
            return
        self._send(Answer(status=status, body=result))


def order_route(raw_path: str) -> tuple[str, str] | None:
    """``(merchant, order_ref)`` from a raw request path, or None when it is no order URL.

    The path is split on ``/`` before unescaping, so ``A14%2F12345`` stays one order-ref. A
    query or fragment is refused (the client must have escaped ``?`` and ``#``), and so is a
    bare ``.`` or ``..`` segment, which a front server would resolve away (``%2E%2E`` is fine).
    """
    if "?" in raw_path or "#" in raw_path:
        return None
    segments = raw_path.split("/")
    if "." in segments or ".." in segments:
        return None  # a server normalising the path would resolve these away: no order URL
    if len(segments) != 5 or segments[0] or segments[1] != "merchants" or segments[3] != "orders":
        return None
    try:
        merchant = unquote(segments[2], errors="strict")
        order_ref = unquote(segments[4], errors="strict")
    except UnicodeDecodeError:
        return None
    if not merchant or not order_ref:
        return None
    return merchant, order_ref


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required (a non-empty string)")
    return value


def admin_call(
    state: SandboxState,
    method: str,
    path: str,
    query: Mapping[str, str],
    data: Mapping[str, Any],
) -> tuple[int, Any]:
    """Run one admin request; ``(status, JSON-ready result)``. ValueError means 400."""
    if method == "GET" and path == "/health":
        return 200, {"ok": True}
    if method == "POST" and path == "/orders":
        order = data.get("order")
        if order is not None and not isinstance(order, dict):
            raise ValueError("order must be an object (the order's carts)")
        original = data.get("original_total")
        if original is not None and (isinstance(original, bool) or not isinstance(original, int)):
            raise ValueError("original_total must be an integer")
        created = state.create_order(
            _text(data, "merchant"), _text(data, "order_ref"), order, original
        )
        return 201, created
    if method == "GET" and path == "/orders":
        return 200, {"orders": state.orders()}
    if method == "GET" and path == "/order":
        found = state.order(_text(query, "merchant"), _text(query, "order_ref"))
        if found is None:
            return 404, {"errors": ["no such order"]}
        return 200, found
    if method == "GET" and path == "/calls":
        if "merchant" in query or "order_ref" in query:
            return 200, {"calls": state.calls(_text(query, "merchant"), _text(query, "order_ref"))}
        return 200, {"calls": state.calls()}
    if method == "GET" and path == "/stats":
        return 200, state.stats()
    if method == "GET" and path == "/faults":
        return 200, state.faults.as_dict()
    if method == "PUT" and path == "/faults":
        return 200, state.set_faults(data).as_dict()
    if method == "POST" and path == "/scripts":
        answers = data.get("answers")
        if not isinstance(answers, list):
            raise ValueError('answers must be a list, e.g. [503, 503, "timeout"]')
        queued = state.script(_text(data, "merchant"), _text(data, "order_ref"), answers)
        return 200, {"queued": queued}
    if method == "POST" and path == "/accounts":
        state.add_account(
            Account(_text(data, "ref"), _text(data, "username"), _text(data, "password"))
        )
        return 200, {"refs": state.account_refs()}
    if method == "POST" and path == "/reset":
        state.reset()
        return 200, {"ok": True}
    return 404, {"errors": [f"no admin endpoint {method} {ADMIN}{path}"]}


class SandboxServer:
    """The sandbox, run in a background thread of this process (tests, the demo, benchmarks).

    >>> with SandboxServer(accounts={"shop": ("shop", "secret")}, auto_create=True) as sandbox:
    ...     sandbox.url  # doctest: +SKIP
    'http://127.0.0.1:53211'
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts: Mapping[str, tuple[str, str]] | Iterable[Any] | None = None,
        *,
        auto_create: bool = False,
        faults: Faults | None = None,
        seed: int | None = None,
        log: Callable[[str], None] | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """``accounts``: ``{ref: (username, password)}`` or MerchantAccount-like objects;
        none at all means any credentials are accepted. The time-outs: :data:`IDLE_TIMEOUT_S`,
        :data:`REQUEST_TIMEOUT_S`."""
        self.state = SandboxState(
            accounts_from(accounts), auto_create=auto_create, faults=faults, seed=seed
        )
        self._server = _Server((host, port), self.state, idle_timeout_s, request_timeout_s)
        self._server.log = log
        self._thread: threading.Thread | None = None
        self._admin: SandboxAdmin | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def admin(self) -> SandboxAdmin:
        """An admin client for this server (over HTTP, as another process would use it)."""
        if self._admin is None:
            self._admin = SandboxAdmin(self.url)
        return self._admin

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sandbox:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` is called from another (the CLI)."""
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving, wake every held answer and cut every open connection."""
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
