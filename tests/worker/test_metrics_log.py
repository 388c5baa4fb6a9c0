"""The metrics log: outcomes counted with one command in the ledger's step script add up to
exactly what counting each one into the hashes would, folded or not yet folded."""

from __future__ import annotations

import json
import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cartsync.worker import keys
from cartsync.worker.ledger import METRICS_LOG_FOLD_AT, Finish, Ledger
from cartsync.worker.metrics import Metrics, log_entry, registry_for, with_log

PREFIX = "t"


def outcomes(n: int) -> list[tuple[str, str | None, int | None, float | None, str]]:
    """n varied outcomes: (outcome, reason, status, latency ms, merchant)."""
    kinds = [
        ("delivered", None, 200, 87.5, "shop1"),
        ("retrying", "server_error", 503, 1234.125, "shop1"),
        ("dead_lettered", "conflict", 409, 45.0, "ünïcode-shop"),
        ("delivered", None, 204, 0.3, "other-shop"),
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def finish_counting(ledger: Ledger, metrics: Metrics, n: int, now: float) -> None:
    """Count n outcomes the way a worker does: each as the entry of a finish step."""
    for i, (outcome, reason, status, latency, merchant) in enumerate(outcomes(n)):
        entry = log_entry(
            metrics.increments(
                outcome, reason, status, latency, merchant=merchant, enqueued_at=now - i % 7
            )
        )
        ledger.step(Finish(merchant, f"o{i}", f"u{i}", token="none", count=entry))


def test_logged_counts_equal_counts_made_one_by_one(redis_client):
    """Past several folds and with entries left unfolded, the totals read are the same as
    counting each outcome into the hashes with HINCRBY, sums of seconds included."""
    now = 1_000_000.0
    n = 3 * METRICS_LOG_FOLD_AT + 17
    logged = Metrics(redis_client, PREFIX, merchants=["shop1"], clock=lambda: now)
    finish_counting(Ledger(redis_client, PREFIX), logged, n, now)
    assert redis_client.llen(keys.metrics_log(PREFIX)) == 17

    direct = Metrics(redis_client, "direct", merchants=["shop1"], clock=lambda: now)
    pipe = redis_client.pipeline(transaction=False)
    for i, (outcome, reason, status, latency, merchant) in enumerate(outcomes(n)):
        direct.count_into(
            pipe,
            direct.increments(
                outcome, reason, status, latency, merchant=merchant, enqueued_at=now - i % 7
            ),
        )
    pipe.execute()

    for got, expected in zip(logged.totals(), direct.totals(), strict=True):
        assert got.keys() == expected.keys()
        for field, value in expected.items():
            assert math.isclose(float(got[field]), float(value), rel_tol=1e-12), field
    delivered = sum(1 for kind in outcomes(n) if kind[0] == "delivered")
    assert logged.totals().updates["delivered|"] == str(delivered)


def test_a_hash_field_a_fold_wrote_still_takes_hincrby(redis_client):
    """Counts folded from the log stay plain digits, so the direct counting of other outcomes
    (Metrics.observe) keeps adding to the same fields."""
    metrics = Metrics(redis_client, PREFIX)
    finish_counting(Ledger(redis_client, PREFIX), metrics, METRICS_LOG_FOLD_AT, 0.0)
    assert redis_client.llen(keys.metrics_log(PREFIX)) == 0
    metrics.observe("delivered", None, 200, 10.0)
    folded = METRICS_LOG_FOLD_AT // 2
    assert metrics.totals().updates["delivered|"] == str(folded + 1)


def test_a_scrape_counts_what_is_still_in_the_log(redis_client, settings):
    """An outcome counted a moment ago, still in the log, is in the very next scrape."""
    metrics = Metrics(redis_client, settings.key_prefix)
    entry = log_entry(metrics.increments("delivered", None, 200, 100.0))
    Ledger(redis_client, settings.key_prefix).step(Finish("m", "o", "u", "t", count=entry))
    text = generate_latest(registry_for(redis_client, settings)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("cartsync_updates_total", (("outcome", "delivered"), ("reason", "")))] == 1
    assert samples[("cartsync_attempts_total", ())] == 1


def test_with_log_adds_entries_and_skips_one_that_does_not_read():
    """The collector's arithmetic: entries add to the hashes' text values; a broken entry is
    left out rather than failing the scrape."""
    hashes = [{b"delivered|": b"2"}, {}, {b"2xx|sum": b"0.5"}, {}, {}]
    entries = [
        json.dumps([[1, "delivered|", 1], [3, "2xx|sum", 0.25], [2, "total", 1]]),
        b"not json",
        json.dumps([[9, "x", 1]]),
    ]
    updates, attempts, latency, _, _ = with_log(hashes, entries)
    assert (updates, attempts, latency) == (
        {"delivered|": "3"},
        {"total": "1"},
        {"2xx|sum": "0.75"},
    )


def test_a_sum_reads_the_same_to_the_last_bit_just_before_and_after_a_fold(redis_client):
    """The collector adds the unfolded entries up as the fold does, so a latency sum never
    reads lower after a fold (which Prometheus would take for a counter reset)."""
    metrics = Metrics(redis_client, PREFIX)
    ledger = Ledger(redis_client, PREFIX)
    redis_client.hincrbyfloat(keys.metrics_latency(PREFIX), "2xx|sum", 0.1)
    for i in range(METRICS_LOG_FOLD_AT - 1):
        entry = log_entry(metrics.increments("delivered", None, 200, 1000.0 / (i + 3)))
        ledger.step(Finish("m", f"o{i}", f"u{i}", "t", count=entry))
    before = float(metrics.totals().latency["2xx|sum"])
    last = log_entry(metrics.increments("superseded", None, None, None))
    ledger.step(Finish("m", "o", "u", "t", count=last))
    assert redis_client.llen(keys.metrics_log(PREFIX)) == 0
    assert float(metrics.totals().latency["2xx|sum"]) == before
    assert float(redis_client.hget(keys.metrics_latency(PREFIX), "2xx|sum")) == before


def test_entries_that_do_not_read_are_left_out_and_never_stop_a_step(redis_client):
    """A broken entry, an unknown hash number, or a metrics hash of the wrong type: the fold
    skips them, the step still records its finish, and the log is emptied."""
    ledger = Ledger(redis_client, PREFIX)
    log = keys.metrics_log(PREFIX)
    redis_client.rpush(log, "not json", json.dumps([[9, "x", 1], [1, "delivered|", 2]]))
    redis_client.set(keys.metrics_attempts(PREFIX), "not a hash")
    for i in range(METRICS_LOG_FOLD_AT - 2):
        entry = json.dumps([[1, "delivered|", 1], [2, "total", 1]])
        ledger.step(Finish("m", f"o{i}", f"u{i}", "t", delivered=1, count=entry))
    assert redis_client.llen(log) == 0
    assert ledger.versions("m", "o0") == (0, 1)
    updates = redis_client.hget(keys.metrics_updates(PREFIX), "delivered|")
    assert int(updates) == METRICS_LOG_FOLD_AT - 2 + 2
    assert redis_client.get(keys.metrics_attempts(PREFIX)) == b"not a hash"
