"""The on-call console: server-rendered pages under ``/console/`` of the HTTP app, on the same
dead-letter store and replay code as ``cartsync dlq``.

Modules: ``roles`` (who may do what), ``users`` (the users file and the trusted proxy
header), ``access`` (sessions, expiry, the role check), ``security`` (headers, cookie),
``blueprint`` (CSRF, headers and error pages for every console request), ``views`` (the
pages), ``actions`` (the changes), ``selection`` (which letters an action is about),
``query`` (a listing's URL), ``jobviews`` (background replays: ``jobs`` decides,
``jobstore`` keeps them in Redis, ``jobrunner`` runs them), ``throttle`` (failed logins),
and the pure decisions ``masking``, ``signatures``,
``grouping`` and ``diffing``. Templates and the one small script live beside them.

:func:`install_console` adds it to the app when a users file or a trusted header is set.
"""

from __future__ import annotations

import redis
from flask import Flask

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.settings import Settings, env_name
from cartsync.tasks.producer import Producer
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.errors import ConfigurationError

#: Shortest secret key taken: 32 characters (``python -c "import secrets;
#: print(secrets.token_urlsafe(32))"`` makes 43).
MIN_SECRET_KEY = 32


def enabled(settings: Settings) -> bool:
    """Whether the console is configured: someone could log in or be named by a proxy."""
    return bool(settings.console_users_file or settings.console_trusted_header)


def check_settings(settings: Settings) -> None:
    """ConfigurationError, one line naming the variable, when the console cannot start."""
    name = env_name("console_secret_key")
    if not settings.console_secret_key:
        raise ConfigurationError(
            f"the console needs {name}: set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if len(settings.console_secret_key) < MIN_SECRET_KEY:
        raise ConfigurationError(f"{name} is too short: use at least {MIN_SECRET_KEY} characters")


def install_console(
    app: Flask, settings: Settings, client: redis.Redis, merchants: MerchantDirectory
) -> bool:
    """Add the console to ``app`` when configured (see :func:`enabled`); True if it was.

    Raises ConfigurationError (the secret key, the users file) rather than start without it.
    """
    if not enabled(settings):
        return False
    check_settings(settings)
    from cartsync.worker.web.console import actions, jobviews, views  # noqa: F401  (routes)
    from cartsync.worker.web.console.blueprint import bp, csrf
    from cartsync.worker.web.console.context import EXTENSION, Console
    from cartsync.worker.web.console.jobstore import JobStore
    from cartsync.worker.web.console.security import cookie_config
    from cartsync.worker.web.console.throttle import LoginThrottle
    from cartsync.worker.web.console.users import load_users

    users = load_users(settings.console_users_file)
    app.secret_key = settings.console_secret_key
    app.config.update(cookie_config(settings.console_secure_cookie, settings.console_session_ttl_s))
    app.extensions[EXTENSION] = Console(
        settings=settings,
        client=client,
        store=DeadLetterStore(client, settings.key_prefix),
        producer=Producer(settings, client=client, merchants=merchants),
        merchants=merchants,
        users=users,
        jobs=JobStore(client, settings.key_prefix),
        throttle=LoginThrottle(client, settings.key_prefix),
    )
    csrf.init_app(app)
    app.register_blueprint(bp)
    return True
