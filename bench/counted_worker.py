"""A worker app that counts its own Redis round trips, for ``bench.redis_cost``.

``celery -A bench.counted_worker worker`` runs the app named by ``BENCH_COUNTED_APP``
(``cartsync.worker``, the default, or ``bench.naive``) unchanged, with ``bench.roundtrips``
installed first, and writes the round trips so far, by what they carried, to the JSON file
named by ``BENCH_ROUND_TRIPS_FILE`` every ``SNAPSHOT_INTERVAL_S`` (written whole, then renamed,
so that a reader never sees half a file).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from bench import roundtrips

#: Seconds between two snapshots of the counts.
SNAPSHOT_INTERVAL_S = 0.1

roundtrips.install()

app: Any = importlib.import_module(os.environ.get("BENCH_COUNTED_APP", "cartsync.worker")).app


def _snapshots(path: Path) -> None:
    partial = path.with_suffix(".partial")
    while True:
        partial.write_text(json.dumps({"at": time.time(), "trips": roundtrips.counts()}))
        partial.replace(path)
        time.sleep(SNAPSHOT_INTERVAL_S)


_target = os.environ.get("BENCH_ROUND_TRIPS_FILE")
if _target:
    threading.Thread(target=_snapshots, args=(Path(_target),), daemon=True).start()
