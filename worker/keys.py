"""Redis key names, built in one place so that every module agrees on them.

Everything cartsync writes lives under the key prefix (``CARTSYNC_KEY_PREFIX``), except the
lists kombu keeps the Celery queue in, which are named after the queue.

A key that holds a merchant-ref and an order-ref (:func:`order`, :func:`lock`) holds each as
:func:`part`: ``%`` and ``:`` percent-encoded, so that the ``:`` between them is the only one
and no two orders share a key (``("x:y", "1")`` and ``("x", "y:1")`` would otherwise). Refs
without either character are kept as they are, so a deployment's keys stay the same. Nothing
parses these keys back: an order's refs travel in its messages.
"""

from __future__ import annotations

#: Priority steps of kombu's Redis transport: a queue with priorities set is stored as the
#: plain list plus one list per non-zero step, named ``{queue}\x06\x16{step}``.
KOMBU_PRIORITY_STEPS = (3, 6, 9)
#: What kombu puts between a queue's name and a priority step.
KOMBU_PRIORITY_SEP = "\x06\x16"


def pattern(name: str) -> str:
    """The SCAN/KEYS pattern of every key under ``name`` (a prefix, or a group like
    :func:`dead_letters`)."""
    return f"{name}:*"


# -- the order ledger and the schedule ------------------------------------------------------


def part(ref: str) -> str:
    """A merchant-ref or order-ref as one part of a key: ``%`` and ``:`` percent-encoded
    (``%`` first, so that an encoded ``:`` cannot be mistaken for a ref's own ``%3A``)."""
    return ref.replace("%", "%25").replace(":", "%3A")


def order(prefix: str, merchant: str, order_ref: str) -> str:
    """Hash holding an order's ledger: versions enqueued and delivered."""
    return f"{prefix}:order:{part(merchant)}:{part(order_ref)}"


def lock(prefix: str, merchant: str, order_ref: str) -> str:
    """The per-order send lock."""
    return f"{prefix}:lock:{part(merchant)}:{part(order_ref)}"


def schedule(prefix: str) -> str:
    """Sorted set of messages waiting to be queued, scored by when they are due."""
    return f"{prefix}:schedule"


def update(prefix: str, update_id: str) -> str:
    """Remembers an update id so that enqueueing it again does nothing."""
    return f"{prefix}:update:{update_id}"


def inflight(prefix: str) -> str:
    """Sorted set of messages handed to the Celery queue and not yet finished by a worker,
    scored by when they are presumed lost (see ``worker.schedule``)."""
    return f"{prefix}:inflight"


def wake(prefix: str) -> str:
    """List a producer pushes to when it schedules an update due now, so that a worker's
    pump waiting for work (``BLPOP``) moves it to the queue at once."""
    return f"{prefix}:wake"


# -- the dead-letter store (its layout is described in worker/deadletters/__init__.py) ------


def dead_letters(prefix: str) -> str:
    """Prefix of every dead-letter key."""
    return f"{prefix}:dlq"


def dlq_letters(prefix: str) -> str:
    """Hash of letter id -> the letter's compressed JSON."""
    return f"{dead_letters(prefix)}:letters"


def dlq_by_update(prefix: str) -> str:
    """Hash of update id -> letter id: a redelivered update parks once."""
    return f"{dead_letters(prefix)}:by-update"


def dlq_by_order(prefix: str) -> str:
    """Sorted set of ``{order_ref}\\0{merchant}\\0{id}`` members, searched by order."""
    return f"{dead_letters(prefix)}:by-order"


def dlq_counts(prefix: str) -> str:
    """Hash of letter counters by reason, status and merchant."""
    return f"{dead_letters(prefix)}:counts"


def dlq_forced(prefix: str) -> str:
    """Hash of order -> the highest original version a forced replay sent."""
    return f"{dead_letters(prefix)}:forced"


def dlq_audit(prefix: str) -> str:
    """Stream of every replay, edit, drop, purge and import."""
    return f"{dead_letters(prefix)}:audit"


def dlq_indexes(prefix: str) -> str:
    """Prefix of every dead-letter index (:func:`dlq_index`)."""
    return f"{dead_letters(prefix)}:ix"


