"""Replaying many dead letters at once, in several processes.

Validation and publishing cost about a millisecond of CPU per letter, in Python, so a bulk
replay runs in worker processes. Letters of one order always go to the same process, in
the order they were listed, so that forced replays of one order never race each other.
Each process is an ordinary producer running worker/replay.py's per-letter protocol, which
is what makes killing any of them at any moment safe.

The processes die with the command: when it is killed (even with SIGKILL, which it cannot
catch), each is killed by the kernel (Linux's parent-death signal) or, where there is none,
stops within :data:`WATCHDOG_S` by itself (a thread watching its parent's pid). Without
that, they went on replaying what they had been handed after the operator stopped the run,
then hung on a pipe with nobody reading it, holding Redis connections.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import astuple
from typing import Any

import redis

from cartsync.config.settings import Settings
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import Damaged, DeadLetter, DeadLetterStore, Stored
from cartsync.worker.errors import CartsyncError
from cartsync.worker.redisconn import connect
from cartsync.worker.replay import CHUNK, Replayer, Result

#: Letters handed out but not yet reported, at most, per process (bounds memory, keeps the
#: progress bar honest).
IN_FLIGHT_PER_PROCESS = 400
#: Seconds between checks that the other side of a queue is still alive.
POLL_S = 1.0
#: Seconds between a replay process's checks that its parent is still alive.
WATCHDOG_S = 0.5
#: Linux's ``prctl`` option asking for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Exit status of a replay process that stopped because its parent had died.
ORPHANED_EXIT = 3


def die_with_parent(parent_pid: int) -> None:
    """Make this process stop when ``parent_pid``, its parent, dies: a parent-death SIGKILL
    on Linux, and everywhere a watchdog thread that exits when the parent's pid changes (the
    orphan is adopted). Also exits at once if the parent died before this was asked."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl here: the watchdog alone
    if os.getppid() != parent_pid:
        os._exit(ORPHANED_EXIT)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True
    ).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent_pid:
            # os._exit: nothing to clean up that the per-letter protocol needs, and a normal
            # exit would wait on the queues' feeder threads, which is how orphans hung.
            os._exit(ORPHANED_EXIT)


def partition(letter: DeadLetter, processes: int) -> int:
    """Which replay process handles this letter: the same for every letter of an order."""
    return zlib.crc32(f"{letter.merchant}\0{letter.order_ref}".encode()) % processes


def replay_in_processes(
    letters: Iterable[Stored],
    *,
    settings: Settings,
    by: str,
    run: str,
    force: bool,
    processes: int,
    on_result: Callable[[Result], None],
    pace: Callable[[], None] | None = None,
) -> None:
    """Replay ``letters`` in ``processes`` child processes, reporting each Result.

    Raises CartsyncError when a process cannot go on (Redis gone, no merchant accounts).
    Interrupting this (Ctrl-C) stops the children wherever they are, which is safe.
    """
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    inboxes: list[Any] = [ctx.Queue() for _ in range(processes)]
    children = [
        ctx.Process(
            target=_replay_process,
            args=(settings, by, run, force, inbox, results, os.getpid()),
            name=f"cartsync-replay-{n}",
            daemon=True,
        )
        for n, inbox in enumerate(inboxes)
    ]
    for child in children:
        child.start()
    # Paced, letters go out one by one so that the pace is the replay's pace.
    chunk = CHUNK if pace is None else 1
    pending: list[list[str]] = [[] for _ in inboxes]
    sent = received = finished = 0

    def collect(block: bool) -> bool:
        nonlocal received, finished
        try:
            kind, value = results.get(timeout=POLL_S) if block else results.get_nowait()
        except queue.Empty:
            if block:
                # A child's last words are in the queue before it is seen to exit: look at
                # the dead first, then read what is left, then count.
                dead = sum(1 for child in children if not child.is_alive())
                while collect(block=False):
                    pass
                if dead > finished:
                    raise CartsyncError(
                        "a replay process stopped unexpectedly; run the same command again "
                        "(nothing is lost or sent twice)"
                    ) from None
            return False
        if kind == "result":
            received += 1
            on_result(Result(*value))
        elif kind == "done":
            finished += 1
        else:
            raise CartsyncError(value)
        return True

    try:
        for stored in letters:
            if pace is not None:
                pace()
            k = partition(stored.letter, processes)
            pending[k].append(stored.letter.id)
            if len(pending[k]) >= chunk:
                inboxes[k].put(pending[k])
                sent += len(pending[k])
                pending[k] = []
            while collect(block=False):
                pass
            while sent - received > IN_FLIGHT_PER_PROCESS * processes:
                collect(block=True)
        for k, ids in enumerate(pending):
            if ids:
                inboxes[k].put(ids)
        for inbox in inboxes:
            inbox.put(None)
        while finished < processes:
            collect(block=True)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(timeout=10)


def _replay_process(
    settings: Settings,
    by: str,
    run: str,
    force: bool,
    inbox: Any,
    results: Any,
    parent_pid: int,
) -> None:
    """One replay process: replays the ids it is sent until told to stop or orphaned."""
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the parent decides and stops the children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from cartsync.config.logging import configure_logging

    configure_logging(settings, stream=sys.stderr)
    client = connect(settings)
    store = DeadLetterStore(client, settings.key_prefix)
    replayer = Replayer(store, Producer(settings, client=client), by=by, run=run, force=force)
    try:
        while True:
            try:
                ids = inbox.get(timeout=POLL_S)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return  # the parent died; what it handed out but we did not take stays
                continue
            if ids is None:
                results.put(("done", None))
                return
            loaded = store.load_many(ids)
            for letter_id, found in zip(ids, loaded, strict=True):
                if found is None:
                    results.put(("result", astuple(Result(letter_id, "skipped", "gone meanwhile"))))
                elif isinstance(found, Damaged):  # damaged since it was listed
                    results.put(("result", astuple(replayer.refuse_damaged(found))))
            for result in replayer.replay_many(s for s in loaded if isinstance(s, Stored)):
                results.put(("result", astuple(result)))
    except CartsyncError as exc:
        results.put(("error", str(exc)))
    except redis.RedisError as exc:
        results.put(("error", f"Redis failed during the replay ({type(exc).__name__})"))
