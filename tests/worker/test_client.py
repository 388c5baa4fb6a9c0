"""The seQura client against the local sandbox over loopback: URLs, headers, outcomes, secrets."""

from __future__ import annotations

import base64
import logging
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cartsync.config.merchants import MerchantAccount
from cartsync.config.settings import load_settings
from cartsync.sandbox.state import ACCESS_DENIED, NO_ACCESS, Account
from cartsync.worker.client import (
    SequraClient,
    check_base_url,
    encode_body,
    order_url,
    path_segment,
)
from cartsync.worker.errors import ConfigurationError
from cartsync.worker.outcomes import Kind
from tests.sandbox_fixtures import CAMISAS, TEST_READ_TIMEOUT_S, ZAPATOS, order_body

REF = "A14/12345"


@pytest.fixture
def order(sandbox):
    """Order A14/12345 of camisasonline, checked out for 100.00 EUR."""
    sandbox.state.create_order(CAMISAS.ref, REF, order_body(10000)["order"])
    return REF


@pytest.mark.parametrize("status", [200, 202, 204])
def test_accepted_update_is_delivered(sandbox, sequra_client, order, status):
    """200, 202 and 204 are delivered, and the body becomes the order's state at seQura."""
    sandbox.state.set_faults({"status": status})
    body = order_body(6000, unshipped=(4000,))
    outcome = sequra_client.update_order(CAMISAS, order, body)
    assert (outcome.kind, outcome.status) == (Kind.DELIVERED, status)
    assert sandbox.state.order(CAMISAS.ref, order)["state"] == body["order"]
    assert outcome.latency_ms > 0


def test_cart_that_does_not_add_up_is_a_conflict_with_sequra_text(sequra_client, order):
    """A 409 comes back as a conflict carrying seQura's text, word for word."""
    body = order_body(6000, 4000)
    body["order"]["shipped_cart"]["order_total_with_tax"] = 10042
    outcome = sequra_client.update_order(CAMISAS, order, body)
    assert (outcome.kind, outcome.status) == (Kind.CONFLICT, 409)
    assert outcome.errors == [
        "Invalid data: In shipped_cart, items' total_with_tax add up to 10000 (6000+4000) "
        "but order_total_with_tax is 10042. The diff is 42."
    ]


def test_unknown_order_is_rejected(sequra_client):
    """A 404 (order unknown to seQura) is rejected, not retried."""
    outcome = sequra_client.update_order(CAMISAS, "never-checked-out", order_body(100))
    assert (outcome.kind, outcome.status) == (Kind.REJECTED, 404)


def test_wrong_password_is_unauthorized(sandbox, sandbox_settings, order):
    """A wrong password gives 401 Access denied, classified unauthorized."""
    wrong = MerchantAccount(CAMISAS.ref, CAMISAS.username, "not-the-password")
    with SequraClient(sandbox_settings) as client:
        outcome = client.update_order(wrong, order, order_body(10000))
    assert (outcome.kind, outcome.status, outcome.errors) == (
        Kind.UNAUTHORIZED,
        401,
        [ACCESS_DENIED],
    )


def test_another_merchants_credentials_are_unauthorized(sandbox_settings, order):
    """Valid credentials of another merchant give 403, classified unauthorized."""
    borrowed = MerchantAccount(CAMISAS.ref, ZAPATOS.username, ZAPATOS.password)
    with SequraClient(sandbox_settings) as client:
        outcome = client.update_order(borrowed, order, order_body(10000))
    assert (outcome.kind, outcome.status, outcome.errors) == (Kind.UNAUTHORIZED, 403, [NO_ACCESS])


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(sandbox, sequra_client, order, status):
    """5xx answers are retryable and leave the order untouched."""
    sandbox.state.script(CAMISAS.ref, order, [status])
    outcome = sequra_client.update_order(CAMISAS, order, order_body(9000))
    assert (outcome.kind, outcome.status) == (Kind.RETRYABLE, status)
    assert sandbox.state.order(CAMISAS.ref, order)["history"] == []


