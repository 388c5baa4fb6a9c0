"""The Procfile, docker-compose.yml and Dockerfile describe processes this project can run.

No container engine runs here, so these tests read the files and check each command against
the code: ``cartsync`` subcommands and their options, ``celery -A worker`` and the Celery
worker's options, and every ``CARTSYNC_*`` variable against the settings.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from cartsync.config.settings import Settings, load_settings, setting_names
from cartsync.worker.cli import COMMANDS, LazyGroup

ROOT = Path(__file__).resolve().parent.parent

#: ``${NAME:-default}`` / ``${NAME-default}``: shell (Procfile) and compose interpolation.
EXPANSION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}]*)\}")


def expand_defaults(text: str) -> str:
    """``text`` with every ``${NAME:-default}`` replaced by its default."""
    return EXPANSION.sub(lambda m: m.group(2), text)


def option_names(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def given_options(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("-")]


def check_command(argv: list[str], where: str) -> None:
    """Fail unless ``argv`` is a command this project provides, with options it accepts."""
    assert argv, f"{where}: empty command"
    if argv[0] == "cartsync":
        assert len(argv) >= 2, f"{where}: cartsync needs a subcommand"
        name = argv[1]
        assert name in COMMANDS, f"{where}: `cartsync {name}` is not a cartsync command"
        command = LazyGroup._load(name)
        assert command is not None, f"{where}: `cartsync {name}` does not load ({COMMANDS[name]})"
        unknown = set(given_options(argv[2:])) - option_names(command)
        assert not unknown, f"{where}: `cartsync {name}` has no option {sorted(unknown)}"
    elif argv[0] == "celery":
        assert argv[1:3] == ["-A", "cartsync.worker"], f"{where}: the Celery app is `-A worker`"
        subcommand = argv[3] if len(argv) > 3 else ""
        if subcommand == "worker":
            from celery.bin.worker import worker as celery_worker

            unknown = set(given_options(argv[4:])) - option_names(celery_worker)
            assert not unknown, f"{where}: `celery worker` has no option {sorted(unknown)}"
        else:
            # Flower is optional and not installed with cartsync, so its options go unchecked.
            assert subcommand == "flower", f"{where}: unexpected `celery {subcommand}`"
    else:
        raise AssertionError(f"{where}: {argv[0]!r} is neither cartsync nor celery")


def check_environment(environment: dict[str, Any], where: str) -> None:
    """Fail unless every CARTSYNC_* variable is a setting and its value (or default) parses."""
    cartsync = {k: str(v) for k, v in environment.items() if k.startswith("CARTSYNC_")}
    unknown = set(cartsync) - set(setting_names())
    assert not unknown, f"{where}: not cartsync settings: {sorted(unknown)}"
    load_settings({k: expand_defaults(v) for k, v in cartsync.items()})


def procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line)
        assert match, f"Procfile line is not `name: command`: {line!r}"
        processes[match.group(1)] = match.group(2)
    return processes


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    )
    return document


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return list(command) if isinstance(command, list) else shlex.split(command)


def compose_environment(service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return dict(environment)


def test_procfile_commands_exist():
    """Every Procfile process runs a cartsync or Celery command that exists, with real options."""
    processes = procfile()
    assert {"worker", "metrics"} <= set(processes)
    for name, command in processes.items():
        check_command(shlex.split(expand_defaults(command)), f"Procfile {name}")


def test_procfile_worker_uses_the_recommended_pool_and_settings():
    """The Procfile worker takes pool and concurrency from the settings, with their defaults."""
    command = procfile()["worker"]
    assert command.startswith("celery -A cartsync.worker worker ")
    expansions = dict(EXPANSION.findall(command))
    defaults = Settings()
    assert expansions["CARTSYNC_WORKER_POOL"] == defaults.worker_pool
    assert expansions["CARTSYNC_WORKER_CONCURRENCY"] == str(defaults.worker_concurrency)
    for variable in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", command):
        assert variable in setting_names(), f"Procfile uses {variable}, not a cartsync setting"


def test_compose_service_commands_exist():
    """Every docker-compose service other than Redis runs a command that exists in the project."""
    services = compose()["services"]
    assert {"redis", "worker", "sandbox", "metrics", "flower"} <= set(services)
    for name, service in services.items():
        if name == "redis":
            continue
        assert service.get("build"), f"service {name} is built from this project"
        check_command(compose_command(service), f"docker-compose {name}")


def test_compose_environment_holds_only_real_settings():
    """Every CARTSYNC_* variable docker-compose sets is a setting, with a value that parses."""
    for name, service in compose()["services"].items():
        check_environment(compose_environment(service), f"docker-compose {name}")


def test_compose_worker_depends_on_healthy_redis_and_scales():
    """The worker waits for a healthy Redis and has nothing that stops `--scale worker=N`."""
    services = compose()["services"]
    worker = services["worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "container_name" not in worker
    assert "ports" not in worker
    assert compose_command(worker)[:4] == ["celery", "-A", "cartsync.worker", "worker"]


def test_compose_redis_is_persistent_and_health_checked():
    """Redis keeps an append-only file on a volume and answers a redis-cli ping health check."""
    redis_service = compose()["services"]["redis"]
    command = compose_command(redis_service)
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis_service["volumes"])
    assert redis_service["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_compose_flower_is_optional():
    """Flower starts only with its profile, from an image that has Flower installed."""
    flower = compose()["services"]["flower"]
    assert flower["profiles"] == ["flower"]
    assert "flower" in flower["build"]["args"]["EXTRA_PACKAGES"]


def test_dockerfile_installs_the_project():
    """The image is built from python:3.11-slim with the wheel and the lock's hashed pins."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "uv export --frozen --no-dev --no-emit-project" in text
    assert re.search(r"^RUN pip install --require-hashes --no-deps -r ", text, re.MULTILINE)
    assert "pip install --no-deps /tmp/dist/cartsync-*.whl" in text
    uv_pin = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert uv_pin is not None
    assert f"pip install uv=={uv_pin.group(1)}" in text
    for package in ("config", "tasks", "worker", "sandbox"):
        assert f"COPY {package} " in text, f"the image lacks the {package} package"


@pytest.mark.parametrize(
    "argv",
    [
        ["cartsync", "nosuchcommand"],
        ["cartsync", "status", "--no-such-option"],
        ["celery", "-A", "cartsync.worker", "worker", "--no-such-option"],
        ["celery", "-A", "elsewhere", "worker"],
    ],
)
def test_a_wrong_command_is_caught(argv):
    """The command check rejects unknown subcommands, unknown options and another Celery app."""
    with pytest.raises(AssertionError):
        check_command(argv, "example")


def test_an_unknown_setting_is_caught():
    """The environment check rejects a CARTSYNC_ variable that is not a setting."""
    with pytest.raises(AssertionError):
        check_environment({"CARTSYNC_NO_SUCH_SETTING": "1"}, "example")
