"""Fixtures of the console's tests: an app with the console on the test Redis, three users
(one per role) and a test client that logs in as any of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.web.app import create_app

#: Every test user's password; users are named after their role.
PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "operator", "admin")
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def write_users(folder: Path) -> Path:
    """A users file with one user per role (a fast hash: these are test passwords)."""
    path = folder / "console-users.toml"
    path.write_text(
        "".join(
            f'[users.{role}]\npassword_hash = "'
            f'{generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}"\n'
            f'role = "{role}"\n'
            for role in ROLES
        ),
        encoding="utf-8",
    )
    return path


def console_settings(settings: Settings, folder: Path, **extra: Any) -> Settings:
    """The test settings with the console on (plain-http cookie: the tests speak http)."""
    return settings.with_overrides(
        console_users_file=str(write_users(folder)),
        console_secret_key=SECRET_KEY,
        console_secure_cookie=False,
        **extra,
    )


def merchants() -> MerchantDirectory:
    """One account for every merchant-ref (replays validate against it)."""
    return MerchantDirectory(
        single=MerchantAccount(ref="", username="shop1-api", password="s3cret-pw")
    )


@pytest.fixture
def console_app(settings: Settings, tmp_path: Path) -> Flask:
    app = create_app(console_settings(settings, tmp_path), merchants=merchants())
    app.config["TESTING"] = True
    return app


@pytest.fixture
def store(redis_client: Any, settings: Settings) -> DeadLetterStore:
    return DeadLetterStore(redis_client, settings.key_prefix)


def csrf_token(html: str) -> str:
    """The CSRF token a console page's form carries."""
    found = _TOKEN.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    """A test client that keeps its session and posts forms with the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def token(self, page: str = "/console/login") -> str:
        answer = self.client.get(page, follow_redirects=True)
        return csrf_token(answer.get_data(as_text=True))

    def post(self, path: str, data: Any = None, *, token: bool = True, **kwargs: Any) -> Any:
        form = dict(data or {})
        if token:
            form.setdefault("csrf_token", self.token("/console/login"))
        return self.client.post(path, data=form, **kwargs)

    def login(self, role: str) -> Browser:
        answer = self.post("/console/login", {"username": role, "password": PASSWORD})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return self


@pytest.fixture
def browser(console_app: Flask) -> Browser:
    return Browser(console_app.test_client())


@pytest.fixture
def as_role(console_app: Flask):
    """A function: a Browser logged in as ``role``."""

    def make(role: str) -> Browser:
        return Browser(console_app.test_client()).login(role)

    return make
