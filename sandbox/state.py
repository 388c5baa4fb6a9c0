"""What the sandbox knows: accounts, orders with their history, faults to inject, counters.

:meth:`SandboxState.handle_update` decides the answer to one ``PUT`` without touching a socket,
so the HTTP handler stays thin and the rules can be read in one place. Order of the checks, as
a real deployment would meet them: faults first (they stand for the infrastructure in front of
seQura), then credentials, then the order, then the body.

Longer than cartsync's other modules on purpose: the sandbox is a separate program, and this
is its whole memory (accounts, orders, history, faults, counters) in one place, with the
pure rules in ``sandbox/rules.py``.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from http import HTTPStatus
from typing import Any

from cartsync.sandbox import rules

# seQura's 401 and 403 texts are the sandbox's answers too.
from cartsync.worker.basicauth import ACCESS_DENIED as ACCESS_DENIED
from cartsync.worker.basicauth import NO_ACCESS as NO_ACCESS
from cartsync.worker.basicauth import REFUSALS, basic_credentials, basic_verdict

#: Answers the sandbox gives to an accepted update.
ACCEPT_STATUSES = (200, 202, 204)
#: Statuses a ``fail_rate`` fault answers with, picked at random.
FAIL_STATUSES = (500, 502, 503)
#: Words a script may hold besides status codes.
SCRIPT_ACTIONS = ("timeout", "drop", "timeout_after_apply")
#: Longest an answer that never comes holds its connection, in seconds.
MAX_HANG_S = 300.0


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject. Rates are chances per call; together they are at most 1."""

    status: int = 200  # answer to an accepted update: 200, 202 or 204
    fail_rate: float = 0.0  # 500, 502 or 503
    rate_limit_rate: float = 0.0  # 429 with Retry-After
    retry_after: str = "2"  # the Retry-After value of a 429 (seconds or an HTTP date)
    timeout_rate: float = 0.0  # the answer never comes (the client times out)
    drop_rate: float = 0.0  # the connection is closed without an answer
    latency_ms: float = 0.0  # added before every answer
    hang_s: float = 30.0  # how long an answer that never comes holds the connection

    def __post_init__(self) -> None:
        if isinstance(self.retry_after, int | float) and not isinstance(self.retry_after, bool):
            object.__setattr__(self, "retry_after", f"{self.retry_after:g}")
        if not isinstance(self.retry_after, str):
            raise ValueError("retry_after must be a number of seconds or an HTTP date")
        if self.status not in ACCEPT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(map(str, ACCEPT_STATUSES))}")
        rates = ("fail_rate", "rate_limit_rate", "timeout_rate", "drop_rate")
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if sum(getattr(self, name) for name in rates) > 1.0 + 1e-9:
            raise ValueError("fail_rate, rate_limit_rate, timeout_rate and drop_rate add up to >1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if not 0.0 < self.hang_s <= MAX_HANG_S:
            raise ValueError(f"hang_s must be greater than 0 and at most {MAX_HANG_S:g}")
        if not self.retry_after.strip() or any(ch in self.retry_after for ch in "\r\n"):
            raise ValueError("retry_after must be a number of seconds or an HTTP date")

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` applied; ValueError names an unknown or invalid field."""
        known = {f.name for f in fields(self)}
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(sorted(known))})")
            values[name] = _coerce(name, value)
        return replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, value: Any) -> Any:
    if name == "retry_after":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("retry_after must be a number of seconds or an HTTP date")
        return value if isinstance(value, str) else f"{value:g}"
    if name == "status":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("status must be 200, 202 or 204")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)


def parse_script(answers: Iterable[Any]) -> list[int | str]:
    """Scripted answers: HTTP statuses (200-599) or ``timeout``/``drop``/``timeout_after_apply``."""
    parsed: list[int | str] = []
    for answer in answers:
        is_status = isinstance(answer, int) and not isinstance(answer, bool)
        if (is_status and 200 <= answer <= 599) or answer in SCRIPT_ACTIONS:
            parsed.append(answer)
        elif isinstance(answer, str) and answer.isdigit() and 200 <= int(answer) <= 599:
            parsed.append(int(answer))
        else:
            raise ValueError(
                f"scripted answer {answer!r} is neither a status code nor one of "
                + ", ".join(SCRIPT_ACTIONS)
            )
    return parsed


@dataclass(frozen=True)
class Answer:
    """What to do with one request: answer it, never answer it (``hang``), or ``drop`` it."""

    status: int = 200
    body: Any = None  # JSON-ready, or None for no body
    headers: Mapping[str, str] = field(default_factory=dict)
    action: str = "answer"  # "answer", "hang" or "drop"

    @classmethod
    def error(cls, status: int, *texts: str, headers: Mapping[str, str] | None = None) -> Answer:
        if not texts:
            try:
                texts = (HTTPStatus(status).phrase,)
            except ValueError:
                texts = ("Error",)
        return cls(status=status, body={"errors": list(texts)}, headers=headers or {})


HANG = Answer(action="hang")
DROP = Answer(action="drop")
#: Marker: process the update, then never answer (seQura applied it; the client times out).
AFTER_APPLY = Answer(action="hang")


@dataclass(frozen=True)
class UpdateRequest:
    """One ``PUT`` to the Order Update endpoint, as the handler read it."""

    merchant: str
    order_ref: str
    authorization: str | None
    body: bytes
    version: str | None = None
    received_at: float = field(default_factory=time.time)
    path: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # recorded ones; never credentials

    def __repr__(self) -> str:
        return f"UpdateRequest(merchant={self.merchant!r}, order_ref={self.order_ref!r})"


@dataclass
class Order:
    """An order seQura knows: its current state and every update it accepted, in order."""

    merchant: str
    order_ref: str
    original_total: int | None
    state: dict[str, Any] | None
    created: str  # "admin" or "auto"
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "order_ref": self.order_ref,
            "created": self.created,
            "original_total": self.original_total,
            "accepted": len(self.history),
        }


@dataclass(frozen=True)
class Account:
    ref: str
    username: str
    password: str = field(repr=False)


class SandboxState:
    """Everything the sandbox holds, behind one lock. Times are Unix epoch seconds."""

    def __init__(
        self,
        accounts: Iterable[Account] = (),
        *,
        auto_create: bool = False,
        faults: Faults | None = None,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._accounts = {account.ref: account for account in accounts}
        self.auto_create = auto_create
        self._initial_faults = faults or Faults()
        self.faults = self._initial_faults
        self._random = random.Random(seed)
        self._orders: dict[tuple[str, str], Order] = {}
        self._scripts: dict[tuple[str, str], deque[int | str]] = {}
        self._calls: Counter[tuple[str, str]] = Counter()
        self._answers: Counter[str] = Counter()
        self._sequence = 0
        self._connections = 0

    # -- administration ------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        with self._lock:
            self._accounts[account.ref] = account

    def account_refs(self) -> list[str]:
        with self._lock:
            return sorted(self._accounts)

    def create_order(
        self,
        merchant: str,
        order_ref: str,
        order: Mapping[str, Any] | None = None,
        original_total: int | None = None,
    ) -> dict[str, Any]:
        """Check an order out (or replace it). Its original total is ``original_total``, else
        the total of the carts given, else unset (no upselling check)."""
        if original_total is None and order is not None:
            original_total = rules.order_total(order)
        created = Order(
            merchant=merchant,
            order_ref=order_ref,
            original_total=original_total,
            state=dict(order) if order is not None else None,
            created="admin",
        )
        with self._lock:
            self._orders[(merchant, order_ref)] = created
            return created.summary()

    def order(self, merchant: str, order_ref: str) -> dict[str, Any] | None:
        """An order's state, history and call count (None when unknown)."""
        with self._lock:
            found = self._orders.get((merchant, order_ref))
            if found is None:
                return None
            return copy.deepcopy(
                {
                    **found.summary(),
                    "calls": self._calls[(merchant, order_ref)],
                    "state": found.state,
                    "history": found.history,
                }
            )

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**order.summary(), "calls": self._calls[key]}
                for key, order in sorted(self._orders.items())
            ]

    def calls(self, merchant: str | None = None, order_ref: str | None = None) -> int:
        """Update calls received, for one order (even one unknown) or in all."""
        with self._lock:
            if merchant is None or order_ref is None:
                return sum(self._calls.values())
            return self._calls[(merchant, order_ref)]

    def count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def stats(self) -> dict[str, Any]:
        """Counters: update calls, accepted updates, orders, TCP connections, answers given."""
        with self._lock:
            return {
                "calls": sum(self._calls.values()),
                "connections": self._connections,
                "accepted": self._sequence,
                "orders": len(self._orders),
                "answers": dict(self._answers),
            }

    def set_faults(self, changes: Mapping[str, Any]) -> Faults:
        with self._lock:
            self.faults = self.faults.updated(changes)
            return self.faults

    def script(self, merchant: str, order_ref: str, answers: Iterable[Any]) -> list[int | str]:
        """Queue answers for the next calls for one order; returns what is now queued."""
        parsed = parse_script(answers)
        with self._lock:
            queue = self._scripts.setdefault((merchant, order_ref), deque())
            queue.extend(parsed)
            return list(queue)

    def reset(self) -> None:
        """Forget orders, scripts and counters; faults go back to the start-up ones."""
        with self._lock:
            self._orders.clear()
            self._scripts.clear()
            self._calls.clear()
            self._answers.clear()
            self._sequence = 0
            self._connections = 0
            self.faults = self._initial_faults

    # -- the Order Update endpoint --------------------------------------------------------

    def handle_update(self, request: UpdateRequest) -> Answer:
        """The answer to ``PUT /merchants/{merchant}/orders/{order_ref}``."""
        key = (request.merchant, request.order_ref)
        with self._lock:
            self._calls[key] += 1
            faults = self.faults
            scripted = self._next_scripted(key)
            draw = self._random.random()
            fail_status = self._random.choice(FAIL_STATUSES)
        answer = self._injected(faults, scripted, draw, fail_status)
        if answer is None or answer is AFTER_APPLY:
            status = scripted if isinstance(scripted, int) else faults.status
            answer = self._process(request, status, hang=answer is AFTER_APPLY)
        with self._lock:
            self._answers[answer.action if answer.action != "answer" else str(answer.status)] += 1
        return answer

    def _next_scripted(self, key: tuple[str, str]) -> int | str | None:
        queue = self._scripts.get(key)
        if not queue:
            return None
        answer = queue.popleft()
        if not queue:
            del self._scripts[key]
        return answer

    def _injected(
        self, faults: Faults, scripted: int | str | None, draw: float, fail_status: int
    ) -> Answer | None:
        """The fault to answer with; None to process the update (AFTER_APPLY: then hang).

        A script takes precedence over the random faults; a scripted 2xx means "process the
        update as usual and answer with this status".
        """
        if scripted == "timeout":
            return HANG
        if scripted == "drop":
            return DROP
        if scripted == "timeout_after_apply":
            return AFTER_APPLY
        if isinstance(scripted, int):
            return None if 200 <= scripted <= 299 else self._canned(scripted, faults)
        return _random_fault(faults, draw, fail_status)

    def _process(self, request: UpdateRequest, status: int, hang: bool) -> Answer:
        """Credentials, order and body checks; an accepted update becomes the order's state."""
        denied = self._check_credentials(request.merchant, request.authorization)
        if denied is not None:
            return denied
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Answer.error(409, "Invalid data: the body is not UTF-8 JSON")
        key = (request.merchant, request.order_ref)
        with self._lock:
            order = self._orders.get(key)
            if order is None and not self.auto_create:
                return Answer.error(404, "Not Found")
            original = order.original_total if order is not None else None
            errors = rules.update_errors(body, original)
            if errors:
                return Answer.error(409, *errors)
            if order is None:
                # Auto-created: the first accepted update stands for the checkout.
                order = Order(
                    merchant=request.merchant,
                    order_ref=request.order_ref,
                    original_total=rules.order_total(body["order"]),
                    state=None,
                    created="auto",
                )
                self._orders[key] = order
            self._sequence += 1
            order.state = body["order"]
            credentials = basic_credentials(request.authorization)
            order.history.append(
                {
                    "seq": self._sequence,
                    "received_at": request.received_at,
                    "accepted_at": time.time(),
                    "version": _version(request.version),
                    "status": status,
                    "path": request.path,
                    "username": credentials[0] if credentials else None,
                    "headers": dict(request.headers),
                    "order": body["order"],
                }
            )
        if hang:
            return HANG
        return Answer(status=status, body=None if status == 204 else {})

    def _canned(self, status: int, faults: Faults) -> Answer:
        if status == 401:
            return Answer.error(401, ACCESS_DENIED)
        if status == 403:
            return Answer.error(403, NO_ACCESS)
        if status == 409:
            return Answer.error(409, "Invalid data: scripted conflict")
        if status == 429:
            return Answer.error(429, headers={"Retry-After": faults.retry_after})
        return Answer.error(status)

    def _check_credentials(self, merchant: str, authorization: str | None) -> Answer | None:
        """401 for credentials of nobody, 403 for another merchant's; None when they fit."""
        with self._lock:
            accounts = dict(self._accounts)
        if not accounts:
            return None  # no accounts configured: any credentials pass (documented)
        verdict = basic_verdict(authorization, accounts.get(merchant), accounts.values())
        if verdict is None:
            return None
        return Answer.error(verdict, REFUSALS[verdict])


def _random_fault(faults: Faults, draw: float, fail_status: int) -> Answer | None:
    threshold = faults.drop_rate
    if draw < threshold:
        return DROP
    threshold += faults.timeout_rate
    if draw < threshold:
        return HANG
    threshold += faults.fail_rate
    if draw < threshold:
        return Answer.error(fail_status)
    threshold += faults.rate_limit_rate
    if draw < threshold:
        return Answer.error(429, headers={"Retry-After": faults.retry_after})
    return None


def _version(raw: str | None) -> int | str | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def accounts_from(
    spec: Mapping[str, tuple[str, str]] | Iterable[Any] | None,
) -> list[Account]:
    """Accounts from ``{ref: (username, password)}`` or objects with ref/username/password."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [Account(ref, user, password) for ref, (user, password) in spec.items()]
    items: Iterable[Any] = spec
    return [Account(item.ref, item.username, item.password) for item in items]


def parse_account(text: str) -> Account:
    """``REF:USER:PASSWORD`` (the password may hold colons) as an Account."""
    ref, _, rest = text.partition(":")
    username, colon, password = rest.partition(":")
    if not ref or not username or not colon or not password:
        raise ValueError("expected REF:USER:PASSWORD")
    return Account(ref, username, password)
