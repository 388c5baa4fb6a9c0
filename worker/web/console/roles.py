"""Who may do what in the console: three roles, each allowed what the one below is and more.

A pure decision (:func:`may`), checked by the server on every request that reads or changes
something (``worker/web/console/access.py``); pages only hide what a role may not do.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    #: Pages: overview, letters (payloads masked), audit.
    READ = "read"
    #: Change a letter's payload.
    EDIT = "edit"
    #: Replay letters (always after a dry run).
    REPLAY = "replay"
    #: Delete letters, with a reason.
    DROP = "drop"
    #: Download letters as JSON Lines (payloads masked unless the role may reveal).
    EXPORT = "export"
    #: See a payload's personal data (audited).
    REVEAL = "reveal"
    #: Delete letters by age.
    PURGE = "purge"


#: The least role each action needs.
LEAST_ROLE: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.EDIT: Role.OPERATOR,
    Action.REPLAY: Role.OPERATOR,
    Action.DROP: Role.OPERATOR,
    Action.EXPORT: Role.OPERATOR,
    Action.REVEAL: Role.ADMIN,
    Action.PURGE: Role.ADMIN,
}

#: The roles from the least to the most allowed.
RANKS = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def may(role: Role | str | None, action: Action) -> bool:
    """Whether someone with ``role`` may do ``action``; nobody (None) and unknown roles may
    do nothing."""
    if role is None:
        return False
    try:
        rank = RANKS.index(Role(role))
    except ValueError:
        return False
    return rank >= RANKS.index(LEAST_ROLE[action])


def parse_role(text: str | None) -> Role | None:
    """A role named in a users file or a proxy's header (any case); None when unknown."""
    if text is None:
        return None
    try:
        return Role(text.strip().lower())
    except ValueError:
        return None
