"""``cartsync status``: what is queued, waiting, in flight and dead; doubles as a health check."""

from __future__ import annotations

import json

import click
import redis

from cartsync.worker.cli.common import FiniteFloat, settings_from_env
from cartsync.worker.health import redis_client, take_snapshot, verdict
from cartsync.worker.timefmt import format_age
from cartsync.worker.versions import redis_server_version
from cartsync.worker.versions import versions as component_versions

#: Exit statuses, so that a container or load-balancer health check can act on them.
EXIT_HEALTHY = 0
EXIT_OLD_DEAD_LETTERS = 1
EXIT_REDIS_UNREACHABLE = 2


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--max-dead-age",
    type=FiniteFloat(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Unhealthy when a dead letter is older than this "
    "(default: CARTSYNC_STATUS_MAX_DEAD_AGE_S, 3600).",
)
@click.option("--redis-url", envvar="CARTSYNC_REDIS_URL", default=None, help="Redis URL.")
def status(as_json: bool, max_dead_age: float | None, redis_url: str | None) -> None:
    """Show queue depth, scheduled updates, updates in flight and dead letters.

    Exit status: 0 healthy; 1 a dead letter is older than --max-dead-age; 2 Redis does not
    answer (or an option or setting is wrong).
    """
    settings = settings_from_env(redis_url=redis_url)
    threshold = max_dead_age if max_dead_age is not None else settings.status_max_dead_age_s
    client = redis_client(settings)
    try:
        snapshot = take_snapshot(client, settings)
        versions = {**component_versions(), "Redis server": redis_server_version(client)}
    except (redis.RedisError, OSError) as exc:
        click.echo(
            f"cartsync: Redis does not answer ({type(exc).__name__}); status unknown", err=True
        )
        raise SystemExit(EXIT_REDIS_UNREACHABLE) from None
    finally:
        client.close()
    problem = verdict(snapshot, threshold)
    if as_json:
        document = {
            **snapshot.as_dict(),
            "healthy": problem is None,
            "problem": problem,
            "max_dead_age_s": threshold,
            "versions": versions,
        }
        click.echo(json.dumps(document, sort_keys=True))
    else:
        rows = [
            ("queue depth", str(snapshot.queue_depth)),
            ("scheduled", f"{snapshot.scheduled} ({snapshot.due} due now)"),
            ("in flight", str(snapshot.in_flight)),
            ("workers alive", str(snapshot.workers_alive)),
            ("dead letters", str(snapshot.dead_letters)),
        ]
        rows += [
            (f"  {reason}", str(count))
            for reason, count in sorted(snapshot.dead_by_reason.items())
            if count
        ]
        if snapshot.oldest_dead_age_s is not None:
            rows.append(
                (
                    "oldest dead letter",
                    f"{format_age(snapshot.oldest_dead_age_s)} ago ({snapshot.oldest_dead_id})",
                )
            )
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            click.echo(f"{label.ljust(width)}  {value}")
        if problem is None:
            click.echo("healthy")
        else:
            click.echo(f"unhealthy: {problem}")
    if problem is not None:
        raise SystemExit(EXIT_OLD_DEAD_LETTERS)
