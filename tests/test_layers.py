"""Imports go one way: down the layers of docs/ARCHITECTURE.md, never up or sideways.

Each module under config/, tasks/, worker/ and sandbox/ is read as source (``ast``, nothing is
imported) and every ``cartsync.*`` import it makes, at the top or inside a function, is checked
against :data:`LAYERS`, the one table that places each module. A new module must be placed
there (by its name or by a prefix that covers it) before the suite passes.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The repository's folders and the package each is installed as.
FOLDERS = {
    "config": "cartsync.config",
    "tasks": "cartsync.tasks",
    "worker": "cartsync.worker",
    "sandbox": "cartsync.sandbox",
}

ENTRY, USE_CASE, ADAPTER, DOMAIN, FOUNDATION = (
    "entry points", "use cases", "adapters", "domain", "foundation",
)  # fmt: skip
#: A separate program: a local stand-in for seQura.
SANDBOX = "sandbox"

#: The layers from the bottom up: a module may import its own layer and the ones below.
ORDER = (FOUNDATION, DOMAIN, ADAPTER, USE_CASE, ENTRY)

#: Every module and its layer. A name covers that module only; a name ending in ``*`` covers
#: every module whose name starts so (a package and all it holds, or ``replay*`` for replay
#: and replay_pool). The longest matching name wins.
LAYERS: dict[str, str] = {
    # Entry points: may import everything below (and start the sandbox, for the demo).
    "cartsync.worker": ENTRY,  # the package: finds the Celery app for `celery -A`
    "cartsync.worker.celeryapp": ENTRY,
    "cartsync.worker.runtime": ENTRY,  # the composition root
    "cartsync.worker.processes": ENTRY,  # the demo's worker child processes
    "cartsync.worker.cli*": ENTRY,
    "cartsync.worker.web*": ENTRY,  # the HTTP app
    # Use cases.
    "cartsync.tasks.producer": USE_CASE,
    "cartsync.tasks.order_update": USE_CASE,
    "cartsync.tasks.failures": USE_CASE,
    "cartsync.tasks.services": USE_CASE,
    "cartsync.worker.replay*": USE_CASE,
    # Adapters: Redis, HTTP, logging, processes.
    "cartsync.config.logging": ADAPTER,
    "cartsync.worker.ledger": ADAPTER,
    "cartsync.worker.outcome_records": ADAPTER,
    "cartsync.worker.schedule": ADAPTER,
    "cartsync.worker.deadletters*": ADAPTER,
    "cartsync.worker.client": ADAPTER,
    "cartsync.worker.metrics": ADAPTER,
    "cartsync.worker.health": ADAPTER,
    "cartsync.worker.notify": ADAPTER,
    "cartsync.worker.redisserver": ADAPTER,
    "cartsync.worker.redisconn": ADAPTER,  # the one Redis client factory (and Sentinel)
    "cartsync.worker.redisgroup": ADAPTER,  # master, replicas, Sentinels (failover bench)
    "cartsync.worker.scripts": ADAPTER,
    "cartsync.worker.lua": ADAPTER,  # the scripts' folder
    "cartsync.worker.versions": ADAPTER,  # reads what is installed
    # Domain: pure rules and data.
    "cartsync.config": DOMAIN,  # the package: re-exports the settings
    "cartsync.config.settings": DOMAIN,
    "cartsync.config.merchants": DOMAIN,
    "cartsync.config.producers": DOMAIN,  # the HTTP producers file format
    "cartsync.config.tomlfile": DOMAIN,  # what the merchants and producers files share
    "cartsync.tasks.codec": DOMAIN,
    "cartsync.tasks.examples": DOMAIN,  # the reference's example bodies (tests, bench)
    "cartsync.tasks": DOMAIN,  # the package: a docstring
    "cartsync.tasks.message": DOMAIN,
    "cartsync.tasks.schemas*": DOMAIN,
    "cartsync.tasks.validation": DOMAIN,
    "cartsync.tasks.builders": DOMAIN,
    "cartsync.worker.backoff": DOMAIN,
    "cartsync.worker.outcomes": DOMAIN,
    "cartsync.worker.clock": DOMAIN,
    "cartsync.worker.timefmt": DOMAIN,
    # Foundation: imports nothing of cartsync.
    "cartsync.worker.errors": FOUNDATION,
    "cartsync.worker.keys": FOUNDATION,
    "cartsync.worker.redistext": FOUNDATION,
    "cartsync.worker.urls": FOUNDATION,
    "cartsync.worker.redisurl": FOUNDATION,  # the sentinel:// URL form
    "cartsync.worker.basicauth": FOUNDATION,  # HTTP Basic, shared with the sandbox
    # The sandbox.
    "cartsync.sandbox*": SANDBOX,
}

#: Besides the foundation, what the sandbox may import: the merchant-accounts file format.
SANDBOX_MAY_IMPORT = frozenset({"cartsync.config.merchants"})


def layer_of(module: str) -> str | None:
    """The layer :data:`LAYERS` places ``module`` in, or None when no entry covers it."""
    matches = [
        name
        for name in LAYERS
        if module == name or (name.endswith("*") and module.startswith(name[:-1]))
    ]
    return LAYERS[max(matches, key=len)] if matches else None


def allowed(importer: str, target: str) -> bool:
    """Whether a module in layer ``importer`` may import ``target`` (a module name)."""
    to = layer_of(target)
    if to is None:
        return False
    if importer == SANDBOX:
        return to in (SANDBOX, FOUNDATION) or target in SANDBOX_MAY_IMPORT
    if to == SANDBOX:
        return importer == ENTRY
    return ORDER.index(to) <= ORDER.index(importer)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: its dotted name -> its file."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports_of(module: str, source: str, known: Collection[str] = ()) -> set[str]:
    """The modules ``source`` (the text of ``module``) imports, anywhere in it.

    ``from package import name`` counts as importing ``package.name`` when that is a module in
    ``known``, else as importing ``package``. Relative imports are resolved against
    ``module``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # A package (a module others live in) is its own anchor; a module, its parent.
                is_package = any(other.startswith(module + ".") for other in known)
                parts = module.split(".")
                anchor = parts[: len(parts) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def violations(sources: Mapping[str, str], known: Collection[str]) -> list[str]:
    """One line per import in ``sources`` (module name -> text) that breaks the layers."""
    problems = []
    for module, source in sorted(sources.items()):
        layer = layer_of(module)
        if layer is None:
            continue  # reported by test_every_module_has_a_layer
        for target in sorted(imports_of(module, source, known)):
            if not target.startswith("cartsync.") or allowed(layer, target):
                continue
            to = layer_of(target) or "no layer"
            way = "sideways" if SANDBOX in (layer, to) else "upward"
            problems.append(f"{module} ({layer}) imports {target} ({to}): {way}")
    return problems


def _sources() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in modules().items()}


