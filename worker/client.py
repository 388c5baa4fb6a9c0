"""The seQura Order Update API client: one PUT per call, a :class:`CallResult` back, no raise.

One client (one ``requests.Session``, pooled keep-alive connections) per worker process. The
client does not retry and does not log: the task decides what an outcome means and logs it.

Decisions made here:

- Path segments are escaped with nothing left safe, and a segment that is exactly ``.`` or
  ``..`` has its dots escaped too, so that no merchant-ref or order-ref can climb out of its
  segment, start a query or a fragment. The URL is handed to the connection as built: requests
  would otherwise turn ``%2E`` back into ``.`` and drop the dot segment.
- The ``Authorization`` header is built here, UTF-8 encoded (RFC 7617), so that a password with
  non-Latin-1 characters works. Credentials never go into the URL or onto the session.
- Redirects are not followed (a redirect could carry the credentials to another host); a 3xx
  becomes a ``rejected`` outcome for a human to look at.
- Cookies are refused: one session serves every merchant, so none may carry state to another.
- TLS verification is always on, whatever the session passed in says.
"""

from __future__ import annotations

import base64
import http.client
import http.cookiejar
import ipaddress
import time
from collections.abc import Collection, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import resolve_proxies

from cartsync.config.merchants import MerchantAccount
from cartsync.config.settings import Settings, is_sequra_host
from cartsync.tasks import codec
from cartsync.worker.clock import ms_since
from cartsync.worker.errors import ConfigurationError
from cartsync.worker.outcomes import CallResult, classify_exception, classify_response

#: Header carrying the ledger's version of the update (recorded by the sandbox's history).
VERSION_HEADER = "X-Cartsync-Update-Version"

