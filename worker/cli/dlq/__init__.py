"""``cartsync dlq``: see what is stuck and why, fix it, replay it safely.

Every command reads the Redis URL from ``--redis-url`` or ``CARTSYNC_REDIS_URL`` (then the
settings' default), and every other option from ``CARTSYNC_DLQ_<COMMAND>_<OPTION>`` too
(``CARTSYNC_DLQ_LIST_MERCHANT=shop1``), except ``--force``, ``--yes`` and ``--all``, which
must be typed (:data:`TYPED_ONLY`). Commands that change letters (replay, drop, purge)
say how many letters match and ask before acting (``--yes`` skips), offer ``--dry-run``, and
record what they did in the audit log, with ``--as NAME`` (or ``CARTSYNC_DLQ_AS``), else
the login name, as "who", and say which name they recorded.

An unknown id, a bad option or an unreachable Redis is one line on stderr and a non-zero
exit (2 for usage errors), never a traceback.

The commands live by what the on-call engineer does with letters:

- :mod:`.select`: choose and count them (``list``, ``stats``, the filter options, and
  ``reindex``, which builds the index ``--grep`` reads);
- :mod:`.inspect`: look closely (``show``, ``audit``);
- :mod:`.change`: change them in place (``edit``, ``drop``, ``purge``);
- :mod:`.move`: move them out and back in (``replay``, ``export``, ``import``);

with :mod:`.session` (Redis, the store, errors as one line) and :mod:`.render` (tables and
one-line descriptions) under them all.
"""

from __future__ import annotations

import click

from cartsync.worker.cli.dlq.change import drop, edit, purge
from cartsync.worker.cli.dlq.inspect import audit, show
from cartsync.worker.cli.dlq.move import export_letters, import_letters, replay
from cartsync.worker.cli.dlq.select import list_letters, reindex, stats
from cartsync.worker.cli.dlq.session import DlqGroup


@click.group(
    cls=DlqGroup,
    context_settings={"auto_envvar_prefix": "CARTSYNC_DLQ", "help_option_names": ["-h", "--help"]},
)
def dlq() -> None:
    """Inspect, fix and replay dead letters (updates seQura would not take).

    Every option can also come from the environment: CARTSYNC_REDIS_URL for --redis-url,
    CARTSYNC_DLQ_<COMMAND>_<OPTION> for the rest (CARTSYNC_DLQ_LIST_MERCHANT=shop1), except
    --force, --yes and --all, which must be typed.
    """


#: Options that change what is sent or skip a confirmation: a variable left in a shell or a
#: crontab must never switch them on unseen (CARTSYNC_DLQ_REPLAY_FORCE=1 once did).
TYPED_ONLY = frozenset({"force", "yes", "all_"})


for _command in (
    list_letters,
    stats,
    show,
    audit,
    edit,
    drop,
    purge,
    replay,
    export_letters,
    import_letters,
    reindex,
):
    for _param in _command.params:
        if isinstance(_param, click.Option) and _param.name in TYPED_ONLY:
            _param.allow_from_autoenv = False
    dlq.add_command(_command)
