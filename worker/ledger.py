"""The order ledger: per-order versions in Redis, and the per-order send lock.

Cart states are full snapshots, so only the newest matters and an older one must never be
sent after a newer one. The ledger records, per order, the newest version accepted for
sending (``enqueued``) and the newest version seQura accepted (``delivered``).

Each step that reads and changes the ledger is one Lua script (``worker/lua/ledger_*.lua``):
accept (a producer's), and a worker's step, which finishes the update just sent (records the
delivery, unlocks) and claims the next one (checks it, then locks) at once.

Versions go to and from Redis as decimal text, and the scripts compare them as text (shorter
is smaller, then digit by digit), never as Lua numbers: those are doubles, exact only up to
2**53, and a version may be any integer up to 2**63-1 (``tasks/message.MAX_VERSION``), a
microsecond timestamp say. Each method checks the versions it is handed (:func:`version_text`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, overload

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
    ``worker/lua/ledger_step.lua`` applies the same rule in Redis (a test compares them).
    """
    if version == delivered:
        return Decision.DUPLICATE
    if version < enqueued or version < delivered:
        return Decision.SUPERSEDED
    return Decision.SEND


#: Positions, in the accept script's keys and arguments, of the update id's marker and of how
#: long it is remembered (``worker/lua/ledger_accept.lua``).
ACCEPT_MARKER, ACCEPT_REMEMBER_MS = 2, 4


#: Entries the metrics log holds before the step script folds them into the metrics hashes
#: (``worker/lua/_metrics_log.lua``): the larger, the fewer folds (each an HMGET and an HSET
#: per hash) but the longer each holds Redis (a few hundred small entries: well under 1 ms).
METRICS_LOG_FOLD_AT = 256


@dataclass(frozen=True)
class Finish:
    """The end of an attempt that was sent, for :meth:`Ledger.step`."""

    merchant: str
    order_ref: str
    update_id: str
    #: The lock's token from the claim.
    token: str
    #: The version seQura accepted, None when it did not.
    delivered: int | None = None
    #: The update's outcome record as JSON (``worker/outcome_records.py``), '' for none.
    record: str = ""
    record_ttl_ms: int = 1
    #: The outcome's metrics log entry (``metrics.log_entry``), '' to count nothing.
    count: str = ""


@dataclass(frozen=True)
class ClaimRequest:
    """An update a worker is about to send, for :meth:`Ledger.step`."""

    merchant: str
    order_ref: str
    update_id: str
    version: int
    #: The dead-letter store's hash of parked update ids.
    parked_index: str
    #: How long the order's lock holds if never released.
    ttl_s: float
    #: The record to keep if the update is superseded (``outcome_records.superseded_head``),
    #: '' for none.
    superseded_record: str = ""
    record_ttl_ms: int = 1
    #: Count an outcome the claim decides (parked, duplicate, superseded) in the metrics log.
    count: bool = False
    #: Every order with a parked update carries the ledger's ``parked`` flag
    #: (``DeadLetterStore.orders_flagged``): the claim looks among the dead letters only for
    #: flagged orders. Until then it looks for every update.
    orders_flagged: bool = False


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
        self._step = scripts.load(client, "ledger_step")
        #: The metrics log and the hashes its entries number (``worker/lua/_metrics_log.lua``).
        self.metrics_log_keys = (keys.metrics_log(prefix), *keys.metrics_log_hashes(prefix))

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

    @overload
    def step(
        self, finish: Finish | None, claim: ClaimRequest, drop: Sequence[str] = ()
    ) -> tuple[Claim, str]: ...

    @overload
    def step(
        self, finish: Finish | None = None, claim: None = None, drop: Sequence[str] = ()
    ) -> None: ...

    def step(
        self,
        finish: Finish | None = None,
        claim: ClaimRequest | None = None,
        drop: Sequence[str] = (),
    ) -> tuple[Claim, str] | None:
        """Finish the attempt just sent, claim the next update, drop finished messages'
        in-flight entries: whichever of the three are given, in that order, in one script
        (``worker/lua/ledger_step.lua``) and one round trip.

        A worker's task runs its updates one after the other, so each update's claim can ride
        with the finish of the one before it, and its in-flight entries can all go with the
        task's last step (``tasks/order_update.py``): per update, one round trip and one script
        call instead of two, and no ``ZREM`` of its own.

        ``drop``: members of the in-flight sorted set whose attempts have ended. Returns the
        claim's finding and the lock's token (meaningful with ``Claim.SEND`` only), or None
        without a claim.
        """
        names = [*self.metrics_log_keys]
        args: list[str | int] = [
            "1" if finish else "0", "1" if claim else "0", "1" if drop else "0", METRICS_LOG_FOLD_AT
        ]  # fmt: skip
        if finish is not None:
            names += [
                keys.order(self.prefix, finish.merchant, finish.order_ref),
                keys.lock(self.prefix, finish.merchant, finish.order_ref),
                keys.outcome(self.prefix, finish.update_id),
            ]
            args += [
                "0" if finish.delivered is None else version_text(finish.delivered),
                finish.token,
                finish.record,
                finish.record_ttl_ms,
                finish.count,
            ]
        token = secrets.token_hex(8)
        if claim is not None:
            names += [
                keys.order(self.prefix, claim.merchant, claim.order_ref),
                keys.lock(self.prefix, claim.merchant, claim.order_ref),
                claim.parked_index,
                keys.outcome(self.prefix, claim.update_id),
            ]
            args += [
                claim.update_id,
                version_text(claim.version),
                token,
                max(1, int(claim.ttl_s * 1000)),
                claim.superseded_record,
                claim.record_ttl_ms,
                "1" if claim.count else "0",
                "0" if claim.orders_flagged else "1",
            ]
        if drop:
            names.append(keys.inflight(self.prefix))
            args += drop
        found = text(self._step(keys=names, args=args))
        return None if claim is None else (Claim(found), token)

    def claim(
        self,
        merchant: str,
        order_ref: str,
        *,
        update_id: str,
        version: int,
        parked_index: str,
        ttl_s: float,
        orders_flagged: bool = False,
    ) -> tuple[Claim, str]:
        """:meth:`step` with a claim only: the claim and the lock's token."""
        request = ClaimRequest(
            merchant, order_ref, update_id, version, parked_index, ttl_s,
            orders_flagged=orders_flagged,
        )  # fmt: skip
        return self.step(None, request)

    def finish(
        self, merchant: str, order_ref: str, token: str, *, delivered: int | None
    ) -> None:
        """:meth:`step` with a finish only (no outcome record, nothing counted): record
        ``delivered`` (if not None) and release the lock taken by the claim."""
        self.step(Finish(merchant, order_ref, update_id="", token=token, delivered=delivered))
