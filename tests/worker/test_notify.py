"""Dead-letter notifications (worker/notify.py) to a real HTTP receiver over loopback, with
the letters in a real Redis; the clock is the test's, so that intervals pass at once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from werkzeug import Response

from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetter, DeadLetterStore
from cartsync.worker.notify import (
    NewLetters,
    Notifier,
    NotifierThread,
    console_link,
    message,
    slot_of,
)
from tests import support
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env

sandbox = support.sandbox

INTERVAL_S = 60.0
#: Personal data in the letters' payloads: none of it may reach a message.
CUSTOMER = {"given_names": "Lucía", "surnames": "Pérez Gómez", "email": "lucia.perez@example.com"}


class Clock:
    """The test's time: ``sleep`` moves it on instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def next_interval(self) -> None:
        self.now = (slot_of(self.now, INTERVAL_S) + 1) * INTERVAL_S + 0.5


def start_of_interval() -> float:
    return (slot_of(time.time(), INTERVAL_S) - 5) * INTERVAL_S + 0.5


def park(store: DeadLetterStore, n: int, *, at: float, reason: str, merchant: str) -> str:
    return store.park(
        DeadLetter(
            update_id=f"u-{n}", merchant=merchant, order_ref=f"SECRET-ORDER-{n}", version=1,
            reason=reason, status=409, errors=[f"The diff is {n}"], attempts=[],
            enqueued_at=at - 5, payload={"order": {"customer": CUSTOMER}}, dead_at=at,
        )
    )  # fmt: skip


def notifier(redis_client, settings, url: str, clock: Clock, **overrides: Any) -> Notifier:
    configured = settings.with_overrides(
        notify_webhook_url=url,
        notify_interval_s=INTERVAL_S,
        console_base_url="https://cartsync.example.com",
        **overrides,
    )
    return Notifier(redis_client, configured, clock=clock, sleep=clock.sleep)


def posted(httpserver) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in httpserver.log]


def test_one_batched_message_for_several_letters(redis_client, settings, store, httpserver):
    """Letters parked in one interval make one message, with counts by reason and merchant
    and a console link, and none of the letters' personal data, order-refs or payloads; the
    next interval sends nothing for them again."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    clock = Clock(start_of_interval())
    for n, (reason, merchant) in enumerate(
        [("conflict", "shop1"), ("conflict", "shop1"), ("unauthorized", "camisas")]
    ):
        park(store, n, at=clock.now - 30 + n, reason=reason, merchant=merchant)
    sender = notifier(redis_client, settings, httpserver.url_for("/hook"), clock)
    assert sender.run_once() == "sent"
    (body,) = posted(httpserver)
    text = body["text"]
    assert "3 new dead letters" in text
    assert "By reason: conflict 2, unauthorized 1" in text
    assert "By merchant: shop1 2, camisas 1" in text
    assert "https://cartsync.example.com/console/letters?since=" in text
    assert body["blocks"][0]["text"]["text"] == text
    raw = json.dumps(body, ensure_ascii=False)
    for secret in [*CUSTOMER.values(), "SECRET-ORDER", "The diff is", "u-0"]:
        assert secret not in raw, secret
    clock.next_interval()
    assert sender.run_once() == "nothing"
    park(store, 9, at=clock.now - 20, reason="rejected", merchant="shop1")
    clock.next_interval()
    assert sender.run_once() == "sent"
    assert len(httpserver.log) == 2
    second = posted(httpserver)[1]["text"]
    assert "1 new dead letter " in second
    assert "By reason: rejected 1" in second
    assert "reason=rejected&merchant=shop1" in second


def test_a_failing_receiver_is_retried_and_the_letters_come_later(
    redis_client, settings, store, httpserver
):
    """A receiver that fails is tried again with backoff within the interval; the letters are
    not lost but counted in the next interval's message, together with newer ones."""
    httpserver.expect_request("/hook").respond_with_response(Response("down", status=503))
    clock = Clock(start_of_interval())
    first = park(store, 1, at=clock.now - 30, reason="conflict", merchant="shop1")
    park(store, 2, at=clock.now - 29, reason="conflict", merchant="shop1")
    sender = notifier(redis_client, settings, httpserver.url_for("/hook"), clock)
    assert sender.run_once() == "failed"
    assert len(httpserver.log) > 2
    cursor = keys.notify_cursor(settings.key_prefix)
    assert redis_client.get(cursor).decode() < first  # still before the letters: they wait
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("ok")
    clock.next_interval()
    park(store, 3, at=clock.now - 20, reason="rejected", merchant="camisas")
    assert sender.run_once() == "sent"
    (body,) = posted(httpserver)
    assert "3 new dead letters" in body["text"]
    assert "conflict 2, rejected 1" in body["text"]


