"""cartsync's exceptions: one root, a shallow tree.

Each carries what an on-call engineer needs to read, and never a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class CartsyncError(Exception):
    """Root of every error cartsync raises on purpose."""


class ConfigurationError(CartsyncError):
    """A setting, the merchant accounts file or a command-line option is wrong."""


class UnknownMerchant(ConfigurationError):
    """No credentials are configured for this merchant-ref."""

    def __init__(self, merchant: str) -> None:
        super().__init__(f"no seQura account is configured for merchant {merchant!r}")
        self.merchant = merchant


class InvalidUpdate(CartsyncError):
    """A payload failed validation. ``errors`` maps dotted paths to messages."""

    def __init__(
        self,
        errors: Mapping[str, Sequence[str]],
        warnings: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.errors = {path: list(messages) for path, messages in errors.items()}
        self.warnings = {path: list(messages) for path, messages in (warnings or {}).items()}
        count = sum(len(m) for m in self.errors.values())
        first = next(iter(self.errors.items()), ("", [""]))
        super().__init__(f"{count} validation error(s), first: {first[0]}: {first[1][0]}")

    def lines(self) -> list[str]:
        """One ``path: message`` line per error, in path order (:func:`path_sort_key`)."""
        return [
            f"{path}: {msg}"
            for path in sorted(self.errors, key=path_sort_key)
            for msg in self.errors[path]
        ]


class UnreadableBody(InvalidUpdate):
    """Data that holds no JSON value at all: not UTF-8 text, or not JSON (``tasks/codec.py``).

    The HTTP API answers it like any invalid update; the CLI reports it as unreadable input,
    apart from JSON that is readable but breaks a limit (a plain :class:`InvalidUpdate`).
    """


def path_sort_key(path: str) -> list[tuple[int, int | str]]:
    """Sort key for dotted payload paths that puts ``items.2`` before ``items.10``.

    Numeric parts compare as numbers, so errors read in the order of the payload's lists;
    ``cartsync validate`` and :meth:`InvalidUpdate.lines` list paths in this one order.
    """
    return [(0, int(part)) if part.isdigit() else (1, part) for part in path.split(".")]


class InvalidMessage(CartsyncError, ValueError):
    """A queue message that is not an update message (corrupt, or from something else).

    Also a ValueError, as decoding errors are: code that reads a message's JSON may catch it so.
    """


class BrokerUnavailable(CartsyncError):
    """Redis does not answer."""


class DeadLetterNotFound(CartsyncError):
    """No dead letter has this id."""

    def __init__(self, letter_id: str) -> None:
        super().__init__(f"no dead letter with id {letter_id!r}")
        self.letter_id = letter_id


class DamagedLetter(DeadLetterNotFound):
    """What is stored under a dead-letter id does not read back as a letter.

    A DeadLetterNotFound, so that code looking a letter up by id treats it as no usable
    letter; ``cartsync dlq show`` shows what is stored and ``cartsync dlq drop`` removes it.
    """

    def __init__(self, letter_id: str, problem: str) -> None:
        CartsyncError.__init__(
            self,
            f"dead letter {letter_id!r} is damaged ({problem}); `cartsync dlq show` shows "
            "what is stored, `cartsync dlq drop` removes it",
        )
        self.letter_id = letter_id
        self.problem = problem


class NoFreeLetterId(CartsyncError):
    """Every fresh id tried for a dead letter was taken already (32 random bits each, within
    one millisecond: a broken random source, not bad luck)."""

    def __init__(self, dead_at: float, tries: int) -> None:
        super().__init__(f"could not find a free letter id in {tries} tries (dead at {dead_at!r})")
        self.dead_at = dead_at
        self.tries = tries


class ReplicasUnavailable(BrokerUnavailable):
    """Fewer Redis replicas than ``CARTSYNC_REDIS_MIN_REPLICAS`` confirmed a write in time.

    The write is on the master, so it may still take effect; but a failover now could lose
    it, so it does not count as done: the producer answers "unavailable" (send the update
    again: the same update id makes that safe), and a worker leaves the message in flight,
    to come back.
    """

    def __init__(self, what: str, confirmed: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(
            f"Redis: {confirmed} of {wanted} replica(s) confirmed {what} within {timeout_ms} ms "
            "(CARTSYNC_REDIS_MIN_REPLICAS); it is not counted as done"
        )
        self.confirmed = confirmed
        self.wanted = wanted
