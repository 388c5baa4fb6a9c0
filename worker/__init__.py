"""The runtime around an update: Celery app, seQura client, retry policy, ledger, dead letters.

``celery -A cartsync.worker worker`` finds the Celery app as ``worker.app``. It is built on first
access so that importing a small module such as ``worker.errors`` stays cheap.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in {"app", "celery"}:
        from cartsync.worker.celeryapp import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
