"""The dead-letter store: updates that could not be delivered, kept for people to act on.

Modules: ``letter`` (the model, its ids and validation), ``codec`` (a letter's stored bytes
and their compare-and-set token), ``filters`` (which letters a command is about, pages and
stats), ``textindex`` (what the error-text index lists and a search asks of it),
``signatures`` and ``grouping`` (letters grouped by error or by order, for the CLI and the
console), ``audit`` (the audit log), ``changes`` (the Lua scripts that change the store) and
``store`` (:class:`DeadLetterStore`, which changes it and reads it through ``reading``, and
``damaged`` for finding a damaged letter's place). Every public name is
importable from here.

Layout in Redis (every key starts with ``keys.dead_letters(prefix)``, called ``base`` here;
``worker/keys.py`` names each):

- ``base:letters``: one hash field per letter, its JSON compressed with zlib. A letter is
  read whole (``show``, replay) or by the page, never field by field, and cart JSON shrinks
  three- to fivefold, which keeps a million letters of 2 KB payload well under the payload's
  own size in memory.
- ``base:ix:{reason}:{status}`` and ``base:ix:{reason}:{status}:{merchant}``, with ``*`` for
  "any": eight sorted sets per letter, one for each combination of the three filters. All
  scores are 0 and members are letter ids, which sort by time (``1715000000000-1a2b3c4d``),
  so newest-first paging is ``ZRANGE ... BYLEX REV LIMIT`` from a cursor, a time range is a
  lexical range, and every filter combination costs O(log n + page), whatever the store size.
- ``base:by-order``: one sorted set of ``{order_ref}\\0{merchant}\\0{id}`` members, lexically
  searchable by order (an order has a handful of letters, so the other filters are applied to
  those few after fetching).
- ``base:by-update``: update id -> letter id, so that parking the same update twice (a
  redelivered message) keeps one letter, and so that the worker drops such a message as a
  duplicate (worker/lua/ledger_step.lua).
- ``base:imported``: where each imported letter came from (its id in the export, or a digest
  of it) -> its id here, so that importing a file again stores nothing twice. Imported
  letters are not in ``by-update``: their update id (``imported-<id>``) is made here, and no
  live update can be taken for one of them. Never trimmed, so a letter imported and replayed
  is not imported again.
- ``base:counts``: counters by reason, status and merchant, changed in the same script that
  parks or removes a letter, so ``stats`` reads one small hash.
- ``base:forced``: per order, the highest original version sent by a forced replay, so that a
  later forced replay of an older letter of that order is refused (see ``worker.replay``).
- ``base:audit``: a stream of every replay, edit, drop, purge and import, never trimmed.
- ``base:audit-run:{run}``: the stream ids of one command run's entries, oldest first,
  pushed by the script that writes each entry, so that a run's entries are read without
  walking the log (``audit --run``); never trimmed either.
- ``base:text:*``: the error-text index behind ``grep`` (``textindex.py``): a set of letter
  ids per error-text signature (``text:sig:{digest}``, the signatures in ``text:sigs``) and
  per number (``text:num:{number}``, the numbers in ``text:nums``), changed by the same
  scripts as the letter; ``text:ready`` says it lists every letter (set by a store's first
  park, or by :meth:`DeadLetterStore.reindex` for a store parked before it existed).

Nothing here expires and nothing is trimmed: letters leave only through
:meth:`DeadLetterStore.remove` (or ``remove_damaged``). Every change is one Lua script, so a
letter, its indexes, its counters and its audit entry change together or not at all. Changes
to an existing letter are compare-and-set on a hash of its stored bytes (:attr:`Stored.token`):
an edit or a replay never overwrites a change it did not see.

The store makes every letter id (13 digits of the time of death, 8 random hex digits) and
checks every letter it stores (:func:`repaired` for the worker's, :func:`checked` for the
rest); reading stays defensive all the same, since Redis can be written by hand: what does
not read back is a :class:`Damaged` entry, listed as such, never an exception that stops a
listing, the stats, ``cartsync status`` or the metrics.
"""

from cartsync.worker.deadletters.audit import AuditEntry, AuditNote
from cartsync.worker.deadletters.codec import (
    COMPRESSION_LEVEL,
    Damaged,
    Stored,
    decode,
    encode,
    token_of,
)
from cartsync.worker.deadletters.filters import Filters, Page, Stats
from cartsync.worker.deadletters.letter import (
    EARLIEST,
    ID_PATTERN,
    LATEST,
    DeadLetter,
    Reason,
    checked,
    id_bound,
    id_time,
    import_origin,
    imported_update_id,
    new_letter_id,
    repaired,
    replay_update_id,
    status_key,
    valid_id,
    valid_time,
)
from cartsync.worker.deadletters.reading import SCAN_BATCH
from cartsync.worker.deadletters.store import DeadLetterStore

__all__ = [
    "COMPRESSION_LEVEL",
    "EARLIEST",
    "ID_PATTERN",
    "LATEST",
    "SCAN_BATCH",
    "AuditEntry",
    "AuditNote",
    "Damaged",
    "DeadLetter",
    "DeadLetterStore",
    "Filters",
    "Page",
    "Reason",
    "Stats",
    "Stored",
    "checked",
    "decode",
    "encode",
    "id_bound",
    "id_time",
    "import_origin",
    "imported_update_id",
    "new_letter_id",
    "repaired",
    "replay_update_id",
    "status_key",
    "token_of",
    "valid_id",
    "valid_time",
]
