"""Replaying dead letters through the normal pipeline, without ever pushing an old cart over a
newer one and without losing or doubling anything when interrupted.

A replay is the producer's ``enqueue`` (validation, the order ledger, the schedule, retries)
with two things fixed by the letter:

- **its version.** Without ``force`` the letter keeps its own version, which the ledger
  accepts only while no newer version of the order was enqueued or delivered; otherwise the
  replay is refused and the letter stays. With ``force`` the ledger gives it the order's next
  version, so it becomes the newest state. Forced replays remember, per order, the highest
  original version they sent (``DeadLetterStore.forced_before``) and refuse an older letter
  of that order afterwards: a forced bulk replay of two letters of one order ends with the
  newer one's state, in whatever order the two are met, and also when it is interrupted and
  run again.
- **its update id** (:func:`replay_update_id`), derived from the letter's id and its edit
  revision. The producer enqueues an update id once and answers ``duplicate`` afterwards
  (for ``idempotency_ttl_s``), and the letter leaves the store only after the producer said
  ``enqueued`` or ``duplicate``. So a replay killed at any point and run again finds the
  letter still there, gets ``duplicate`` if it had been enqueued, and only removes it.
  Editing bumps the revision, so an edited payload is a new update.

Many letters at once are replayed in several processes by worker/replay_pool.py, each
running this same protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cartsync.tasks.producer import Producer, order_identity, with_platform_defaults
from cartsync.tasks.validation import validate_update
from cartsync.worker import keys
from cartsync.worker.deadletters import (
    AuditNote,
    Damaged,
    DeadLetter,
    DeadLetterStore,
    Stored,
    replay_update_id,
)
from cartsync.worker.errors import DeadLetterNotFound, InvalidUpdate, UnknownMerchant

#: Validation messages quoted when a replay fails on an invalid payload.
QUOTED_ERRORS = 3
#: Letters replayed per batch (one round trip takes the replayed ones out of the store), and
#: letter ids sent to a replay process at a time.
CHUNK = 50


@dataclass(frozen=True)
class Verdict:
    """What replaying a letter will do (``replay``), or why it will not (``refuse``, ``fail``)."""

    action: str
    reason: str = ""


@dataclass(frozen=True)
class Result:
    """What replaying one letter did: ``replayed``, ``refused``, ``failed``, or ``skipped``
    (it left the store between being listed and being replayed)."""

    letter_id: str
    outcome: str
    detail: str = ""
    #: ``merchant/order vN``, for people.
    what: str = ""


def judge(
    version: int | None, *, enqueued: int, delivered: int, forced_before: int, force: bool
) -> Verdict:
    """Whether a letter at ``version`` may be replayed, given the order's ledger.

    Mirrors the ledger's own rule (a version older than one enqueued, or not newer than one
    delivered, is superseded), plus the forced-replay memory described in the module.
    """
    if force:
        if version is not None and forced_before > version:
            return Verdict(
                "refuse",
                f"a newer letter of this order (v{forced_before}) was already force-replayed",
            )
        return Verdict("replay", "forced: will be sent as the order's newest version")
    if version is None:
        return Verdict("refuse", "the letter has no version; --force sends it as the newest")
    if version < enqueued or version <= delivered:
        newest, what = (delivered, "delivered") if delivered >= enqueued else (enqueued, "enqueued")
        reason = f"superseded: the order has v{newest} {what} (letter is v{version})"
        return Verdict("refuse", reason)
    return Verdict("replay")


class Replayer:
    """Replays letters one at a time for one command run (one ``AuditNote.run``)."""

    def __init__(
        self, store: DeadLetterStore, producer: Producer, *, by: str, run: str, force: bool
    ) -> None:
        self.store = store
        self.producer = producer
        self.force = force
        self.note = replay_note(by=by, run=run, force=force)

    # -- dry run ------------------------------------------------------------------------------

    def plan(self, stored: Stored) -> Verdict:
        """What :meth:`replay` would do now, from reads only (the dry run)."""
        letter = stored.letter
        early = self._precheck(letter)
        if early is not None:
            return early
        body = with_platform_defaults(letter.payload, self.producer.settings)
        identity = order_identity(body)
        try:
            options = self.producer.merchants.get(identity[0]).options if identity else frozenset()
            validate_update(body, options=options, strict=self.producer.settings.strict)
        except UnknownMerchant as exc:
            return Verdict("fail", str(exc))
        except InvalidUpdate as exc:
            return Verdict("fail", _invalid(exc))
        assert identity is not None  # validation requires merchant and order refs
        marker = keys.update(self.producer.settings.key_prefix, self.update_id(letter))
        if self.producer.client.exists(marker):
            return Verdict("replay", "enqueued by an earlier, interrupted run: will only leave")
        if self.force:
            return Verdict("replay", "forced: will be sent as the order's newest version")
        enqueued, delivered = self.producer.ledger.versions(*identity)
        return judge(
            letter.version, enqueued=enqueued, delivered=delivered, forced_before=0, force=False
        )

    # -- replay -------------------------------------------------------------------------------

    def replay(self, stored: Stored) -> Result:
        """Enqueue one letter and take it out of the store, or leave it and say why.

        Raises BrokerUnavailable (Redis is gone: stop the run), never for one letter's fault.
        """
        return self.replay_many([stored])[0]

    def replay_many(
        self, batch: Iterable[Stored], pace: Callable[[], None] | None = None
    ) -> list[Result]:
        """:meth:`replay` for several letters, in order, taking the replayed ones out of the
        store in one round trip after their enqueues (earlier if an order comes up twice, so
        that a forced replay always sees the previous one's mark)."""
        results: dict[int, Result] = {}
        leaving: list[_Leaving] = []
        orders: set[tuple[str, str]] = set()
        for position, stored in enumerate(batch):
            letter = stored.letter
            if (letter.merchant, letter.order_ref) in orders:
                self._remove(leaving, results)
                orders.clear()
            if pace is not None:
                pace()
            done = self._enqueue(stored)
            if isinstance(done, Result):
                results[position] = done
            else:
                leaving.append(_Leaving(position, stored, *done))
                orders.add((letter.merchant, letter.order_ref))
        self._remove(leaving, results)
        return [results[position] for position in sorted(results)]

    def _enqueue(self, stored: Stored) -> Result | tuple[AuditNote, str]:
        """Enqueue a letter: a Result if it stays, else (its audit note, what happened)."""
        letter = stored.letter
        early = self._precheck(letter)
        if early is not None:
            return self._leave(stored, "refused", early.reason)
        try:
            receipt = self.producer.enqueue(
                letter.payload,
                version=None if self.force else letter.version,
                update_id=self.update_id(letter),
                replay=True,
                replay_of=letter.id,
            )
        except UnknownMerchant as exc:
            return self._leave(stored, "failed", str(exc))
        except InvalidUpdate as exc:
            return self._leave(stored, "failed", _invalid(exc))
        if receipt.status == "superseded":
            reason = f"superseded: the order has v{receipt.version} (letter is v{letter.version})"
            return self._leave(stored, "refused", reason)
        detail = (
            f"enqueued as v{receipt.version}"
            if receipt.status == "enqueued"
            else "already enqueued by an earlier run"
        )
        audit = self.note.with_result(
            "replayed",
            merchant=letter.merchant,
            order_ref=letter.order_ref,
            version=letter.version,
            sent_version=receipt.version,
            update_id=receipt.update_id,
            enqueue=receipt.status,
        )
        return audit, detail

    def _remove(self, leaving: list[_Leaving], results: dict[int, Result]) -> None:
        """Take enqueued letters out of the store; empties ``leaving`` into ``results``."""
        if not leaving:
            return
        forced = [item.stored.letter.version if self.force else None for item in leaving]
        outcomes = self.store.remove_many(
            [
                (item.stored, item.audit, version)
                for item, version in zip(leaving, forced, strict=True)
            ]
        )
        for item, version, outcome in zip(leaving, forced, outcomes, strict=True):
            letter = item.stored.letter
            result = Result(letter.id, "replayed", item.detail, describe(letter))
            if outcome == "changed":
                # Changed while we enqueued. If only its history grew, what we sent is still
                # its payload, so it may go; if it was edited, the edit is a new update: keep it.
                fresh: Stored | None
                try:
                    fresh = self.store.load(letter.id)
                except DeadLetterNotFound:
                    fresh = None
                if fresh is not None and self.update_id(fresh.letter) == self.update_id(letter):
                    self.store.remove(fresh, audit=item.audit, forced_version=version)
                elif fresh is not None:
                    result = Result(
                        letter.id,
                        "failed",
                        "edited while being replayed: the edit stays; replay it again to send it",
                        describe(letter),
                    )
            results[item.position] = result
        leaving.clear()

    def update_id(self, letter: DeadLetter) -> str:
        return replay_update_id(letter.id, letter.revision)

    def refuse_damaged(self, damaged: Damaged) -> Result:
        """:func:`refuse_damaged` for this run."""
        return refuse_damaged(self.store, self.note, damaged)

    def _precheck(self, letter: DeadLetter) -> Verdict | None:
        """The refusals decided by the letter and the store alone, before any enqueue."""
        forced_before = 0
        if self.force and letter.version is not None:
            forced_before = self.store.forced_before(letter.merchant, letter.order_ref)
        verdict = judge(
            letter.version,
            enqueued=0,
            delivered=0,
            forced_before=forced_before,
            force=self.force,
        )
        return verdict if verdict.action == "refuse" else None

    def _leave(self, stored: Stored, outcome: str, reason: str) -> Result:
        """Keep the letter, noting the attempt in its history and the audit log."""
        letter = stored.letter
        entry: Mapping[str, Any] = {
            "at": time.time(),
            "by": self.note.by,
            "action": f"replay_{outcome}",
            "reason": reason,
            "force": self.force,
        }
        # The refusal's reason takes the place of the letter's.
        audit = self.note.about(letter, outcome, reason=reason)
        if self.store.note(stored, entry, audit=audit) != "replaced":
            self.store.record(audit, letter.id)
        return Result(letter.id, outcome, reason, describe(letter))


def replay_note(*, by: str, run: str, force: bool) -> AuditNote:
    """What a replay run records in the audit log beside each letter."""
    return AuditNote(action="replay", by=by, run=run, detail={"force": force})


def refuse_damaged(store: DeadLetterStore, note: AuditNote, damaged: Damaged) -> Result:
    """A damaged letter cannot be replayed: say so in the audit log and the summary; it stays
    for someone to look at (``cartsync dlq show``) and drop."""
    reason = f"damaged: {damaged.problem}"
    store.record(note.with_result("failed", reason=reason), damaged.id)
    return Result(damaged.id, "failed", f"{damaged.problem}; see `cartsync dlq show`", "(damaged)")


@dataclass(frozen=True)
class _Leaving:
    """A letter enqueued by this run, waiting to be taken out of the store."""

    position: int
    stored: Stored
    audit: AuditNote
    detail: str


def describe(letter: DeadLetter) -> str:
    version = "-" if letter.version is None else f"v{letter.version}"
    return f"{letter.merchant}/{letter.order_ref} {version}"


def _invalid(exc: InvalidUpdate) -> str:
    lines = exc.lines()
    more = f" (and {len(lines) - QUOTED_ERRORS} more)" if len(lines) > QUOTED_ERRORS else ""
    return "invalid payload: " + "; ".join(lines[:QUOTED_ERRORS]) + more
