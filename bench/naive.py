"""Variant (b) of the benchmark: what a team without cartsync would write.

A plain Celery app on the same Redis with one task that PUTs the body it is given, retried by
Celery's own ``autoretry_for`` with ``retry_backoff``. No validation, no ordering, no ledger,
no dead letters, no structured events. Run as a real worker::

    celery -A bench.naive worker --pool threads --concurrency 32

Honest to it, not a straw man: it keeps one pooled ``requests.Session`` per process (a bare
``requests.put`` opens a new connection per call and would be slower), and it gets the same
quiet per-task logging as cartsync (Celery's "received"/"succeeded" lines off), so that the
comparison measures what cartsync adds, not two extra log lines per task. Everything else is
Celery's defaults, early acks and a prefetch of 4 included.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

import requests
from celery import Celery

#: Queue of the naive task, apart from cartsync's.
QUEUE = "naive"

# Per-task info lines (the tracer and the strategy read these levels when the worker starts).
for _name in ("celery.app.trace", "celery.worker.strategy"):
    logging.getLogger(_name).setLevel(logging.WARNING)

app = Celery("naive", broker=os.environ.get("CARTSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_base = os.environ.get("CARTSYNC_SEQURA_URL", "http://127.0.0.1:8765").rstrip("/")
_auth = (
    os.environ.get("CARTSYNC_SEQURA_USERNAME", ""),
    os.environ.get("CARTSYNC_SEQURA_PASSWORD", ""),
)
_session = requests.Session()
_session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))


@app.task(  # type: ignore[untyped-decorator]  # Celery ships no types
    name="naive.put_order",
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    retry_kwargs={"max_retries": 10},
)
def put_order(merchant: str, order_ref: str, body: dict[str, Any]) -> None:
    response = _session.put(
        f"{_base}/merchants/{quote(merchant, safe='')}/orders/{quote(order_ref, safe='')}",
        json=body,
        auth=_auth,
        timeout=(3.05, 20),
    )
    response.raise_for_status()
