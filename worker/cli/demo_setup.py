"""Where the demo keeps its data and how its parts are configured: one Redis namespace of its
own, settings made for a quick story, and a worker environment built from those settings
alone (worker/cli/demo.py explains why).
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import redis

from cartsync.config.settings import Settings, env_name, load_settings
from cartsync.worker.cli.demo_orders import DEMO_PASSWORD, DEMO_USER

#: Key prefix and queue of everything the demo writes to Redis.
DEMO_NAMESPACE = "cartsync-demo"
#: Settings of the demo: quick retries and polling, so that nothing waits long.
DEMO_OVERRIDES: dict[str, Any] = {
    "key_prefix": DEMO_NAMESPACE,
    "queue": DEMO_NAMESPACE,
    "sequra_username": DEMO_USER,
    "sequra_password": DEMO_PASSWORD,
    "merchants_file": "",
    "contract_options": "",
    "retry_base_s": 0.2,
    "retry_cap_s": 2.0,
    "retry_max_attempts": 5,
    "retry_min_window_s": 0.0,
    "scheduler_interval_s": 0.1,
    "scheduler_lease_s": 5.0,
    "connect_timeout_s": 1.0,
    "read_timeout_s": 5.0,
    "lock_ttl_s": 10.0,
    "visibility_timeout_s": 60.0,
    "worker_pool": "threads",
    "worker_concurrency": 4,
    "log_format": "json",
    "log_level": "info",
}


def demo_settings(redis_url: str, sandbox_url: str) -> Settings:
    """The demo's settings: defaults, :data:`DEMO_OVERRIDES`, this Redis and this sandbox."""
    return load_settings({}).with_overrides(
        **DEMO_OVERRIDES, redis_url=redis_url, sequra_url=sandbox_url
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``CARTSYNC_*`` variables that make a child process read them back."""
    env = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[env_name(f.name)] = str(value)
    return env


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: this one without its ``CARTSYNC_*`` variables, plus
    ``settings`` (so that a production configuration in the shell cannot leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env.update(settings_env(settings))
    return env


def delete_demo_keys(client: redis.Redis) -> None:
    """Everything the demo (and Celery, for the demo's queue) wrote to Redis."""
    from cartsync.worker import keys

    doomed = [*keys.queue_keys(DEMO_NAMESPACE), keys.kombu_binding(DEMO_NAMESPACE)]
    doomed += list(client.scan_iter(match=keys.pattern(DEMO_NAMESPACE), count=1000))
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start : start + 500])
