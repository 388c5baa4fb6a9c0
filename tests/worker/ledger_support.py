"""A helper the ledger's tests share: accept an update with fixed message text."""

from __future__ import annotations

from cartsync.worker.ledger import Ledger


def accept(
    ledger: Ledger,
    version: int | None = None,
    update_id: str = "u1",
    allow_equal: bool = False,
    order: str = "o1",
) -> tuple[str, int]:
    """Accept an update of order ``m1``/``order`` due at 1.0, with a fixed message."""
    step = ledger.accept_step(
        "m1",
        order,
        update_id=update_id,
        version=version,
        due=1.0,
        message_prefix='{"version":',
        message_suffix=',"x":1}',
        remember_ms=60_000,
        allow_equal=allow_equal,
    )
    return ledger.run_accept(step)
