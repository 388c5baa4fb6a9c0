"""Running ``cartsync serve`` (real gunicorn) in tests, and the accounts it is given."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from cartsync.config.producers import token_hash
from cartsync.worker.redisserver import free_port
from tests.sandbox_fixtures import CAMISAS, SHOP, ZAPATOS
from tests.support import json_events, wait_for

#: Bearer tokens of the test producers, and the merchants each may send for.
BACKEND_TOKEN = "backend-token-0123456789abcdef"
ZAPATERO_TOKEN = "zapatero-token-0123456789abcdef"
EVERY_TOKEN = "every-token-0123456789abcdef"
PRODUCERS = {
    "backend": (BACKEND_TOKEN, [SHOP.ref, CAMISAS.ref]),
    "zapatero": (ZAPATERO_TOKEN, [ZAPATOS.ref]),
    "platform": (EVERY_TOKEN, ["*"]),
}
MERCHANTS = (SHOP, CAMISAS, ZAPATOS)


def write_accounts(folder: Path) -> dict[str, str]:
    """Merchants and producers files in ``folder``; the settings that name them."""
    merchants = folder / "merchants.toml"
    merchants.write_text(
        "".join(
            f'[merchants."{m.ref}"]\nusername = "{m.username}"\npassword = "{m.password}"\n'
            for m in MERCHANTS
        ),
        encoding="utf-8",
    )
    producers = folder / "producers.toml"
    producers.write_text(
        "".join(
            f'[producers.{name}]\ntoken_sha256 = "{token_hash(token)}"\nmerchants = {refs!r}\n'
            for name, (token, refs) in PRODUCERS.items()
        ).replace("'", '"'),
        encoding="utf-8",
    )
    return {"CARTSYNC_MERCHANTS_FILE": str(merchants), "CARTSYNC_PRODUCERS_FILE": str(producers)}


class WebServer:
    """``cartsync serve`` as a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], workers: int = 2, threads: int = 4) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.log_path = Path(tempfile.mkstemp(prefix="cartsync-serve-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WebServer:
        command = [
            sys.executable, "-c", "from cartsync.worker.cli import main; main()", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--threads", str(self.threads), "--batch-max", "20",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self.ready, timeout=30, what="cartsync serve to answer", on_fail=self.log_text)
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"cartsync serve exited:\n{self.log_text()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, event: str = "http_request") -> list[dict[str, Any]]:
        return json_events(self.log_text(), event)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None


def serve_env(redis_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of ``cartsync serve``: the given Redis, the test accounts, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSYNC_")}
    env["CARTSYNC_REDIS_URL"] = redis_url
    env["CARTSYNC_LOG_FORMAT"] = "json"
    env.update(write_accounts(folder))
    env.update(extra)
    return env