def test_rate_limit_is_retryable_with_its_retry_after(sandbox, sequra_client, order):
    """429 is retryable and carries the Retry-After delay the server gave."""
    sandbox.state.set_faults({"retry_after": "7"})
    sandbox.state.script(CAMISAS.ref, order, [429])
    outcome = sequra_client.update_order(CAMISAS, order, order_body(9000))
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == (Kind.RETRYABLE, 429, 7.0)


def test_answer_that_never_comes_is_a_retryable_timeout(sandbox, sequra_client, order):
    """When seQura does not answer within the read time-out, the outcome is a retryable
    ReadTimeout and the call took about the time-out, not the sandbox's hang."""
    sandbox.state.script(CAMISAS.ref, order, ["timeout"])
    started = time.perf_counter()
    outcome = sequra_client.update_order(CAMISAS, order, order_body(9000))
    elapsed = time.perf_counter() - started
    assert (outcome.kind, outcome.status, outcome.exception) == (
        Kind.RETRYABLE,
        None,
        "ReadTimeout",
    )
    assert TEST_READ_TIMEOUT_S <= elapsed < TEST_READ_TIMEOUT_S + 1.5


def test_dropped_connection_is_retryable(sandbox, sequra_client, order):
    """A connection closed without an answer is a retryable ConnectionError."""
    sandbox.state.script(CAMISAS.ref, order, ["drop"])
    outcome = sequra_client.update_order(CAMISAS, order, order_body(9000))
    assert (outcome.kind, outcome.exception) == (Kind.RETRYABLE, "ConnectionError")


def test_client_recovers_after_a_dropped_connection(sandbox, sequra_client, order):
    """After a dropped connection the next call opens a fresh one and is delivered."""
    sandbox.state.script(CAMISAS.ref, order, ["drop"])
    assert sequra_client.update_order(CAMISAS, order, order_body(9000)).kind is Kind.RETRYABLE
    assert sequra_client.update_order(CAMISAS, order, order_body(9000)).kind is Kind.DELIVERED


def test_refused_connection_is_retryable():
    """Nobody listening on the port: retryable, never an exception out of the client."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings({}).with_overrides(sequra_url=f"http://127.0.0.1:{port}")
    with SequraClient(settings) as client:
        outcome = client.update_order(CAMISAS, REF, order_body(100))
    assert outcome.kind is Kind.RETRYABLE
    assert outcome.exception == "ConnectionError"


@pytest.mark.parametrize(
    "order_ref",
    [REF, "../x", "..", ".", "a?b=c", "d#e", "with space", "ñandú-€-日本", "100%", "a+b&c;d"],
)
def test_order_ref_stays_inside_its_path_segment(sandbox, sequra_client, order_ref):
    """Slashes, dots, ?, #, spaces, percent signs and non-ASCII reach seQura as the same
    order-ref: nothing climbs out of the segment or starts a query."""
    sandbox.state.create_order(CAMISAS.ref, order_ref, order_body(100)["order"])
    outcome = sequra_client.update_order(CAMISAS, order_ref, order_body(100))
    assert outcome.kind is Kind.DELIVERED, outcome
    assert len(sandbox.state.order(CAMISAS.ref, order_ref)["history"]) == 1


def test_slash_is_sent_as_percent_2f(sandbox, sequra_client, order):
    """A14/12345 goes on the wire as A14%2F12345, as seQura's documentation shows."""
    sequra_client.update_order(CAMISAS, order, order_body(10000))
    [entry] = sandbox.state.order(CAMISAS.ref, order)["history"]
    assert entry["path"] == "/merchants/camisasonline/orders/A14%2F12345"


def test_merchant_ref_is_escaped_too(sandbox, sequra_client):
    """The merchant-ref segment is escaped like the order-ref."""
    odd = MerchantAccount("tienda/es ñ", "tienda-api", "tienda-pw", frozenset())
    sandbox.state.add_account(_sandbox_account(odd))
    sandbox.state.create_order(odd.ref, "1", order_body(100)["order"])
    outcome = sequra_client.update_order(odd, "1", order_body(100))
    assert outcome.kind is Kind.DELIVERED
    [entry] = sandbox.state.order(odd.ref, "1")["history"]
    assert entry["path"].startswith("/merchants/tienda%2Fes%20%C3%B1/orders/")


