"""Text out of what redis-py returns: clients made without ``decode_responses`` give bytes."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """``value`` as text: bytes decoded as UTF-8, anything else through ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
