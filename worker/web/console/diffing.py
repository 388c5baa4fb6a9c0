"""The difference between two payloads, path by path, for the letter page ("what changed
between this letter and the newest letter of the same order")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Differences listed at most; a payload rewritten whole says so in a line.
MAX_CHANGES = 200


@dataclass(frozen=True)
class Change:
    path: str
    #: ``changed``, ``added`` (only in the newer payload) or ``removed``.
    kind: str
    old: Any = None
    new: Any = None


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Every leaf that differs between ``old`` and ``new``, in the payloads' order."""
    found: list[Change] = []
    _walk(old, new, path, found)
    return found[:MAX_CHANGES]


def _walk(old: Any, new: Any, path: str, found: list[Change]) -> None:
    if len(found) >= MAX_CHANGES:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                found.append(Change(sub, "removed", old=old[key]))
            elif key not in old:
                found.append(Change(sub, "added", new=new[key]))
            else:
                _walk(old[key], new[key], sub, found)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            sub = f"{path}.{index}" if path else str(index)
            if index >= len(new):
                found.append(Change(sub, "removed", old=old[index]))
            elif index >= len(old):
                found.append(Change(sub, "added", new=new[index]))
            else:
                _walk(old[index], new[index], sub, found)
        return
    if old != new or type(old) is not type(new):
        found.append(Change(path or "(root)", "changed", old=old, new=new))


def masked_change(change: Change) -> Change:
    """``change`` with personal values masked (worker/web/console/masking.py): the value at a
    personal path becomes the mask, and added or removed subtrees are masked inside."""
    from cartsync.worker.web.console.masking import MASK, is_personal, mask

    keys = tuple(part for part in change.path.split(".") if not part.isdigit())
    if keys and is_personal(keys[-1], keys[:-1]):

        def hide(value: Any) -> Any:
            return mask(value, keys) if isinstance(value, dict | list) else MASK

        return Change(change.path, change.kind, hide(change.old), hide(change.new))
    return Change(change.path, change.kind, mask(change.old, keys), mask(change.new, keys))