def test_an_unreachable_receiver_fails_without_raising(redis_client, settings, store):
    """Nothing listening at the URL: the interval's send fails (logged), nothing is raised."""
    clock = Clock(start_of_interval())
    park(store, 1, at=clock.now - 30, reason="conflict", merchant="shop1")
    sender = notifier(redis_client, settings, "http://127.0.0.1:1/hook", clock)
    assert sender.run_once() == "failed"


def test_one_sender_per_interval_among_many_workers(redis_client, settings, store, httpserver):
    """Several workers' notifiers in the same interval: exactly one sends."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    clock = Clock(start_of_interval())
    park(store, 1, at=clock.now - 30, reason="conflict", merchant="shop1")
    url = httpserver.url_for("/hook")
    outcomes = [notifier(redis_client, settings, url, clock).run_once() for _ in range(4)]
    assert sorted(outcomes) == ["other", "other", "other", "sent"]
    assert len(httpserver.log) == 1


def test_off_unless_configured(redis_client, settings, store, httpserver):
    """Without CARTSYNC_NOTIFY_WEBHOOK_URL nothing is sent, whatever is parked."""
    clock = Clock(start_of_interval())
    park(store, 1, at=clock.now - 30, reason="conflict", merchant="shop1")
    sender = Notifier(redis_client, settings, clock=clock, sleep=clock.sleep)
    assert not sender.enabled
    assert sender.run_once() == "off"
    assert httpserver.log == []


def test_the_thread_stops_promptly(redis_client, settings):
    """A worker shutting down is not held up by its notifier thread."""
    thread = NotifierThread(
        Notifier(redis_client, settings.with_overrides(notify_webhook_url="http://127.0.0.1:1/"))
    )
    thread.start()
    thread.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_many_merchants_are_summed_up_and_refs_cannot_be_markup():
    """Past ten merchants the rest are summed up; a merchant-ref is shown cut short and with
    Slack's markup characters escaped."""
    by_merchant = {f"m{n:02d}": 1 for n in range(12)} | {"<!channel> & " + "x" * 100: 5}
    new = NewLetters(17, "1800000000000-aaaaaaaa", "1800000000001-bbbbbbbb", {"x": 17}, by_merchant)
    text = message(new, "")["text"]
    assert "&lt;!channel&gt; &amp; xxx" in text
    assert "<!channel>" not in text
    assert "x" * 70 not in text
    assert "and 3 of 3 other merchants" in text


@pytest.mark.slow
def test_a_real_worker_sends_the_notification(redis_client, store, httpserver, sandbox):
    """A Celery worker started with a webhook URL runs the notifier: a letter parked while
    it runs reaches the receiver in the next interval's message."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    env = worker_env(
        sandbox.url,
        CARTSYNC_SEQURA_USERNAME=SHOP.username,
        CARTSYNC_SEQURA_PASSWORD=SHOP.password,
        CARTSYNC_NOTIFY_WEBHOOK_URL=httpserver.url_for("/hook"),
        CARTSYNC_NOTIFY_INTERVAL_S="10",
    )
    with running_worker(env, concurrency=1) as worker:
        park(store, 1, at=time.time() - 5, reason="unauthorized", merchant=SHOP.ref)
        wait_for(
            lambda: len(httpserver.log) >= 1,
            timeout=40,
            what="the notification",
            on_fail=worker.log_text,
        )
    (body,) = posted(httpserver)
    assert "1 new dead letter " in body["text"]
    assert f"By merchant: {SHOP.ref} 1" in body["text"]


@pytest.mark.parametrize(
    ("by_reason", "by_merchant", "expected"),
    [
        ({"conflict": 2}, {"shop1": 2}, "&reason=conflict&merchant=shop1"),
        ({"conflict": 1, "rejected": 1}, {"shop1": 2}, "&merchant=shop1"),
        ({"conflict": 1, "rejected": 1}, {"a": 1, "b": 1}, ""),
    ],
)
def test_console_link_filters_to_what_is_common(by_reason, by_merchant, expected):
    """The link narrows to the reason or merchant when all new letters share it."""
    new = NewLetters(2, "1800000000000-aaaaaaaa", "1800000061500-bbbbbbbb", by_reason, by_merchant)
    link = console_link("https://c.example/", new)
    assert link == (
        "https://c.example/console/letters?since=2027-01-15T08%3A00%3A00Z"
        "&until=2027-01-15T08%3A01%3A02Z" + expected
    )
    assert console_link("", new) == ""
    assert "cartsync dlq list" in message(new, "")["text"]
