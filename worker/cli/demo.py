"""``cartsync demo``: cartsync's whole job, end to end, on this machine, in well under a minute.

It uses the Redis at ``CARTSYNC_REDIS_URL`` when one answers there (else it starts an embedded
one), starts the local seQura sandbox in this process and a real Celery worker as a child
process, and enqueues the five cart scenarios of seQura's Order Update API for a few orders,
plus one cart update that seQura refuses with 409 (more than 15 % upselling). It shows what
the worker did, what seQura now holds, the dead letter with seQura's error text, then fixes
the letter, replays it (dry run first) and shows it delivered.

Decisions:

- In a Redis of the user's own, everything the demo writes lives under the key prefix and
  queue ``cartsync-demo`` (never ``cartsync``'s), and is deleted at the start and at the end.
- The worker and everything in this process get their settings from ``demo_settings``
  alone, not from the environment (only ``CARTSYNC_REDIS_URL`` is read), so a production
  configuration in the shell cannot send demo orders anywhere but the local sandbox.
- Whatever ends the demo (success, failure, Ctrl-C, SIGTERM), the worker's process group, the
  sandbox and an embedded Redis are stopped before it exits. On Linux the worker is also
  told to stop if the demo itself is killed outright.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import click
import redis

from cartsync.config.logging import configure_logging
from cartsync.config.settings import DEFAULT_REDIS_URL, Settings, env_name
from cartsync.sandbox.admin import SandboxAdminError
from cartsync.worker.cli.demo_orders import (
    DEMO_MERCHANT,
    DEMO_PASSWORD,
    DEMO_USER,
    Step,
    cart_summary,
    checkout_and_updates,
    describe_event,
    order_summary,
    without_item,
)
from cartsync.worker.cli.demo_setup import (
    DEMO_NAMESPACE,
    delete_demo_keys,
    demo_settings,
    settings_env,
    worker_env,
)
from cartsync.worker.errors import CartsyncError
from cartsync.worker.processes import WorkerProcess
from cartsync.worker.redisconn import connect
from cartsync.worker.urls import safe_url

#: Seconds to wait for the worker to start, and for updates to reach their outcome.
WORKER_START_S = 45.0
OUTCOME_WAIT_S = 30.0
#: Seconds the worker gets to finish a warm shutdown before it is killed.
WORKER_STOP_S = 10.0


# -- the demo ----------------------------------------------------------------------------------


class DemoFailed(CartsyncError):
    """Something did not happen in time; the message says what."""


class _Stopped(BaseException):
    """SIGTERM, turned into an exception so that the clean-up in ``finally`` runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


