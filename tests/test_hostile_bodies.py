"""Hostile JSON, end to end: refused at the door with a path, or delivered or parked.

Hypothesis takes a valid update and spoils it the ways hostile or broken producers do: NaN and
infinities, integers of any size, deep nesting, odd unicode (lone surrogates, NUL, right-to-left
marks), empty and colliding identifiers (``:`` in a ref), duplicate keys, unknown keys. Each
body goes, as text, through ``cartsync validate`` and ``cartsync enqueue``, which must agree and
never print a traceback. Then a real worker delivers what was accepted to the sandbox: every
accepted update must end delivered, superseded or in the dead-letter store, nothing stuck, and
the worker's log must hold no traceback.

``python -m bench.fuzz`` runs this test with more examples and prints its figures.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartsync.tasks import codec
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import order_identity
from cartsync.worker import keys
from cartsync.worker.cli import cli
from cartsync.worker.deadletters import DeadLetterStore
from cartsync.worker.errors import InvalidUpdate
from cartsync.worker.ledger import Ledger
from cartsync.worker.schedule import Schedule
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: Examples per run; ``bench/fuzz.py`` raises it through the environment.
EXAMPLES = int(os.environ.get("CARTSYNC_FUZZ_EXAMPLES", "150"))
#: Where to write the run's figures (cases, refused, accepted, crashes), when set.
REPORT = os.environ.get("CARTSYNC_FUZZ_REPORT")
#: Seconds the worker gets to bring every accepted update to its outcome.
SETTLE_S = 120.0

#: Paths of the valid body that a mutation may overwrite, and new keys it may add.
PATHS = [
    ("order", "merchant", "id"),
    ("order", "merchant_reference", "order_ref_1"),
    ("order", "shipped_cart", "order_total_with_tax"),
    ("order", "shipped_cart", "items", 0, "quantity"),
    ("order", "shipped_cart", "items", 0, "price_with_tax"),
    ("order", "shipped_cart", "items", 0, "total_with_tax"),
    ("order", "shipped_cart", "items", 0, "name"),
    ("order", "shipped_cart", "currency"),
    ("order", "platform", "name"),
    ("order", "note"),
    ("order", "shipped_cart", "items", 0, "gift"),
    ("order", "customer_extra", "deep"),
]

ODD_TEXT = [
    "", " ", "\x00", "\ud800", "\udfff", "\u202e", "\u200b", "x:y", "%3A", ":", "%", "ä" * 300,
    "A14/12345", "💳", "\ufeff",
]


def nested(depth: int) -> Any:
    value: Any = 1
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


hostile_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=4000).map(lambda n: 10**n),  # within str() limits
    st.integers(min_value=1, max_value=3000).map(nested),
    st.sampled_from(ODD_TEXT),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
    st.none(),
    st.booleans(),
)


def set_at(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = body
    for step in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(step, {})
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return
    fits_list = isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)
    if isinstance(node, dict) or fits_list:
        node[path[-1]] = value


@st.composite
def hostile_texts(draw: Callable[..., Any]) -> str:
    """A valid body's JSON text with one to three spoiled values, maybe a duplicate key."""
    ref = draw(st.sampled_from(["H-1", "H-2", "x:y", "x", "y:1"]))
    body = fully_shipped(merchant=SHOP.ref, order_ref=ref, items=[Item("sku1", "shirt", 1250)])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        set_at(body, draw(st.sampled_from(PATHS)), draw(hostile_values))
    try:
        text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    except RecursionError:
        text = json.dumps({"order": "[" * 5000 + "]" * 5000})
    if draw(st.booleans()):
        # A duplicate key, as sloppy encoders write them: the last one wins in every decoder.
        text = text.replace('"id": ', '"id": "shadow", "id": ', 1)
    return text


class Figures:
    def __init__(self) -> None:
        self.cases = self.refused = self.accepted = self.crashes = self.disagreements = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def run_cli(runner: CliRunner, args: list[str], text: str) -> Any:
    return runner.invoke(cli, args, input=text.encode("utf-8", "surrogatepass"))


def crashed(result: Any) -> bool:
    unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
    return unexpected or "Traceback" in result.output


def test_hostile_bodies_are_refused_or_end_delivered_or_parked(redis_client, shop_sandbox):
    """Every hostile body is refused with a path, or accepted and brought to an outcome."""
    env = worker_env(
        shop_sandbox.url,
        CARTSYNC_SEQURA_USERNAME=SHOP.username,
        CARTSYNC_SEQURA_PASSWORD=SHOP.password,
    )
    runner = CliRunner(env=env)
    figures = Figures()
    accepted: dict[str, tuple[str, str]] = {}
    problems: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_texts())
    def feed(text: str) -> None:
        figures.cases += 1
        checked = run_cli(runner, ["validate", "-"], text)
        update_id = uuid.uuid4().hex
        queued = run_cli(runner, ["enqueue", "-", "--update-id", update_id], text)
        for name, result in (("validate", checked), ("enqueue", queued)):
            if crashed(result):
                figures.crashes += 1
                problems.append(f"{name} crashed on {text[:200]!r}: {result.exception!r}")
                return
        if (checked.exit_code == 0) != (queued.exit_code == 0):
            figures.disagreements += 1
            problems.append(
                f"validate exit {checked.exit_code}, enqueue exit {queued.exit_code}: "
                f"{text[:200]!r}"
            )
            return
        if queued.exit_code != 0:
            figures.refused += 1
            if not queued.stderr.strip():
                problems.append(f"refused without a word: {text[:200]!r}")
            return
        figures.accepted += 1
        try:
            identity = order_identity(codec.decode(text))
        except InvalidUpdate as exc:
            figures.disagreements += 1
            problems.append(f"enqueue accepted what the codec refuses ({exc}): {text[:200]!r}")
            return
        assert identity is not None
        accepted[update_id] = identity

    feed()
    prefix = "cartsync"
    ledger = Ledger(redis_client, prefix)
    schedule = Schedule(redis_client, prefix)
    store = DeadLetterStore(redis_client, prefix)
    with running_worker(env) as worker:

        def settled() -> bool:
            return schedule.depth() == 0 and schedule.in_flight() == 0

        wait_for(settled, what="every accepted update to reach its outcome", timeout=SETTLE_S)
        log = worker.log_text()
    for update_id, (merchant, order_ref) in accepted.items():
        raw = redis_client.get(keys.update(prefix, update_id))
        enqueued, delivered = ledger.versions(merchant, order_ref)
        version = int(raw) if raw is not None else enqueued
        if not (delivered >= version or store.holds_update(update_id) or enqueued > version):
            problems.append(f"update {update_id} of {order_ref!r} v{version} ended nowhere")
    if "Traceback" in log:
        problems.append("the worker logged a traceback:\n" + log[log.index("Traceback"):][:3000])
    if REPORT:
        Path(REPORT).write_text(json.dumps(figures.as_dict()), encoding="utf-8")
    assert not problems, "\n".join(problems[:20])
    assert figures.refused, figures.as_dict()
    assert figures.accepted, figures.as_dict()
