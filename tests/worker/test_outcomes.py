"""The pure decision: what an HTTP answer (or its absence) means for an update."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from cartsync.worker.outcomes import (
    BODY_LIMIT,
    CallResult,
    Kind,
    Outcome,
    Reason,
    Verdict,
    classify_exception,
    classify_response,
    kind_for_status,
    parse_retry_after,
    verdict,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Kind.DELIVERED),
        (202, Kind.DELIVERED),
        (204, Kind.DELIVERED),
        (409, Kind.CONFLICT),
        (400, Kind.REJECTED),
        (404, Kind.REJECTED),
        (422, Kind.REJECTED),
        (401, Kind.UNAUTHORIZED),
        (403, Kind.UNAUTHORIZED),
        (429, Kind.RETRYABLE),
        (500, Kind.RETRYABLE),
        (502, Kind.RETRYABLE),
        (503, Kind.RETRYABLE),
        (504, Kind.RETRYABLE),
    ],
)
def test_status_codes_follow_the_design_table(status, kind):
    """Each status in the README's outcome table maps to the kind the table names."""
    assert classify_response(status, {}, "", 1.0).kind is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [(201, Kind.DELIVERED), (408, Kind.RETRYABLE), (301, Kind.REJECTED), (307, Kind.REJECTED)],
)
def test_statuses_the_table_leaves_out_are_decided_as_documented(status, kind):
    """Other 2xx are delivered, 408 is a time-out and redirects go to a human."""
    assert kind_for_status(status) is kind


@given(st.integers(min_value=100, max_value=599))
def test_only_timeouts_rate_limits_and_server_errors_are_retried(status):
    """A status is retryable exactly when it is 408, 429 or 5xx: nothing else is resent."""
    retryable = kind_for_status(status) is Kind.RETRYABLE
    assert retryable == (status in (408, 429) or status >= 500)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Verdict(Outcome.DELIVERED)),
        (204, Verdict(Outcome.DELIVERED)),
        (409, Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.CONFLICT)),
        (400, Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.REJECTED)),
        (404, Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.REJECTED)),
        (401, Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.UNAUTHORIZED)),
        (403, Verdict(Outcome.DEAD_LETTERED, parked_as=Reason.UNAUTHORIZED)),
        (429, Verdict(Outcome.RETRYING, retry_reason="unavailable")),
        (503, Verdict(Outcome.RETRYING, retry_reason="unavailable")),
    ],
)
def test_verdict_follows_the_readme_table(status, expected):
    """Each answer in the README's outcome table comes to the outcome and reason it names."""
    assert verdict(classify_response(status, {}, "", 1.0), out_of_retries=False) == expected


@pytest.mark.parametrize(
    "errors",
    [
        ["This order cannot be upsold"],
        ["Order CANNOT BE UPSOLD above 15% of its original value"],
        ["Upselling is not allowed for this order"],
        ["Access denied", "upsell refused"],
    ],
)
def test_a_403_refusing_an_upsell_is_a_conflict(errors):
    """A 403 whose errors mention an upsell ("upsell", "upsold", any case) is parked as a
    conflict, as a 409 would be, not as a credentials problem."""
    call = classify_response(403, {}, json.dumps({"errors": errors}), 1.0)
    assert verdict(call, out_of_retries=False) == Verdict(
        Outcome.DEAD_LETTERED, parked_as=Reason.CONFLICT
    )


def test_a_403_in_plain_text_refusing_an_upsell_is_a_conflict():
    """Without an ``errors`` list, the body's text is what mentions the upsell."""
    call = classify_response(403, {}, "This order cannot be upsold.", 1.0)
    assert verdict(call, out_of_retries=True).parked_as is Reason.CONFLICT


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"errors": ["You do not have access to this URL"]}),
        (403, {"errors": []}),
        (401, {"errors": ["This order cannot be upsold"]}),
    ],
)
def test_other_401_and_403_answers_stay_unauthorized(status, body):
    """A 403 that says nothing about upselling, and any 401, is still about credentials."""
    call = classify_response(status, {}, json.dumps(body), 1.0)
    assert verdict(call, out_of_retries=False).parked_as is Reason.UNAUTHORIZED


def test_a_call_without_answer_retries_under_its_exception_name():
    """A time-out is retried, and the reason logged is the exception's class name."""
    call = classify_exception(requests.Timeout("slow"), 3.0)
    assert verdict(call, out_of_retries=False) == Verdict(Outcome.RETRYING, retry_reason="Timeout")


@pytest.mark.parametrize("status", [200, 409, 401])
def test_exhausted_retries_only_change_retryable_calls(status):
    """Running out of retries parks a retryable call as exhausted and changes nothing else."""
    call = classify_response(status, {}, "", 1.0)
    assert verdict(call, out_of_retries=True) == verdict(call, out_of_retries=False)
    retryable = classify_response(500, {}, "", 1.0)
    assert verdict(retryable, out_of_retries=True) == Verdict(
        Outcome.DEAD_LETTERED, Reason.EXHAUSTED
    )


