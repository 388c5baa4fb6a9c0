"""The order ledger: per-order versions in Redis, and the per-order send lock.

Cart states are full snapshots, so only the newest matters and an older one must never be
sent after a newer one. The ledger records, per order, the newest version accepted for
sending (``enqueued``) and the newest version seQura accepted (``delivered``).

Each step that reads and changes the ledger is one Lua script (``worker/lua/ledger_*.lua``):
accept (a producer's), claim (a worker's before sending: check, then lock) and finish (after
sending: record the delivery, unlock).

Versions go to and from Redis as decimal text, and the scripts compare them as text (shorter
is smaller, then digit by digit), never as Lua numbers: those are doubles, exact only up to
2**53, and a version may be any integer up to 2**63-1 (``tasks/message.MAX_VERSION``), a
microsecond timestamp say. Each method checks the versions it is handed (:func:`version_text`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import redis

from cartsync.tasks.message import version_problem
from cartsync.worker import keys, scripts
from cartsync.worker.redistext import text


class Claim(StrEnum):
    """What :meth:`Ledger.claim` found."""

    SEND = "send"  # the lock is taken: send, then call finish
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    PARKED = "parked"  # the update is in the dead-letter queue already
    BUSY = "busy"  # another worker is sending for this order


class Decision(StrEnum):
    SEND = "send"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"


def version_text(version: int) -> str:
    """``version`` as the decimal text the scripts take; ValueError for anything but an int
    from 1 to ``tasks/message.MAX_VERSION`` (a float would reach Lua as ``1.5``)."""
    problem = version_problem(version)
    if problem is not None:
        raise ValueError(f"version: {problem}")
    return str(version)


def stored_version(raw: bytes | str | None) -> int:
    """A version as the ledger holds it (decimal text), as an int; 0 when there is none.

    An older release wrote versions past 10**17 as Lua numbers, which Redis stored as
    ``1e+20``: such text reads as the number it spells, as the scripts read it.
    """
    if raw is None:
        return 0
    value = text(raw)
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return 0
    return int(number) if number == number and 0 <= number < float("inf") else 0


def decide(version: int, enqueued: int, delivered: int) -> Decision:
    """Whether a worker may send ``version`` given the ledger's newest enqueued and delivered.

    Equal to the delivered version means this very update was delivered already (a
    redelivered message); anything older than a version enqueued or delivered is stale.
    ``worker/lua/ledger_claim.lua`` applies the same rule in Redis (a test compares them).
    """
    if version == delivered:
        return Decision.DUPLICATE
    if version < enqueued or version < delivered:
        return Decision.SUPERSEDED
    return Decision.SEND


#: Positions, in the accept script's keys and arguments, of the update id's marker and of how
#: long it is remembered (``worker/lua/ledger_accept.lua``).
ACCEPT_MARKER, ACCEPT_REMEMBER_MS = 2, 4


class Step(NamedTuple):
    """One run of a ledger script: its keys and arguments."""

    keys: list[str]
    args: list[Any]


def accepted(reply: Any) -> tuple[str, int]:
    """(status, version) from the accept script's reply."""
    status, number = reply
    return text(status), stored_version(number)


