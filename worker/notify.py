"""Dead-letter notifications: one Slack-compatible message per interval when letters appear.

When ``CARTSYNC_NOTIFY_WEBHOOK_URL`` is set, every worker runs a :class:`NotifierThread` next
to its schedule pump. Running in the workers rather than as a process of its own means an
operator has nothing more to deploy, keep alive or monitor: as long as any worker runs,
notifications go out (and when none runs, the "no worker" alert fires instead). Many workers
agree through Redis that exactly one of them sends each interval's message:

- time is cut into intervals of ``CARTSYNC_NOTIFY_INTERVAL_S``; at the start of each, every
  thread tries to take that interval's lock (``SET NX EX``, ``keys.notify_lock``) and only the
  one that gets it goes on;
- a cursor in Redis (``keys.notify_cursor``) holds the id of the last letter notified.
  Letter ids start with the time of death in milliseconds and the index of every letter is
  ordered by id, so the letters after the cursor are exactly the new ones. The cursor moves
  only once the receiver has taken the message: a send that fails (after retries with
  backoff, all within half an interval, so that it never overlaps the next interval's
  sender) leaves the cursor where it was, and the next interval's message counts those
  letters too. No letter is notified twice or skipped;
- a letter is looked at only once it is :data:`SETTLE_S` old, so that a letter a worker was
  parking while the sender read (its id made a moment before) is not passed over.

The message holds counts by reason and merchant, the time range and a link to the console's
letters page filtered to it; never a payload, an order-ref or anything about a customer.
Letters taken out (replayed, dropped) before their interval's message are not counted, and
neither are imported letters (their ids carry their original time of death).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import redis
import requests

from cartsync.config.logging import get_logger
from cartsync.config.settings import Settings
from cartsync.worker import keys
from cartsync.worker.deadletters import DeadLetterStore, id_bound, id_time

log = get_logger("cartsync.notify")

#: Seconds a letter must be old before it is counted: longer than a park takes from making
#: the letter's id to storing it, and than the clocks of the workers disagree.
SETTLE_S = 10.0
#: Merchants named in a message, the largest counts first; the rest are summed up.
MERCHANTS_SHOWN = 10
#: Characters of a merchant-ref shown in a message (a ref is whatever a producer sent).
NAME_LIMIT = 64
#: Seconds one POST may take at most (less when the interval's budget is nearly spent).
POST_TIMEOUT_S = 10.0
#: Seconds before the first retry of a failed POST; doubled for each further one.
RETRY_FIRST_S = 1.0
#: A message's retries stop after this share of the interval, so that one interval's sender
#: has finished before the next interval's starts.
SEND_BUDGET = 0.5
#: Seconds past the start of an interval at which the threads try for its lock.
START_DELAY_S = 0.5


@dataclass(frozen=True)
class NewLetters:
    """What appeared in the store between the cursor and the settle bound: counts only."""

    total: int
    first_id: str
    last_id: str
    by_reason: dict[str, int] = field(default_factory=dict)
    by_merchant: dict[str, int] = field(default_factory=dict)

    @property
    def first_at(self) -> float:
        """When the first new letter died (seconds since the epoch)."""
        return _time_of(self.first_id)

    @property
    def last_at(self) -> float:
        return max(self.first_at, _time_of(self.last_id))


def _time_of(letter_id: str) -> float:
    """When a letter died, by its id; 0 for a damaged id (written by hand), so that one such
    entry never stops the notifications."""
    try:
        return id_time(letter_id)
    except ValueError:
        return 0.0


def slot_of(now: float, interval_s: float) -> int:
    """The number of the interval ``now`` falls in."""
    return math.floor(now / interval_s)


def console_link(base_url: str, new: NewLetters) -> str:
    """The console's letters page filtered to ``new``'s time range (and its one reason or
    merchant, when there is only one): a link to paste into a ticket. '' without a base URL."""
    if not base_url:
        return ""
    params = {
        "since": _iso(math.floor(new.first_at)),
        "until": _iso(math.floor(new.last_at) + 1),
    }
    if len(new.by_reason) == 1:
        params["reason"] = next(iter(new.by_reason))
    if len(new.by_merchant) == 1:
        params["merchant"] = next(iter(new.by_merchant))
    return f"{base_url.rstrip('/')}/console/letters?{urlencode(params)}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown_name(name: str) -> str:
    """A merchant-ref as a message shows it: cut to :data:`NAME_LIMIT` characters, and with
    ``&``, ``<`` and ``>`` escaped as Slack asks, so that a ref cannot be read as markup
    (``<!channel>`` would call everyone in the channel)."""
    cut = name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 1] + "…"
    return cut.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _listed(counts: Mapping[str, int], most: int) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{shown_name(name)} {count}" for name, count in ranked[:most])
    others = ranked[most:]
    if not others:
        return shown
    rest = sum(count for _, count in others)
    return f"{shown} and {rest} of {len(others)} other merchants"


def message(new: NewLetters, link: str) -> dict[str, Any]:
    """The webhook's JSON body: Slack's ``text`` (what any receiver can show) and a
    ``blocks`` section with the same words."""
    noun = "dead letter" if new.total == 1 else "dead letters"
    when = f"{_iso(new.first_at)} to {_iso(new.last_at)}"
    lines = [
        f"cartsync: {new.total} new {noun} ({when})",
        f"By reason: {_listed(new.by_reason, len(new.by_reason))}",
        f"By merchant: {_listed(new.by_merchant, MERCHANTS_SHOWN)}",
        f"Console: {link}" if link else "See them with `cartsync dlq list --since 1h`",
    ]
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


#: Sends one message: True when the receiver took it. ``timeout_s`` bounds the call.
Post = Callable[[str, dict[str, Any], float], bool]


def post_json(url: str, body: dict[str, Any], timeout_s: float) -> bool:
    """POST ``body`` as JSON; True on a 2xx. Never follows a redirect (it could carry the
    message elsewhere), never raises for the network: a failure is False, logged without
    the URL (a webhook's URL is its credential)."""
    try:
        answer = requests.post(url, json=body, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        log.warning("notify.post_failed", exception=type(exc).__name__)
        return False
    if 200 <= answer.status_code <= 299:
        return True
    log.warning("notify.post_failed", status=answer.status_code)
    return False


class Notifier:
    """Decides, for one interval, whether this process sends the notification, and sends it."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        post: Post = post_json,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.client = client
        self.settings = settings
        self.store = DeadLetterStore(client, settings.key_prefix)
        self.post = post
        self.clock = clock
        self.sleep = sleep
        self.settle_s = settle_s
        self.cursor_key = keys.notify_cursor(settings.key_prefix)
        self.token = secrets.token_hex(8)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.notify_webhook_url)

    def run_once(self) -> str:
        """Try this interval's lock and, holding it, notify what is new. Returns what
        happened: ``off``, ``other`` (another process has this interval), ``nothing``,
        ``sent`` or ``failed`` (the letters wait for the next interval)."""
        if not self.enabled:
            return "off"
        interval = self.settings.notify_interval_s
        started = self.clock()
        lock = keys.notify_lock(self.settings.key_prefix, slot_of(started, interval))
        if not self.client.set(lock, self.token, nx=True, ex=max(1, math.ceil(interval))):
            return "other"
        # The first interval ever starts the cursor one interval back: the letters from before
        # notifications were switched on are not news (the alerts and the console show them).
        start = id_bound(started - self.settle_s - interval)
        self.client.set(self.cursor_key, start, nx=True)
        after = _text(self.client.get(self.cursor_key) or start)
        new = self.find_new(after, started)
        if new is None:
            return "nothing"
        body = message(new, console_link(self.settings.console_base_url, new))
        if not self._send(body, deadline=started + SEND_BUDGET * interval):
            log.warning("notify.not_sent", count=new.total)
            return "failed"
        self._advance(after, new.last_id)
        log.info("notify.sent", count=new.total)
        return "sent"

    def find_new(self, after: str, now: float) -> NewLetters | None:
        """The letters after ``after`` (a letter id, or the bound of a time) that are at least
        :attr:`settle_s` old, counted by reason and merchant in one round trip."""
        low = "(" + after
        high = "(" + id_bound(now - self.settle_s)
        if low[1:] >= high[1:]:
            return None
        everything = self.store.index_key(None, None, None)
        stats = self.store.stats()
        reasons, merchants = sorted(stats.by_reason), sorted(stats.by_merchant)
        pipe = self.client.pipeline(transaction=False)
        pipe.zlexcount(everything, low, high)
        pipe.zrange(everything, low, high, bylex=True, offset=0, num=1)
        pipe.zrange(everything, high, low, desc=True, bylex=True, offset=0, num=1)
        for reason in reasons:
            pipe.zlexcount(self.store.index_key(reason, None, None), low, high)
        for merchant in merchants:
            pipe.zlexcount(self.store.index_key(None, None, merchant), low, high)
        total, first, last, *counts = pipe.execute()
        if not total or not first or not last:
            return None
        by_reason = dict(zip(reasons, counts[: len(reasons)], strict=True))
        by_merchant = dict(zip(merchants, counts[len(reasons) :], strict=True))
        return NewLetters(
            total=int(total),
            first_id=_text(first[0]),
            last_id=_text(last[0]),
            by_reason={name: int(n) for name, n in by_reason.items() if n},
            by_merchant={name: int(n) for name, n in by_merchant.items() if n},
        )

    def _send(self, body: dict[str, Any], *, deadline: float) -> bool:
        """POST ``body``, retrying with doubling waits while the interval's budget lasts."""
        wait = RETRY_FIRST_S
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False
            if self.post(self.settings.notify_webhook_url, body, min(POST_TIMEOUT_S, remaining)):
                return True
            if self.clock() + wait >= deadline:
                return False
            self.sleep(wait)
            wait *= 2

    def _advance(self, before: str, last_id: str) -> None:
        """Move the cursor to ``last_id``, unless another sender moved it meanwhile (then its
        position, which covers at least as much, stands)."""
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(self.cursor_key)  # type: ignore[no-untyped-call]
                now_at = pipe.get(self.cursor_key)
                if now_at is None or _text(now_at) != before:
                    return
                pipe.multi()
                pipe.set(self.cursor_key, last_id)
                pipe.execute()
            except redis.WatchError:
                return


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NotifierThread(threading.Thread):
    """Runs :meth:`Notifier.run_once` near the start of every interval, in the background of
    a worker's main process; a failure (Redis away) is logged and tried next interval."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__(name="cartsync-notify", daemon=True)
        self.notifier = notifier
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = self.notifier.settings.notify_interval_s
        while not self.stopping.is_set():
            now = self.notifier.clock()
            next_start = (slot_of(now, interval) + 1) * interval + START_DELAY_S
            if self.stopping.wait(max(0.0, next_start - now)):
                return
            try:
                self.notifier.run_once()
            except Exception as exc:
                log.warning("notify.failed", exception=type(exc).__name__)

    def stop(self) -> None:
        self.stopping.set()