def test_outcomes_log_as_their_plain_names():
    """Outcomes are strings equal to the names logs and metrics have always carried."""
    assert [str(o) for o in Outcome] == [
        "delivered", "dead_lettered", "retrying", "superseded", "deferred", "duplicate",
        "interrupted", "failed",
    ]  # fmt: skip
    assert json.dumps({"outcome": Outcome.DEAD_LETTERED}) == '{"outcome": "dead_lettered"}'


def test_dead_letter_store_knows_every_reason():
    """The dead-letter store's reasons are exactly the outcome table's (kept in step)."""
    from cartsync.worker.deadletters import Reason as StoredReason

    assert [r.value for r in StoredReason] == [r.value for r in Reason]


def test_outcome_carries_status_latency_and_sequra_errors():
    """seQura's error strings come back as the outcome's errors, with status and latency."""
    body = json.dumps({"errors": ["Invalid data: In shipped_cart, something"]})
    outcome = classify_response(409, {"Content-Type": "application/json"}, body, 12.5)
    assert outcome == CallResult(
        kind=Kind.CONFLICT,
        status=409,
        errors=["Invalid data: In shipped_cart, something"],
        retry_after_s=None,
        latency_ms=12.5,
        body=body,
        exception=None,
    )


def test_error_objects_are_reduced_to_their_title():
    """An errors entry that is an object with a title becomes that title."""
    body = json.dumps({"errors": [{"title": "Order not found", "code": 17}, "plain"]})
    assert classify_response(404, {}, body, 1.0).errors == ["Order not found", "plain"]


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[1, 2]", '{"message": "nope"}', '{"errors": null}', "<html>502</html>"],
)
def test_bodies_without_an_errors_list_give_no_errors(body):
    """A body that is not seQura's error shape gives an empty errors list, not a crash."""
    outcome = classify_response(502, {}, body, 1.0)
    assert outcome.errors == []
    assert outcome.body == body


def test_body_is_cut_to_a_sane_length():
    """A huge body is kept only up to BODY_LIMIT characters."""
    outcome = classify_response(500, {}, "x" * (BODY_LIMIT * 5), 1.0)
    assert len(outcome.body) == BODY_LIMIT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_retry_after_in_seconds(value, seconds):
    """Retry-After given as delay-seconds is read as that many seconds."""
    assert parse_retry_after(value) == seconds


def test_retry_after_as_http_date_is_seconds_from_now():
    """Retry-After given as an HTTP date is the time left until that date."""
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(when, now=NOW) == 90.0


def test_retry_after_date_in_the_past_means_now():
    """An HTTP date already past gives 0 seconds, never a negative wait."""
    when = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(when, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "-5", "soon", "nan", "inf", "12abc", "Mon, 99 Foo"])
def test_unusable_retry_after_is_ignored(value):
    """A negative, non-finite or unreadable Retry-After gives None."""
    assert parse_retry_after(value) is None


def test_retry_after_header_is_found_whatever_its_case():
    """The header is read from a plain dict whatever case its name has."""
    outcome = classify_response(429, {"retry-after": "3"}, "", 1.0)
    assert outcome.kind is Kind.RETRYABLE
    assert outcome.retry_after_s == 3.0


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_and_never_goes_negative(value):
    """Whatever a server sends as Retry-After, the answer is None or a finite wait >= 0."""
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@pytest.mark.parametrize(
    "exc",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("connect timed out"),
        requests.ConnectionError("refused"),
        ConnectionResetError("reset"),
    ],
)
def test_no_answer_is_retryable(exc):
    """Time-outs and connection errors are retryable, with no status and the class name."""
    outcome = classify_exception(exc, 501.0)
    assert outcome.kind is Kind.RETRYABLE
    assert outcome.status is None
    assert outcome.exception == type(exc).__name__
    assert outcome.latency_ms == 501.0


def test_exception_message_is_not_kept():
    """Only the exception's class name is kept, since its message can carry URLs and hosts."""
    exc = requests.ConnectionError("https://user:hunter2@example.test/merchants/x failed")
    outcome = classify_exception(exc, 1.0)
    assert "hunter2" not in repr(outcome)
    assert "hunter2" not in json.dumps(outcome.as_dict())


def test_as_dict_is_json_ready():
    """An outcome turns into plain JSON (kind as its string value) for dead letters."""
    data = classify_response(503, {"Retry-After": "4"}, '{"errors": ["down"]}', 3.0).as_dict()
    assert json.loads(json.dumps(data))["kind"] == "retryable"
    assert data["retry_after_s"] == 4.0
