"""``cartsync --version``: what an incident report needs to say about the installation."""

from __future__ import annotations

import platform
import re
from importlib import metadata

from click.testing import CliRunner

from cartsync.worker.cli import cli
from cartsync.worker.versions import NOT_INSTALLED, versions


def test_version_names_cartsync_and_the_parts_it_runs_on() -> None:
    """--version prints one line each for cartsync, celery, kombu, redis-py and Python."""
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    names = [line.split(" ")[0] for line in result.output.splitlines()]
    assert names == ["cartsync", "celery", "kombu", "redis-py", "Python"]
    assert f"cartsync {metadata.version('cartsync')}" in result.output
    assert f"redis-py {metadata.version('redis')}" in result.output
    assert f"Python {platform.python_version()}" in result.output


def test_every_version_is_a_version_number() -> None:
    """Each component reports a dotted version, not a placeholder, in a working install."""
    found = versions()
    assert NOT_INSTALLED not in found.values()
    assert all(re.match(r"\d+\.\d+", version) for version in found.values())