def test_dot_segments_are_escaped_in_urls():
    """``.`` and ``..`` become %2E segments; elsewhere dots are left alone."""
    assert path_segment("..") == "%2E%2E"
    assert path_segment(".") == "%2E"
    assert path_segment("../x") == "..%2Fx"
    assert order_url("https://h", "m", "a.b") == "https://h/merchants/m/orders/a.b"


def test_headers_and_basic_auth_as_sequra_receives_them(sandbox, sequra_client, order):
    """seQura sees Basic auth for the merchant's user, the merchant id, JSON content types
    and a User-Agent naming cartsync and its version."""
    sequra_client.update_order(CAMISAS, order, order_body(10000))
    [entry] = sandbox.state.order(CAMISAS.ref, order)["history"]
    assert entry["username"] == CAMISAS.username
    headers = entry["headers"]
    assert headers["Sequra-Merchant-Id"] == CAMISAS.ref
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert re.fullmatch(
        r"cartsync/\d+\.\d+\.\d+\S* \(\+python-requests/[\d.]+\)", headers["User-Agent"]
    )


def test_version_header_is_sent_only_when_given(sandbox, sequra_client, order):
    """X-Cartsync-Update-Version carries the ledger's version when one is given."""
    sequra_client.update_order(CAMISAS, order, order_body(10000), version=42)
    sequra_client.update_order(CAMISAS, order, order_body(10000))
    history = sandbox.state.order(CAMISAS.ref, order)["history"]
    assert [entry["version"] for entry in history] == [42, None]


def test_body_is_compact_utf8_json():
    """The body goes out as compact UTF-8 JSON with non-ASCII characters as themselves."""
    wire = encode_body({"order": {"name": "Ñandú", "n": 1}})
    assert wire == '{"order":{"name":"Ñandú","n":1}}'.encode()


def test_non_ascii_body_arrives_intact(sandbox, sequra_client, order):
    """A body with non-ASCII text is stored by seQura exactly as sent."""
    body = order_body(10000, customer={"given_names": "José Ñandú", "city": "Logroño"})
    assert sequra_client.update_order(CAMISAS, order, body).kind is Kind.DELIVERED
    assert sandbox.state.order(CAMISAS.ref, order)["state"] == body["order"]


def test_password_with_non_latin1_characters_authenticates(sandbox, sequra_client):
    """Basic credentials are UTF-8 encoded, so any password works."""
    account = MerchantAccount("unicode", "unicode-api", "contraseña-€-密码", frozenset())
    sandbox.state.add_account(_sandbox_account(account))
    sandbox.state.create_order(account.ref, REF, order_body(100)["order"])
    assert sequra_client.update_order(account, REF, order_body(100)).kind is Kind.DELIVERED


def test_session_is_reused_across_updates(sandbox, sequra_client, order):
    """Twenty sequential updates travel over one kept-alive connection."""
    for _ in range(20):
        assert sequra_client.update_order(CAMISAS, order, order_body(10000)).kind is Kind.DELIVERED
    assert sandbox.state.stats()["connections"] == 1


def test_one_client_serves_many_threads(sandbox, sandbox_settings):
    """A worker's threads share one client: concurrent updates are all delivered."""
    refs = [f"T-{n}" for n in range(16)]
    for ref in refs:
        sandbox.state.create_order(CAMISAS.ref, ref, order_body(500)["order"])
    with SequraClient(sandbox_settings, pool_size=8) as client, ThreadPoolExecutor(8) as pool:
        kinds = list(
            pool.map(
                lambda ref: client.update_order(CAMISAS, ref, order_body(500)).kind,
                refs * 4,
            )
        )
    assert kinds == [Kind.DELIVERED] * 64
    assert sandbox.state.stats()["connections"] <= 8


