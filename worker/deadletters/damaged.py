"""Finding where a damaged letter is listed, so that it can be removed like any letter.

A damaged letter (:class:`Damaged`: stored bytes that do not read back as a letter) cannot
say where it is indexed, so :class:`DamagedLookup` finds its place in the indexes themselves
(:meth:`DeadLetterStore.remove_damaged` takes it out of all of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from cartsync.worker.deadletters.changes import SEP, Place, StoreKeys
from cartsync.worker.deadletters.codec import Damaged, member_text
from cartsync.worker.deadletters.letter import status_key

#: Fields and members read per round trip while :meth:`DamagedLookup.locate` searches the
#: update-id hash and the order index for a damaged letter.
LOCATE_BATCH = 2000


class DamagedLookup:
    """The store's search for a damaged letter's place (a part of :class:`DeadLetterStore`)."""

    client: redis.Redis
    names: StoreKeys

    def locate(self, damaged: Damaged) -> Place:
        """Where a damaged letter is listed, found in the indexes themselves (its JSON's
        hints are only tried first): its reason, status and merchant by the indexes that hold
        its id, its order by the order index, its update id by the update-id hash.

        Costs a few round trips, plus a walk of the update-id hash and the order index when
        the hints do not name them: meant for the odd damaged letter, not for bulk use.
        """
        hints = damaged.hints
        groups = self._labels_found(damaged.id, hints)
        reason, status, merchant = (groups.get(kind) for kind in ("r", "s", "m"))
        order_ref, merchant = self._order_of(damaged.id, hints, merchant)
        return Place(
            damaged.id, merchant, order_ref, reason, status, self._update_of(damaged.id, hints)
        )

    def _labels_found(self, letter_id: str, hints: Mapping[str, Any]) -> dict[str, str]:
        """Of every reason, status and merchant the counters name (and the hints), those
        whose own index lists ``letter_id``: kind (``r``, ``s``, ``m``) -> label."""
        candidates: dict[str, set[str]] = {"r": set(), "s": set(), "m": set()}
        for raw in self.client.hkeys(self.names.counts):
            kind, _, label = member_text(raw).partition(":")
            if kind in candidates and label:
                candidates[kind].add(label)
        if isinstance(hints.get("reason"), str):
            candidates["r"].add(hints["reason"])
        status = hints.get("status")
        candidates["s"].add(status_key(status) if isinstance(status, int) else "none")
        if isinstance(hints.get("merchant"), str):
            candidates["m"].add(hints["merchant"])
        asked = [(kind, label) for kind, labels in candidates.items() for label in sorted(labels)]
        pipe = self.client.pipeline(transaction=False)
        for kind, label in asked:
            key = self.names.index(
                label if kind == "r" else None,
                label if kind == "s" else None,
                label if kind == "m" else None,
            )
            pipe.zscore(key, letter_id)
        found: dict[str, str] = {}
        for (kind, label), score in zip(asked, pipe.execute(), strict=True):
            if score is not None:
                found.setdefault(kind, label)
        return found

    def _order_of(
        self, letter_id: str, hints: Mapping[str, Any], merchant: str | None
    ) -> tuple[str | None, str | None]:
        """(order-ref, merchant) of the letter's member in the order index, if it has one."""
        order_ref = hints.get("order_ref")
        if isinstance(order_ref, str) and merchant is not None:
            member = f"{order_ref}{SEP}{merchant}{SEP}{letter_id}"
            if self.client.zscore(self.names.by_order, member) is not None:
                return order_ref, merchant
        pattern = "*" + SEP + _glob_escape(letter_id)
        for raw, _score in self.client.zscan_iter(
            self.names.by_order, match=pattern, count=LOCATE_BATCH
        ):
            parts = member_text(raw).rsplit(SEP, 2)
            if len(parts) == 3 and merchant in (None, parts[1]):
                return parts[0], parts[1]
        return None, merchant

    def _update_of(self, letter_id: str, hints: Mapping[str, Any]) -> str | None:
        """The letter's field in the update-id hash, if it has one."""
        update_id = hints.get("update_id")
        if (
            isinstance(update_id, str)
            and member_text(self.client.hget(self.names.by_update, update_id) or b"") == letter_id
        ):
            return update_id
        for field, value in self.client.hscan_iter(self.names.by_update, count=LOCATE_BATCH):
            if member_text(value) == letter_id:
                return member_text(field)
        return None


def _glob_escape(value: str) -> str:
    """``value`` matched literally by a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)