class Ledger:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._accept = scripts.load(client, "ledger_accept")
        self._claim = scripts.load(client, "ledger_claim")
        self._finish = scripts.load(client, "ledger_finish")

    def versions(self, merchant: str, order_ref: str) -> tuple[int, int]:
        """(newest enqueued version, newest delivered version) of an order; 0 when none."""
        enqueued, delivered = self.client.hmget(
            keys.order(self.prefix, merchant, order_ref), ["enqueued", "delivered"]
        )
        return stored_version(enqueued), stored_version(delivered)

    def accept_step(
        self,
        merchant: str,
        order_ref: str,
        *,
        update_id: str,
        version: int | None,
        due: float,
        message_prefix: str,
        message_suffix: str,
        remember_ms: int,
        allow_equal: bool = False,
        receipt: Sequence[str] = (),
    ) -> Step:
        """The keys and arguments of the accept script (``worker/lua/ledger_accept.lua``):
        record a new update and schedule its message. Run it with :meth:`run_accept`, or add
        it to a pipeline with :meth:`queue_accept` (a batch, or ``WAIT`` in the same round
        trip). ``receipt``: the HTTP API's receipt arguments (``worker/web/receipts.py``), to
        check and keep the request's receipt in the same step."""
        return Step(
            keys=[
                keys.order(self.prefix, merchant, order_ref),
                keys.schedule(self.prefix),
                keys.update(self.prefix, update_id),
                keys.wake(self.prefix),
                *([keys.receipt(self.prefix, update_id)] if receipt else []),
            ],
            args=[
                "0" if version is None else version_text(version),  # 0: the order's next one
                repr(due),
                message_prefix,
                message_suffix,
                remember_ms,
                "1" if allow_equal else "0",
                *receipt,
            ],
        )

    def run_accept(self, step: Step) -> tuple[str, int]:
        """Run an accept step (loading its script when Redis has forgotten it); returns
        (status, version). Status ``full``: no version was given and the order is at the
        highest already, so none was assigned."""
        return accepted(self._accept(keys=step.keys, args=step.args))

    def queue_accept(
        self, pipe: redis.client.Pipeline, step: Step, *, before_wait: bool = True
    ) -> int:
        """Add an accept step to ``pipe`` by its script's digest and, ``before_wait``, re-arm
        the update id's marker; returns how many replies that adds (the script's first). The
        caller executes it, reads the script's reply with :func:`accepted`, and on
        ``NoScriptError`` (a new master after a failover, a restarted Redis) loads the script
        (:meth:`load_accept`) or runs the step with :meth:`run_accept`.

        The marker's ``PEXPIRE`` is for a ``WAIT`` that follows: ``WAIT`` waits for the writes
        of its own connection, and an accept that finds a duplicate writes nothing, so the
        original accept (another call, another connection) would go unconfirmed. Any write
        covers everything written before it.
        """
        # Raw EVALSHA: a Script object in a pipeline would cost a SCRIPT EXISTS round trip on
        # every execute.
        pipe.evalsha(self._accept.sha, len(step.keys), *step.keys, *step.args)
        if not before_wait:
            return 1
        pipe.pexpire(step.keys[ACCEPT_MARKER], int(step.args[ACCEPT_REMEMBER_MS]))
        return 2

    def load_accept(self) -> None:
        """Load the accept script into a Redis that has forgotten it."""
        self.client.script_load(self._accept.script)

    def claim(
        self,
        merchant: str,
        order_ref: str,
        *,
        update_id: str,
        version: int,
        parked_index: str,
        ttl_s: float,
        member: str = "",
        record: tuple[str, list[str]] | None = None,
    ) -> tuple[Claim, str]:
        """Check an update against the ledger and take the order's lock when it is to be sent.

        ``parked_index``: the dead-letter store's hash of parked update ids. ``member``: the
        message's in-flight entry, dropped when the claim itself ends the attempt (parked,
        duplicate, superseded). ``record``: the update's outcome record key and its arguments
        (``worker/lua/ledger_claim.lua``), written when the update is superseded. Returns the
        claim and the lock's token (meaningful with ``Claim.SEND`` only).
        """
        token = secrets.token_hex(8)
        names = [
            keys.order(self.prefix, merchant, order_ref),
            keys.lock(self.prefix, merchant, order_ref),
            parked_index,
            keys.inflight(self.prefix),
        ]
        args: list[str | int] = [update_id, version_text(version), token, int(ttl_s * 1000), member]
        if record is not None:
            names.append(record[0])
            args.extend(record[1])
        found = self._claim(keys=names, args=args)
        return Claim(text(found)), token

    def finish(
        self,
        merchant: str,
        order_ref: str,
        token: str,
        *,
        delivered: int | None,
        member: str = "",
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Record ``delivered`` (if not None), release the lock taken by :meth:`claim`, and
        drop the message's in-flight entry ``member``.

        With ``pipe``, the step is only added to that pipeline, by its script's digest: the
        caller executes it, and on ``NoScriptError`` (Redis restarted and forgot its scripts)
        calls this again without ``pipe``. (A script registered with a pipeline would cost a
        SCRIPT EXISTS round trip on every execute, which is what the pipeline is to save.)
        """
        names = [
            keys.order(self.prefix, merchant, order_ref),
            keys.lock(self.prefix, merchant, order_ref),
            keys.inflight(self.prefix),
        ]
        args = ["0" if delivered is None else version_text(delivered), token, member]
        if pipe is None:
            self._finish(keys=names, args=args)
        else:
            pipe.evalsha(self._finish.sha, len(names), *names, *args)