def test_secrets_stay_out_of_logs_and_reprs(sandbox, sandbox_settings, order, caplog):
    """The password and its Basic token show in no log line (urllib3's debug ones included),
    no repr and no outcome, whether the call succeeds or is refused."""
    token = base64.b64encode(f"{CAMISAS.username}:{CAMISAS.password}".encode()).decode()
    wrong = MerchantAccount(CAMISAS.ref, CAMISAS.username, "wrong-pw-5c1e")
    with caplog.at_level(logging.DEBUG), SequraClient(sandbox_settings) as client:
        outcomes = [
            client.update_order(CAMISAS, order, order_body(10000)),
            client.update_order(wrong, order, order_body(10000)),
        ]
        shown = " ".join([caplog.text, repr(client), repr(CAMISAS), repr(wrong)])
        shown += " ".join(repr(outcome) + str(outcome.as_dict()) for outcome in outcomes)
    assert "PUT /merchants/camisasonline" in caplog.text  # the log was captured at all
    for secret in (CAMISAS.password, "wrong-pw-5c1e", token):
        assert secret not in shown


def test_tls_verification_cannot_be_turned_off(tmp_path):
    """Even a session configured with verify=False checks the certificate: a self-signed
    server gives a retryable SSLError, never a delivered update."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysOK)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = requests.Session()
        session.verify = False
        url = f"https://127.0.0.1:{server.server_address[1]}"
        settings = load_settings({}).with_overrides(sequra_url=url, read_timeout_s=2.0)
        with SequraClient(settings, session=session) as client:
            outcome = client.update_order(CAMISAS, REF, order_body(100))
        assert (outcome.kind, outcome.exception) == (Kind.RETRYABLE, "SSLError")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://sandbox.sequrapi.com",
        "http://10.0.0.5:8080",
        "ftp://127.0.0.1",
        "sandbox.sequrapi.com",
        "https://",
        "https://host/?a=1",
        "https://host:notaport",
    ],
)
def test_unsafe_or_malformed_base_urls_are_refused(url):
    """Plain http off loopback, other schemes and malformed URLs are configuration errors."""
    with pytest.raises(ConfigurationError, match="CARTSYNC_SEQURA_URL"):
        SequraClient(load_settings({}).with_overrides(sequra_url=url))


def test_credentials_in_the_base_url_are_refused_without_repeating_them():
    """A base URL holding user:password is refused, and the message does not echo it."""
    with pytest.raises(ConfigurationError) as caught:
        check_base_url("https://api:topsecret@sandbox.sequrapi.com")
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://sandbox.sequrapi.com",
        "https://live.sequrapi.com/",
        "http://127.0.0.1:8765",
        "http://127.3.4.5",
        "http://localhost:8765",
        "http://[::1]:8765",
    ],
)
def test_https_and_loopback_http_are_accepted(url):
    """https anywhere, and plain http on loopback (the local sandbox), are accepted."""
    assert check_base_url(url) == url.rstrip("/")


def test_plain_http_to_a_named_host_needs_an_explicit_opt_in():
    """http to a non-loopback host is refused unless CARTSYNC_SEQURA_HTTP_HOSTS names it."""
    with pytest.raises(ConfigurationError, match="CARTSYNC_SEQURA_HTTP_HOSTS"):
        check_base_url("http://sandbox:8765")
    assert check_base_url("http://sandbox:8765", ["sandbox"]) == "http://sandbox:8765"
    with pytest.raises(ConfigurationError):
        check_base_url("http://live.sequrapi.com", ["sandbox"])


class _AlwaysOK(BaseHTTPRequestHandler):
    def do_PUT(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def _sandbox_account(account):
    return Account(account.ref, account.username, account.password)


@pytest.mark.parametrize(
    "url", ["http://sandbox.sequrapi.com", "http://LIVE.sequrapi.com.", "http://sequrapi.com:80"]
)
def test_plain_http_to_sequra_is_refused_even_when_named_as_an_http_host(url):
    """seQura's own hosts are reached over https only: naming them in
    CARTSYNC_SEQURA_HTTP_HOSTS does not open plain http to them."""
    host = url.split("//")[1].split(":")[0]
    with pytest.raises(ConfigurationError, match="only reached over https"):
        check_base_url(url, [host, "sandbox"])
