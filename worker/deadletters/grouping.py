"""Letters grouped by order: the newest letter of each order, its older letters folded under
it and marked obsolete (a replay would be refused for them once the newest is sent).

Pure: the caller reads one page and, for each order on it, all of that order's letters.
Shared by ``cartsync dlq list --group order`` and the console's dead-letter page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cartsync.worker.deadletters.letter import DeadLetter

#: An order: (merchant, order-ref).
OrderKey = tuple[str, str]


def order_key(letter: DeadLetter) -> OrderKey:
    return (letter.merchant, letter.order_ref)


def newness(letter: DeadLetter) -> tuple[int, str]:
    """Sort key: a higher version is newer; between equal versions (or none), a later death."""
    return (letter.version if letter.version is not None else -1, letter.id)


@dataclass(frozen=True)
class OrderGroup:
    """One order as a listing page shows it."""

    #: The newest of the order's letters on this page.
    head: DeadLetter
    #: The order's other letters, newest first (on this page or not): obsolete.
    older: list[DeadLetter] = field(default_factory=list)
    #: The order's newest letter when it is not the head (it is elsewhere: newer, or
    #: filtered out): the head is then obsolete too.
    newest_elsewhere: DeadLetter | None = None

    @property
    def head_obsolete(self) -> bool:
        return self.newest_elsewhere is not None


def group_by_order(
    page: Sequence[DeadLetter], by_order: Mapping[OrderKey, Sequence[DeadLetter]]
) -> list[OrderGroup]:
    """The page's letters grouped by order, in the order the page lists them.

    ``by_order`` holds every letter of each order on the page (the page's own letters are
    used when an order is missing from it).
    """
    groups: list[OrderGroup] = []
    seen: set[OrderKey] = set()
    for letter in page:
        key = order_key(letter)
        if key in seen:
            continue
        seen.add(key)
        on_page = [other for other in page if order_key(other) == key]
        every = {other.id: other for other in (*by_order.get(key, ()), *on_page)}
        ranked = sorted(every.values(), key=newness, reverse=True)
        head = max(on_page, key=newness)
        newest = ranked[0]
        groups.append(
            OrderGroup(
                head=head,
                older=[other for other in ranked if other.id not in (head.id, newest.id)],
                newest_elsewhere=None if newest.id == head.id else newest,
            )
        )
    return groups


def newest_of(letters: Sequence[DeadLetter]) -> DeadLetter | None:
    """The newest letter of one order's letters."""
    return max(letters, key=newness) if letters else None