def dlq_index(prefix: str, reason: str | None, status: str | None, merchant: str | None) -> str:
    """Sorted set of the ids of letters with this reason, status and merchant (None: any).

    The merchant-ref is the last part, after a reason and a status that hold no ``:``, so no
    two merchants share an index; it is kept as it is, so existing indexes stay found."""
    name = f"{dlq_indexes(prefix)}:{reason or '*'}:{status or '*'}"
    return name if merchant is None else f"{name}:{merchant}"


def dlq_text(prefix: str) -> str:
    """Prefix of the error-text index that answers ``--grep`` (worker/deadletters/textindex.py)."""
    return f"{dead_letters(prefix)}:text"


def dlq_orders_flagged(prefix: str) -> str:
    """Set once every order with a letter carries the ledger's ``parked`` field and no worker
    of a release before it is left (``DeadLetterStore.flag_parked_orders``)."""
    return f"{dead_letters(prefix)}:orders-flagged"


def dlq_text_ready(prefix: str) -> str:
    """Set once the error-text index lists every letter (a new store, or ``dlq reindex``)."""
    return f"{dlq_text(prefix)}:ready"


def dlq_text_signatures(prefix: str) -> str:
    """Hash of a signature's digest -> the signature (error text, case folded, numbers masked)."""
    return f"{dlq_text(prefix)}:sigs"


def dlq_text_signature(prefix: str, digest: str) -> str:
    """Set of the ids of letters with an error text of this signature (by its digest)."""
    return f"{dlq_text(prefix)}:sig:{digest}"


def dlq_text_numbers(prefix: str) -> str:
    """Sorted set (score 0, searched lexically) of every number the error texts hold."""
    return f"{dlq_text(prefix)}:nums"


def dlq_text_number(prefix: str, number: str) -> str:
    """Set of the ids of letters whose error texts hold this number (digits, ``.`` and ``,``)."""
    return f"{dlq_text(prefix)}:num:{number}"


def dlq_audit_run(prefix: str, run: str) -> str:
    """List of the audit stream ids of one command run's entries, oldest first, so that
    ``dlq audit --run`` reads that run's entries only, however old or many."""
    return f"{dead_letters(prefix)}:audit-run:{part(run)}"


# -- metrics (see worker/metrics.py) ---------------------------------------------------------


def metrics_updates(prefix: str) -> str:
    """Hash of ``{outcome}|{reason}`` -> updates processed."""
    return f"{prefix}:metrics:updates"


def metrics_attempts(prefix: str) -> str:
    """Hash whose field ``total`` counts the calls made to seQura."""
    return f"{prefix}:metrics:attempts"


def metrics_latency(prefix: str) -> str:
    """Hash of seQura latency histogram buckets and sums, by status class."""
    return f"{prefix}:metrics:latency"


def metrics_http_requests(prefix: str) -> str:
    """Hash of ``{route}|{method}|{status}`` -> HTTP requests answered (worker/web/metrics.py)."""
    return f"{prefix}:metrics:http_requests"


def metrics_http_enqueue(prefix: str) -> str:
    """Hash of the HTTP enqueue latency histogram's buckets and sum."""
    return f"{prefix}:metrics:http_enqueue"


def metrics_merchant_updates(prefix: str) -> str:
    """Hash of ``{outcome}|{reason}|{merchant}`` -> updates sent to seQura (the merchant is a
    configured one or ``other``: worker/metrics.py)."""
    return f"{prefix}:metrics:merchant_updates"


def metrics_log_hashes(prefix: str) -> tuple[str, ...]:
    """The metrics hashes a metrics log entry numbers, in its order (from 1, as in Lua):
    updates, attempts, latency, merchant updates, delivery (``worker/metrics.py``)."""
    return (
        metrics_updates(prefix),
        metrics_attempts(prefix),
        metrics_latency(prefix),
        metrics_merchant_updates(prefix),
        metrics_delivery(prefix),
    )


def metrics_log(prefix: str) -> str:
    """List of the counts a worker recorded with an update's outcome, not yet added to the
    metrics hashes (``worker/lua/_metrics_log.lua``)."""
    return f"{prefix}:metrics:log"