def _top_level_imports(folder: str) -> Iterator[tuple[Path, str]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield path, node.module.split(".")[0]


def test_every_module_has_a_layer():
    """Each module of the package is placed in a layer by the table (a new one must be)."""
    unplaced = [name for name in modules() if layer_of(name) is None]
    assert unplaced == [], f"add these modules to LAYERS in tests/test_layers.py: {unplaced}"


def test_imports_go_down_the_layers():
    """No module imports a higher layer, and the sandbox only the foundation and the
    merchant-accounts format (nor does anything but an entry point import the sandbox)."""
    problems = violations(_sources(), set(modules()))
    assert problems == [], "imports against the layers:\n" + "\n".join(problems)


def _crossing(folder: str, other: str) -> set[str]:
    """Files under ``folder`` that import ``other``."""
    return {str(p.relative_to(ROOT)) for p, top in _top_level_imports(folder) if top == other}


def test_tests_do_not_import_bench():
    """The tests stand alone: nothing under tests/ imports the benchmarks."""
    assert _crossing("tests", "bench") == set()


def test_bench_does_not_import_tests():
    """The benchmarks stand alone: nothing under bench/ imports the tests."""
    assert _crossing("bench", "tests") == set()


def test_checker_reports_an_upward_import():
    """An import from the domain into an adapter, even inside a function, is reported with
    both modules and both layers."""
    source = "def later():\n    from cartsync.worker.ledger import Ledger\n"
    known = {"cartsync.worker.backoff", "cartsync.worker.ledger"}
    assert violations({"cartsync.worker.backoff": source}, known) == [
        "cartsync.worker.backoff (domain) imports cartsync.worker.ledger (adapters): upward"
    ]


def test_checker_reports_the_sandbox_reaching_sideways():
    """The sandbox importing the worker's client is reported; importing the foundation, the
    merchant-accounts format or a module of the same layer is not."""
    source = (
        "from cartsync.worker import client, errors\n"
        "from cartsync.config.merchants import load_merchants_file\n"
        "from cartsync.sandbox import rules\n"
        "from cartsync.tasks.schemas import fields\n"
    )
    known = {
        "cartsync.worker.client", "cartsync.worker.errors", "cartsync.sandbox.rules",
        "cartsync.tasks.schemas.fields",
    }  # fmt: skip
    assert violations({"cartsync.sandbox.state": source}, known) == [
        "cartsync.sandbox.state (sandbox) imports cartsync.tasks.schemas.fields (domain): sideways",
        "cartsync.sandbox.state (sandbox) imports cartsync.worker.client (adapters): sideways",
    ]
