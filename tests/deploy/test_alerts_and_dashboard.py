"""deploy/: the Prometheus alert rules pass promtool and their unit tests, and every query of
the rules and of the Grafana dashboard names a metric cartsync really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from cartsync.worker.deadletters import AuditNote, DeadLetter, DeadLetterStore
from cartsync.worker.metrics import CartsyncCollector, HttpCollector, Metrics
from cartsync.worker.schedule import Schedule
from cartsync.worker.web.metrics import HttpMetrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cartsync.json"

#: Metrics Prometheus makes itself (not cartsync's to expose).
PROMETHEUS_OWN = frozenset({"up"})
#: PromQL words that look like names: keywords and what follows ``by``/``on``... is removed
#: before, functions are recognized by their parenthesis.
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    plain = _RANGES.sub(" ", _GROUPING.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", expr))))
    plain = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b", " ", plain)
    return {name for name in _NAME.findall(plain) if name.lower() not in KEYWORDS}


def test_metric_names_are_read_from_promql():
    """The PromQL reader finds the selected metrics and nothing else (functions, labels,
    keywords, durations, strings)."""
    expr = (
        'histogram_quantile(0.99, sum by (le, merchant) (rate(a_bucket{reason="x y"}[5m])))'
        " > 300 and on() max(b) == 0 or c offset 1h"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


@pytest.fixture
def exposed(redis_client, settings) -> set[str]:
    """Every sample name a real scrape of cartsync shows over a real Redis holding some of
    everything: outcomes, latencies, a delivery, a dead letter, an audited action, a
    heartbeat, an HTTP request."""
    now = time.time()
    metrics = Metrics(redis_client, settings.key_prefix, merchants=["shop1"])
    pipe = redis_client.pipeline(transaction=False)
    delivered = metrics.increments(
        "delivered", None, 200, 10.0, merchant="shop1", enqueued_at=now - 1
    )
    metrics.count_into(pipe, delivered)
    unauthorized = metrics.increments("dead_lettered", "unauthorized", 401, 10.0, merchant="x")
    metrics.count_into(pipe, unauthorized)
    pipe.execute()
    metrics.count_dropped(settings.queue)
    store = DeadLetterStore(redis_client, settings.key_prefix)
    letter_id = store.park(
        DeadLetter(
            update_id="u1", merchant="shop1", order_ref="o1", version=1, reason="conflict",
            status=409, errors=["x"], attempts=[], enqueued_at=now - 5, payload={"order": {}},
            dead_at=now - 1,
        )
    )  # fmt: skip
    store.record(AuditNote("reveal", "alice", "r1", "payload shown"), letter_id)
    Schedule(redis_client, settings.key_prefix).heartbeat("host:1", now)
    http = HttpMetrics(redis_client, settings.key_prefix)
    http.observe("/v1/orders", "PUT", 202, [0.002])
    http.flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CartsyncCollector(redis_client, settings))
    registry.register(HttpCollector(redis_client, settings.key_prefix))
    text = generate_latest(registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }


@pytest.mark.parametrize("source", [alert_expressions, dashboard_expressions])
def test_every_query_names_an_exposed_metric(source, exposed):
    """Each query of the alert rules and of the dashboard selects only metrics a scrape of
    cartsync really shows (or Prometheus' own ``up``), and selects at least one."""
    expressions = source()
    assert expressions
    unknown = {}
    for where, expr in expressions.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        missing = names - exposed - PROMETHEUS_OWN
        if missing:
            unknown[where] = sorted(missing)
    assert unknown == {}, f"not exposed by cartsync: {unknown}"


def test_the_dashboard_has_the_panels_on_call_needs():
    """The dashboard shows throughput, dead letters, the queue, both latencies, HTTP, live
    workers and the people's actions."""
    queries = " ".join(dashboard_expressions().values())
    for metric in (
        "cartsync_updates_total", "cartsync_dead_letters", "cartsync_queue_depth",
        "cartsync_scheduled_due", "cartsync_in_flight", "cartsync_queue_latency_seconds",
        "cartsync_delivery_latency_seconds_bucket", "cartsync_sequra_latency_seconds_bucket",
        "cartsync_http_requests_total", "cartsync_workers_alive",
        "cartsync_dead_letter_actions_total",
    ):  # fmt: skip
        assert metric in queries, metric


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run does it)",
)
@pytest.mark.parametrize(
    "args",
    [["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS_TEST)]],
    ids=["check", "unit-tests"],
)
def test_promtool_accepts_the_rules_and_their_tests(args):
    """promtool finds the rules valid, and its rule unit tests (deploy/prometheus/
    alerts_test.yml) see the dead-letter, no-worker, 401-burst and Redis alerts fire on the
    series they should and stay quiet otherwise."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