def metrics_delivery(prefix: str) -> str:
    """Hash of the enqueue-to-delivered latency histogram's buckets and sum."""
    return f"{prefix}:metrics:delivery"


def metrics_dlq_actions(prefix: str) -> str:
    """Hash of ``{action}|{result}`` -> dead letters replayed, edited, dropped, purged...
    (counted with their audit entries, worker/deadletters/audit.py)."""
    return f"{prefix}:metrics:dlq_actions"


def workers(prefix: str) -> str:
    """Sorted set of worker id -> when its pump last said it was alive (worker/schedule.py)."""
    return f"{prefix}:workers"


def workers_flagging(prefix: str) -> str:
    """The same, written only by workers whose parks flag their orders in the ledger: a worker
    alive in :func:`workers` and not here runs an earlier release (worker/schedule.py)."""
    return f"{prefix}:workers:flagging"


def notify_lock(prefix: str, slot: int) -> str:
    """Taken (SET NX EX) by the one process that sends the dead-letter notification of
    interval number ``slot`` (worker/notify.py)."""
    return f"{prefix}:notify:lock:{slot}"


def notify_cursor(prefix: str) -> str:
    """The id of the last dead letter a notification was sent for (worker/notify.py)."""
    return f"{prefix}:notify:cursor"


# -- the Celery queue (kombu's names) --------------------------------------------------------


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue``'s messages in (one per priority step)."""
    return [queue, *(f"{queue}{KOMBU_PRIORITY_SEP}{step}" for step in KOMBU_PRIORITY_STEPS)]


def kombu_binding(queue: str) -> str:
    """The set kombu keeps the bindings of ``queue``'s exchange in (Celery names it after
    the queue)."""
    return f"_kombu.binding.{queue}"


def receipt(prefix: str, update_id: str) -> str:
    """What the HTTP API accepted under an update id (merchant, order-ref, a fingerprint of
    the request), kept as long as the update id itself (``worker/web/receipts.py``)."""
    return f"{prefix}:receipt:{update_id}"


def outcome(prefix: str, update_id: str) -> str:
    """What a worker last recorded about an update (delivered, retrying, superseded,
    dead-lettered), as JSON text, kept as long as the update id itself
    (``worker/outcome_records.py``)."""
    return f"{prefix}:outcome-record:{update_id}"


def outcome_hash(prefix: str, update_id: str) -> str:
    """The same as a hash, as releases before the JSON text wrote it: still read until the
    last of them expires (``worker/outcome_records.py``)."""
    return f"{prefix}:outcome:{update_id}"


def metrics_dropped(prefix: str) -> str:
    """Hash of queue -> Celery messages a worker dropped because they did not decode
    (``worker/celeryapp.py``)."""
    return f"{prefix}:metrics:dropped"


def failures(prefix: str, update_id: str) -> str:
    """Counts the times processing an update failed unexpectedly (a bug, a poison message),
    so that it is parked after a few instead of coming back forever; expires
    (``tasks/order_update.py``)."""
    return f"{prefix}:failures:{update_id}"


def dlq_imported(prefix: str) -> str:
    """Hash of where each imported dead letter came from (its id in the export, or a digest
    of it) -> its id here: an import recognizes what it stored before, and imported letters
    stay out of ``by-update``, which the worker checks live updates against."""
    return f"{dead_letters(prefix)}:imported"


# -- the on-call console (worker/web/console/) ------------------------------------------------


def console_jobs(prefix: str) -> str:
    """Sorted set of the console's background replay jobs: job id -> when it was started."""
    return f"{prefix}:console:jobs"


def console_job(prefix: str, job_id: str) -> str:
    """Hash holding one background replay job: its selection, who started it, its cursor,
    counts, status and heartbeat (``worker/web/console/jobstore.py``)."""
    return f"{prefix}:console:job:{job_id}"


def console_login_failures(prefix: str, kind: str, digest: str) -> str:
    """Counts failed console logins for one user name or one client address (``kind`` is
    ``user`` or ``addr``, ``digest`` a hash of it, never the text typed); expires with the
    window it counts (``worker/web/console/throttle.py``)."""
    return f"{prefix}:console:login-failures:{kind}:{digest}"