class Demo:
    def __init__(self, out: Callable[[str], None], redis_url: str) -> None:
        self.out = out
        self.redis_url = redis_url
        self.started = time.monotonic()
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.worker: WorkerProcess | None = None
        self.events: list[dict[str, Any]] = []

    def say(self, text: str = "") -> None:
        self.out(text)

    def heading(self, text: str) -> None:
        self.say()
        self.say(click.style(text, bold=True))

    def run(self) -> None:
        from cartsync.sandbox.server import SandboxServer
        from cartsync.worker.redisserver import EmbeddedRedis, answers

        title = click.style("cartsync demo", bold=True)
        self.say(f"{title}: seQura's Order Update API, end to end")
        self.heading("Starting")
        if answers(self.redis_url):
            url = self.redis_url
            self.say(
                f"  Redis      {safe_url(url)} (yours; the demo keeps to keys "
                f"{DEMO_NAMESPACE}:* and removes them at the end)"
            )
        else:
            embedded = EmbeddedRedis().start()
            self.cleanups.append(("the embedded Redis", embedded.stop))
            url = embedded.url
            self.say(
                f"  Redis      none answers at {safe_url(self.redis_url)}: "
                f"started an embedded one at {url}"
            )
        client = connect(Settings(redis_url=url))

        def forget() -> None:
            # An embedded Redis may be gone already (Ctrl-C reaches the whole process group):
            # then there is nothing left to delete.
            with contextlib.suppress(redis.ConnectionError):
                delete_demo_keys(client)
            client.close()

        self.cleanups.append(("the demo's keys", forget))
        delete_demo_keys(client)

        sandbox = SandboxServer(accounts={DEMO_MERCHANT: (DEMO_USER, DEMO_PASSWORD)}).start()
        self.cleanups.append(("the sandbox", sandbox.stop))
        self.say(f"  seQura     the local sandbox at {sandbox.url}")
        settings = demo_settings(url, sandbox.url)
        # This process enqueues and replays; its own log lines would only clutter the story.
        configure_logging(
            settings.with_overrides(log_level="warning", log_format="console"), sys.stderr
        )

        self.worker = WorkerProcess(
            worker_env(settings),
            pool=settings.worker_pool,
            concurrency=settings.worker_concurrency,
            hostname=f"demo-{uuid.uuid4().hex[:6]}@%h",
            name="demo-worker",
            die_with_parent=True,
            stop_timeout_s=WORKER_STOP_S,
        )
        self.cleanups.append(("the worker", self.worker.stop))
        self.worker.start(wait=False)
        pid = self.worker.pid
        self.say(
            f"  worker     celery -A cartsync.worker worker, pid {pid} "
            f"(pool {settings.worker_pool}, concurrency {settings.worker_concurrency})"
        )
        self.wait(self.worker.ready, WORKER_START_S, "the worker to start")

        orders, steps, refused = checkout_and_updates()
        admin = sandbox.admin
        for ref, order in orders.items():
            admin.create_order(DEMO_MERCHANT, ref, order)
        self.heading(f"Checkout: {len(orders)} orders of {DEMO_MERCHANT} are known to seQura")
        for ref, order in orders.items():
            self.say(f"  {ref}  {order_summary(order)}")

        from cartsync.tasks.producer import Producer

        producer = Producer(settings, client=client)
        self.heading("The shop enqueues the five cart scenarios, and one cart that grew too much")
        newest: dict[str, int] = {}
        for step in [*steps, refused]:
            receipt = producer.enqueue(step.body)
            newest[step.order_ref] = receipt.version
            self.say(f"  {step.order_ref}  {step.scenario:<20} queued as v{receipt.version}")

        self.heading("The worker delivers (as it happens)")
        expected = {
            ref: "dead_lettered" if ref == refused.order_ref else "delivered" for ref in newest
        }
        self.wait(
            lambda: all(self.seen(ref, newest[ref], out) for ref, out in expected.items()),
            OUTCOME_WAIT_S,
            "every update to reach its outcome",
        )

        self.heading("What seQura now holds")
        for ref in orders:
            found = admin.order(DEMO_MERCHANT, ref)
            versions = [h.get("version") for h in (found or {}).get("history", [])]
            accepted = "no update accepted"
            if versions:
                accepted = "accepted v" + ", v".join(str(v) for v in versions)
            self.say(f"  {ref}  {order_summary((found or {}).get('state'))}  [{accepted}]")

        self.fix_and_replay(client, settings, admin, refused)

        from cartsync.worker.cli.status import status

        self.heading("All done: nothing queued, waiting or dead")
        if self.command(settings, status, "status") != 0:
            raise DemoFailed("cartsync status is not healthy at the end")

    def fix_and_replay(
        self, client: redis.Redis, settings: Settings, admin: Any, refused: Step
    ) -> None:
        """Find the dead letter, fix its payload, replay it (dry run first) with the same
        ``cartsync dlq`` commands an on-call engineer runs, and wait for its delivery."""
        from cartsync.worker.deadletters import AuditNote, DeadLetterStore

        store = DeadLetterStore(client, settings.key_prefix)
        stored = self.parked(client, settings, refused.order_ref)
        if stored is None:
            raise DemoFailed(f"no dead letter for {refused.order_ref}")
        letter = stored.letter
        self.heading("On call: what is stuck, and why")
        self.dlq(settings, "list")
        self.dlq(settings, "show", letter.id, until="Payload:")

        self.heading("The fix: the coat goes into an order of its own; the rest is replayed")
        # `cartsync dlq edit ID` opens the payload in $EDITOR; the demo makes the same change,
        # recorded the same way, in code.
        fixed_body = without_item(letter.payload, "coat")
        revision = letter.revision + 1
        edited = dataclasses.replace(
            letter,
            payload=fixed_body,
            history=[
                *letter.history,
                {"at": time.time(), "by": "cartsync demo", "action": "edit",
                 "revision": revision, "previous_payload": letter.payload},
            ],
        )  # fmt: skip
        run = uuid.uuid4().hex[:12]
        note = AuditNote("edit", "cartsync demo", run, f"saved revision {revision}")
        result = store.replace(stored, edited, audit=note)
        if result != "replaced":
            raise DemoFailed(f"could not edit dead letter {letter.id}: {result}")
        self.say(click.style(f"$ cartsync dlq edit {letter.id}", fg="cyan"))
        self.say("  (opens the payload in $EDITOR; the demo takes the coat out in code)")
        self.say(f"  unshipped cart now {cart_summary(fixed_body['order']['unshipped_cart'])}")
        self.dlq(settings, "replay", letter.id, "--dry-run")
        self.dlq(settings, "replay", letter.id, "--yes")
        self.wait(
            lambda: self.seen(refused.order_ref, letter.version or 0, "delivered"),
            OUTCOME_WAIT_S,
            f"the replayed update of {refused.order_ref} to be delivered",
        )
        state = admin.order_state(DEMO_MERCHANT, refused.order_ref)
        self.say(f"  seQura now holds for {refused.order_ref}: {order_summary(state)}")

    def dlq(self, settings: Settings, *args: str, until: str | None = None) -> None:
        from cartsync.worker.cli.dlq import dlq

        if self.command(settings, dlq, "dlq", *args, until=until) != 0:
            raise DemoFailed(f"`cartsync dlq {' '.join(args)}` failed")

    def command(
        self, settings: Settings, command: click.Command, *args: str, until: str | None = None
    ) -> int:
        """Run ``cartsync ARGS`` in this process with the demo's settings; show its output.

        Returns the exit status; anything but 0 or 1 (a verdict) fails the demo.
        """
        from click.testing import CliRunner

        self.say(click.style("$ cartsync " + " ".join(args), fg="cyan"))
        result = CliRunner(env=settings_env(settings)).invoke(command, list(args[1:]))
        output = result.output
        if until is not None and until in output:
            output = output[: output.index(until)].rstrip() + "\n(payload left out)"
        for line in output.rstrip().splitlines():
            self.say(("  " + line).rstrip())
        if result.exit_code == 130:  # the command saw Ctrl-C
            raise KeyboardInterrupt
        if result.exit_code not in (0, 1):
            raise DemoFailed(f"`cartsync {' '.join(args)}` exited {result.exit_code}")
        return int(result.exit_code)

    @staticmethod
    def parked(client: redis.Redis, settings: Settings, order_ref: str) -> Any:
        from cartsync.worker.deadletters import DeadLetterStore, Filters

        page = DeadLetterStore(client, settings.key_prefix).page(
            Filters(merchant=DEMO_MERCHANT, order_ref=order_ref), limit=1
        )
        return page.letters[0] if page.letters else None

    def show_events(self) -> None:
        assert self.worker is not None
        for event in self.worker.new_events():
            self.events.append(event)
            self.say("  worker     " + describe_event(event))

    def seen(self, order_ref: str, version: int, outcome: str) -> bool:
        """Whether the worker logged ``outcome`` for this version of this order."""
        return any(
            (e.get("order_ref"), e.get("version"), e.get("outcome"))
            == (order_ref, version, outcome)
            for e in self.events
        )

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.worker is not None:
                self.show_events()
                if not self.worker.running:
                    raise DemoFailed(f"the worker exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def clean_up(self) -> list[str]:
        """Stop everything started, newest first; returns what was stopped."""
        stopped = []
        for name, action in reversed(self.cleanups):
            try:
                action()
                stopped.append(name)
            except Exception as exc:  # keep going: the rest must be stopped too
                self.out(f"  could not stop {name}: {type(exc).__name__}")
        self.cleanups.clear()
        return stopped


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up, so that a second one cannot cut it short."""
    previous = (
        signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


@click.command()
def demo() -> None:
    """Run cartsync end to end on this machine: a sandbox, a real worker, six orders.

    Uses the Redis at CARTSYNC_REDIS_URL when one answers (keeping to keys under
    cartsync-demo:), else an embedded one. Stops everything it started when it ends, when it
    fails and on Ctrl-C. Exit status: 0 done, 1 something did not happen in time, 130
    interrupted.
    """
    redis_url = os.environ.get(env_name("redis_url")) or DEFAULT_REDIS_URL
    session = Demo(lambda line: click.echo(line), redis_url)
    signal.signal(signal.SIGTERM, _on_sigterm)
    status = 0
    worker: WorkerProcess | None = None
    try:
        session.run()
    except (KeyboardInterrupt, _Stopped):
        click.echo("\ninterrupted: stopping everything the demo started")
        status = 130
    except DemoFailed as exc:
        click.echo(click.style(f"\ndemo failed: {exc}", fg="red"), err=True)
        status = 1
    except (CartsyncError, SandboxAdminError, redis.RedisError, OSError) as exc:
        click.echo(click.style(f"\ndemo failed: {type(exc).__name__}: {exc}", fg="red"), err=True)
        status = 1
    finally:
        worker = session.worker
        with _signals_deferred():
            stopped = session.clean_up()
        if worker is not None and status == 1:
            tail = worker.log_text()[-3000:]
            click.echo(f"last lines of the worker's log:\n{tail}", err=True)
        if worker is not None:
            worker.remove_log()
    elapsed = time.monotonic() - session.started
    click.echo("")
    click.echo(
        f"Stopped and removed: {', '.join(stopped) or 'nothing'}. "
        "Nothing the demo started is running."
    )
    if status == 0:
        click.echo(f"Done in {elapsed:.1f}s. README.md shows how to run cartsync for real.")
    raise SystemExit(status)