#: Exceptions that mean "no answer came": the outcome is retryable, the worker carries on.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def user_agent() -> str:
    """``cartsync/<version> (+python-requests/<version>)``."""
    try:
        own = version("cartsync")
    except PackageNotFoundError:
        own = "0.0.0"
    return f"cartsync/{own} (+python-requests/{requests.__version__})"


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, http_hosts: Collection[str] = ()) -> str:
    """The base URL without a trailing slash; ConfigurationError when it is unsafe or malformed.

    Plain http is allowed on loopback only (the local sandbox), and for the hosts an operator
    names in ``http_hosts`` (a sandbox container on a private network), never for seQura's
    own hosts (``config.settings.is_sequra_host``), even when named there. The message never
    repeats user information a URL might carry.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise ConfigurationError("CARTSYNC_SEQURA_URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(
            "CARTSYNC_SEQURA_URL must be an https:// URL with a host, "
            "like https://sandbox.sequrapi.com"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "CARTSYNC_SEQURA_URL must not hold credentials: configure them as merchant accounts"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError("CARTSYNC_SEQURA_URL must not have a query or a fragment")
    allowed = {name.strip().lower() for name in http_hosts if name.strip()}
    if parts.scheme == "http" and is_sequra_host(host):
        raise ConfigurationError(
            f"CARTSYNC_SEQURA_URL uses http:// for {host}: seQura is only reached over https"
        )
    if parts.scheme == "http" and not is_loopback(host) and host.lower() not in allowed:
        raise ConfigurationError(
            f"CARTSYNC_SEQURA_URL uses http:// for {host}: seQura is only reached over https "
            "(plain http is allowed for loopback hosts and CARTSYNC_SEQURA_HTTP_HOSTS only)"
        )
    return url.strip().rstrip("/")


def path_segment(value: str) -> str:
    """``value`` percent-escaped so that it stays one path segment, whatever it holds."""
    escaped = quote(value, safe="")
    if escaped in (".", ".."):
        return escaped.replace(".", "%2E")
    return escaped


def order_url(base: str, merchant_ref: str, order_ref: str) -> str:
    """``{base}/merchants/{merchant-ref}/orders/{order-ref}``, both segments escaped."""
    return f"{base}/merchants/{path_segment(merchant_ref)}/orders/{path_segment(order_ref)}"


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic, UTF-8 encoded."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def header_value(text: str) -> str:
    """``text`` when it can go in a header as is, else percent-escaped (no header injection)."""
    if text and all(" " <= ch <= "~" for ch in text) and text == text.strip():
        return text
    return quote(text, safe="")


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The wire form: compact UTF-8 JSON, non-ASCII characters as themselves, written by the
    one JSON codec that read it at the door (``tasks/codec.encode_utf8``)."""
    return codec.encode_utf8(body)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class SequraClient:
    """Sends order updates to seQura. Thread-safe for the worker's thread pool."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        pool_size: int | None = None,
    ) -> None:
        """``pool_size`` (default: the worker concurrency) bounds the kept-alive connections."""
        self.base_url = check_base_url(settings.sequra_url, settings.sequra_http_hosts.split(","))
        try:
            # requests' normal form of scheme and host (IDNA, default port), kept for the URLs.
            wire = requests.Request("PUT", self.base_url).prepare().url or ""
        except (requests.RequestException, ValueError):
            raise ConfigurationError("CARTSYNC_SEQURA_URL is not a valid URL") from None
        self._wire_base = wire.rstrip("/")
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.user_agent = user_agent()
        self._owns_session = session is None
        if session is None:
            size = pool_size if pool_size is not None else settings.worker_concurrency
            session = requests.Session()
            # max_retries=0: retrying is the task's decision, with backoff and the ledger.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, size), max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        session.cookies.set_policy(_NoCookies())
        self.session = session
        # The proxy (if any) for seQura's host, resolved once: left to requests, the proxy
        # environment variables are read and parsed again on every call, which cost a
        # third of the client's CPU time per update.
        self._proxies = resolve_proxies(
            requests.Request("PUT", wire).prepare(), dict(session.proxies), session.trust_env
        )

    def update_order(
        self,
        account: MerchantAccount,
        order_ref: str,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
    ) -> CallResult:
        """PUT ``body`` (``{"order": {...}}``) for ``order_ref`` as ``account``.

        Returns the outcome of the call; network failures come back as retryable outcomes.
        ``version`` (the ledger's) travels in the ``X-Cartsync-Update-Version`` header.
        """
        request = self._prepare(account, order_ref, body, version)
        started = time.perf_counter()
        try:
            response = self.session.send(
                request,
                timeout=self.timeout,
                verify=True,
                allow_redirects=False,
                stream=False,
                proxies=self._proxies,
            )
        except NETWORK_ERRORS as exc:
            return classify_exception(exc, ms_since(started))
        latency_ms = ms_since(started)
        text = response.content.decode("utf-8", errors="replace")
        return classify_response(response.status_code, response.headers, text, latency_ms)

    def _prepare(
        self,
        account: MerchantAccount,
        order_ref: str,
        body: Mapping[str, Any],
        version: int | None,
    ) -> requests.PreparedRequest:
        url = order_url(self._wire_base, account.ref, order_ref)
        data = encode_body(body)
        headers = {
            "Authorization": basic_auth(account.username, account.password),
            "Sequra-Merchant-Id": header_value(account.ref),
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            "Content-Length": str(len(data)),
        }
        if version is not None:
            headers[VERSION_HEADER] = str(int(version))
        # Built by hand rather than with ``Request.prepare()``, which parses and re-quotes the
        # URL (turning an escaped %2E back into a dot segment, so ours would be put back
        # anyway), checks every header and merges hooks: about 7 % of a worker's CPU per
        # update (profiled), for parts that are fixed here. The base URL is checked once
        # (``check_base_url``), path segments are escaped (``order_url``) and header values
        # are safe (``header_value``).
        prepared = requests.PreparedRequest()
        prepared.method = "PUT"
        prepared.url = url
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.body = data
        return prepared

    def close(self) -> None:
        """Close the pooled connections (of a session this client created)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> SequraClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SequraClient(base_url={self.base_url!r})"
