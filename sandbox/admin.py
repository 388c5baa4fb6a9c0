"""A Python client for the sandbox's admin endpoints (tests, the demo, the reliability harness).

admin = SandboxAdmin("http://127.0.0.1:8765")
admin.create_order("camisasonline", "A14/12345", {"unshipped_cart": ..., "shipped_cart": ...})
admin.script("camisasonline", "A14/12345", [503, 503, 503])
admin.set_faults(fail_rate=0.2, latency_ms=50)
admin.history("camisasonline", "A14/12345")   # every accepted update, in order accepted
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

#: Seconds an admin call may take.
ADMIN_TIMEOUT_S = 10.0


class SandboxAdminError(RuntimeError):
    """The sandbox refused an admin call (the message is its explanation)."""


class SandboxAdmin:
    """Talks to one sandbox's ``/_admin`` endpoints."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        allow_404: bool = False,
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.base_url}/_admin{path}",
            params=params,
            json=json,
            timeout=ADMIN_TIMEOUT_S,
        )
        if allow_404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                reason = "; ".join(response.json()["errors"])
            except (ValueError, KeyError, TypeError):
                reason = response.text[:200]
            raise SandboxAdminError(f"{method} {path}: {response.status_code} {reason}")
        return response.json()

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "/health")["ok"])
        except (requests.RequestException, SandboxAdminError):
            return False

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until the sandbox answers (one started as a separate process)."""
        deadline = time.monotonic() + timeout_s
        while not self.health():
            if time.monotonic() > deadline:
                raise SandboxAdminError(f"no sandbox answers at {self.base_url}")
            time.sleep(0.05)

    def create_order(
        self,
        merchant: str,
        order_ref: str,
        order: Mapping[str, Any] | None = None,
        *,
        original_total: int | None = None,
    ) -> dict[str, Any]:
        """Check an order out with its original carts (``order`` holds them)."""
        data: dict[str, Any] = {"merchant": merchant, "order_ref": order_ref}
        if order is not None:
            data["order"] = order
        if original_total is not None:
            data["original_total"] = original_total
        result: dict[str, Any] = self._call("POST", "/orders", json=data)
        return result

    def order(self, merchant: str, order_ref: str) -> dict[str, Any] | None:
        """Everything about one order (state, history, calls), or None when unknown."""
        params = {"merchant": merchant, "order_ref": order_ref}
        result: dict[str, Any] | None = self._call("GET", "/order", params=params, allow_404=True)
        return result

    def order_state(self, merchant: str, order_ref: str) -> dict[str, Any] | None:
        """The order's current state (the ``order`` object last accepted), or None."""
        found = self.order(merchant, order_ref)
        return None if found is None else found["state"]

    def history(self, merchant: str, order_ref: str) -> list[dict[str, Any]]:
        """Accepted updates, in the order accepted: ``seq``, ``received_at``, ``accepted_at``,
        ``version`` (from ``X-Cartsync-Update-Version``), ``status``, ``order``."""
        found = self.order(merchant, order_ref)
        return [] if found is None else list(found["history"])

    def orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/orders")["orders"]
        return result

    def calls(self, merchant: str | None = None, order_ref: str | None = None) -> int:
        """Update calls received for one order (known or not), or in all."""
        params = None
        if merchant is not None and order_ref is not None:
            params = {"merchant": merchant, "order_ref": order_ref}
        return int(self._call("GET", "/calls", params=params)["calls"])

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some faults: status, fail_rate, rate_limit_rate, retry_after, timeout_rate,
        drop_rate, latency_ms, hang_s. Returns them all."""
        result: dict[str, Any] = self._call("PUT", "/faults", json=changes)
        return result

    def script(self, merchant: str, order_ref: str, answers: Sequence[int | str]) -> list[Any]:
        """The next calls for this order get these answers: statuses, ``"timeout"``,
        ``"drop"`` or ``"timeout_after_apply"``. Returns everything queued for the order."""
        data = {"merchant": merchant, "order_ref": order_ref, "answers": list(answers)}
        result: list[Any] = self._call("POST", "/scripts", json=data)["queued"]
        return result

    def add_account(self, ref: str, username: str, password: str) -> None:
        self._call(
            "POST", "/accounts", json={"ref": ref, "username": username, "password": password}
        )

    def reset(self) -> None:
        """Forget orders, scripts and counters; faults go back to the start-up ones."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._session.close()
