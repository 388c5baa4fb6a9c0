"""The Lua scripts ship as files, each saying what it takes, and each is run by a module."""

import itertools
from importlib import resources
from pathlib import Path

from cartsync.worker import keys, scripts

WORKER = Path(__file__).resolve().parents[2] / "worker"


def script_names():
    package = resources.files(scripts.SCRIPTS_PACKAGE)
    return sorted(
        p.name.removesuffix(".lua")
        for p in package.iterdir()
        if p.name.endswith(".lua") and not p.name.startswith(scripts.LIBRARY_PREFIX)
    )


def test_every_script_lists_its_keys_and_arguments_first():
    """Each script opens with a comment that names its KEYS and, when it takes any, its ARGV."""
    for name in script_names():
        lines = scripts.source(name).splitlines()
        header = list(itertools.takewhile(lambda line: line.startswith("--"), lines))
        body = "\n".join(lines[len(header) :])
        assert "KEYS[1]" in "\n".join(header), name
        if "ARGV[" in body:
            assert "ARGV[1]" in "\n".join(header), name


def test_every_script_is_loaded_by_name_somewhere():
    """No script file is left over: each name is loaded by a module of the worker."""
    code = "\n".join(p.read_text() for p in WORKER.rglob("*.py"))
    for name in script_names():
        assert f'scripts.load(client, "{name}")' in code, name


def test_a_loaded_script_runs(redis_client):
    """A script loaded from its file runs in Redis (here: a sweep with nothing in flight)."""
    sweep = scripts.load(redis_client, "schedule_sweep")
    names = [keys.inflight("t"), keys.schedule("t"), "q"]
    assert sweep(keys=names, args=["1.0", 10]) == 0


def test_libraries_are_copied_in_and_nothing_is_left_to_include():
    """A script's ``-- #include versions`` becomes the library's functions, for every script."""
    for name in script_names():
        assert "#include" not in scripts.source(name), name
    assert "local function less(a, b)" in scripts.source("ledger_step")
    assert "local function less(a, b)" not in scripts._read("ledger_step")
