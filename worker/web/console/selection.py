"""Which letters a console action is about: ids ticked on a page, or everything a listing's
filters match (named by its query string), read through the store's own scan.

The console acts on at most :data:`ACT_MAX` letters at once within a request (a dry run
shows the verdicts of that many); replaying everything a filter matches, however many, is a
background job (``worker/web/console/jobviews.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cartsync.worker.deadletters import ID_PATTERN, DeadLetterStore, Stored, id_bound
from cartsync.worker.web.console.query import Query, parse_query

#: Letters one console action (dry run, replay, drop, export) takes at most.
ACT_MAX = 500


@dataclass(frozen=True)
class Selection:
    #: The letters, as read, newest first (up to ACT_MAX).
    letters: list[Stored]
    #: How many letters the selection names in all (more than ``letters`` when too many).
    count: int
    #: The listing query the selection came from (None: ticked ids).
    query: Query | None = None
    #: Ids asked for that are no longer in the store.
    missing: list[str] = field(default_factory=list)

    @property
    def too_many(self) -> bool:
        return self.count > len(self.letters)

    def describe(self) -> dict[str, Any]:
        """The selection, for the audit log's summary entry."""
        if self.query is None:
            return {"ids": [s.letter.id for s in self.letters][:100], "count": self.count}
        return {"filters": self.query.filters.describe() or "all", "count": self.count}


def ids_from(values: Sequence[str]) -> list[str]:
    """Letter ids out of a form's values, each once, in order; anything else is dropped."""
    return [i for i in dict.fromkeys(v.strip() for v in values) if ID_PATTERN.match(i)]


def select(
    store: DeadLetterStore,
    ids: Sequence[str],
    params: Mapping[str, str] | None,
    *,
    limit: int = ACT_MAX,
) -> Selection:
    """Ticked ``ids``, or with none, the letters the listing ``params`` match (at most
    ``limit``; letters that die after now are left for the next action)."""
    if ids or params is None:
        wanted = ids_from(ids)[:limit]
        loaded = store.load_many(wanted)
        # A damaged letter cannot be acted on here: it is reported with the missing ones.
        found = [s for s in loaded if isinstance(s, Stored)]
        missing = [i for i, s in zip(wanted, loaded, strict=True) if not isinstance(s, Stored)]
        return Selection(found, len(found), None, missing)
    query = parse_query(params, time.time())
    below = id_bound(time.time() + 0.001)
    letters: list[Stored] = []
    for stored in store.scan(query.filters, below=below, batch=min(limit + 1, 500)):
        letters.append(stored)
        if len(letters) > limit:
            break
    count = len(letters)
    if count > limit:
        count = store.count(query.filters) if query.filters.indexed else count
        letters = letters[:limit]
    return Selection(letters, count, query)
