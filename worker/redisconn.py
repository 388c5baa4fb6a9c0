"""The one way cartsync makes a Redis client, and the wait for replicas.

:func:`connect` reads ``CARTSYNC_REDIS_URL``: a ``redis://``, ``rediss://`` or ``unix://`` URL
gives a plain client; Sentinels' addresses (``sentinel://h1:26379;sentinel://h2:26379``, with
``CARTSYNC_REDIS_SENTINEL_MASTER``) give a client of the master they name. That client follows
a failover by itself: redis-py's ``SentinelConnectionPool`` asks the Sentinels where the master
is on every new connection, drops its idle connections when the answer changes, and turns a
``READONLY`` answer (a demoted master) into a connection error. So a caller handles a failover
as it handles Redis restarting: a connection error for the commands in flight, then on.

:func:`execute_confirmed` runs a pipeline and then Redis's ``WAIT`` in the same round trip,
when ``CARTSYNC_REDIS_MIN_REPLICAS`` asks for it. The producer uses it after its accept script,
the task after parking a letter (``WAIT`` cannot run inside a script).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline
from redis.sentinel import Sentinel

from cartsync.config.settings import Settings
from cartsync.worker.errors import ReplicasUnavailable
from cartsync.worker.redisurl import is_sentinel_url, parse_sentinel_url

#: Seconds a Sentinel may take to connect or answer where the master is, unless the caller's
#: own time-outs are shorter: a Sentinel that does not answer is passed over for the next.
SENTINEL_TIMEOUT_S = 1.0
#: Client options that also apply to the connections to the Sentinels.
SHARED_WITH_SENTINELS = ("socket_timeout", "socket_connect_timeout")


def connect(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the Redis ``settings`` name; ``options`` as for ``redis.Redis`` (time-outs,
    ``retry``, ``max_connections``, ``health_check_interval``)."""
    url = settings.redis_url
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    parsed = parse_sentinel_url(url)
    sentinel_options: dict[str, Any] = {
        name: min(float(options.get(name) or SENTINEL_TIMEOUT_S), SENTINEL_TIMEOUT_S)
        for name in SHARED_WITH_SENTINELS
    }
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    # redis-py's Sentinel carries no annotations; what master_for returns is a redis.Redis.
    sentinel: Any = Sentinel
    managed = sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_options)
    credentials = {"username": parsed.username, "password": parsed.password}
    client: redis.Redis = managed.master_for(
        settings.redis_sentinel_master,
        db=parsed.db,
        **{k: v for k, v in credentials.items() if v is not None},
        **options,
    )
    return client


def execute_confirmed(pipe: Pipeline, settings: Settings, *, what: str) -> list[Any]:
    """Execute ``pipe``, with ``WAIT`` after its commands when ``settings`` ask for replicas;
    returns the replies of ``pipe``'s own commands.

    Raises :class:`ReplicasUnavailable` when fewer replicas than
    ``CARTSYNC_REDIS_MIN_REPLICAS`` confirmed within ``CARTSYNC_REDIS_REPLICA_TIMEOUT_MS``:
    the writes are on the master, but a failover now could lose them. ``what`` names them in
    the message (``the update``). With no replicas asked for, an empty pipeline costs nothing.
    """
    wanted = settings.redis_min_replicas
    if wanted:
        pipe.wait(wanted, settings.redis_replica_timeout_ms)
    replies = list(pipe.execute())
    if wanted:
        confirmed = int(replies.pop())
        if confirmed < wanted:
            raise ReplicasUnavailable(what, confirmed, wanted, settings.redis_replica_timeout_ms)
    return replies
