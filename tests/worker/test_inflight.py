"""A message lost between the queue and a worker comes back (the in-flight set).

kombu's Redis transport pops a message before it records it as unacknowledged; a worker
killed in between loses it. The chaos harness found such a loss; these tests pin the fix.
"""

import contextlib
import time

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.message import UpdateMessage
from cartsync.tasks.order_update import process
from cartsync.tasks.producer import Producer
from cartsync.worker.runtime import Runtime
from cartsync.worker.schedule import Schedule, member_of, pump_once
from tests.sandbox_fixtures import SHOP

ACCOUNT = MerchantAccount(ref="", username="user", password="secret-pw")


def body(quantity=1):
    return fully_shipped(
        merchant="shop1", order_ref="A14/1", items=[Item("s", 'Camisa "lino" ñ', 1250, quantity)]
    )


def test_split_at_version_joins_to_the_workers_member():
    """The producer's text of a message is exactly what a worker rebuilds from the message."""
    message = UpdateMessage(
        update_id='u"1', merchant="shop,\"version\":0,", order_ref="A/1", version=0,
        body=body()["order"], enqueued_at=1.5,
    )  # fmt: skip
    prefix, suffix = message.split_at_version()
    published = {**message.to_dict(), "version": 7}
    assert prefix + "7" + suffix == member_of(UpdateMessage.from_dict(published).to_dict())


def test_pump_hands_off_and_the_worker_finishes(settings, redis_client):
    """Once the pump has published them, enqueued messages are in flight, not in the schedule;
    a worker's attempt that ends (here: superseded by a newer version) drops its entry."""
    producer = Producer(settings, merchants=MerchantDirectory(single=ACCOUNT))
    producer.enqueue(body(1))
    producer.enqueue(body(2))
    schedule = Schedule(redis_client, settings.key_prefix)
    tasks: list[list[str]] = []
    pump_once(
        schedule, tasks.append, now=time.time(), lease_s=30, queue="q", slots=4, batch=8,
        watch_s=60,
    )  # fmt: skip
    assert schedule.depth() == 0
    assert schedule.in_flight() == 2
    rt = Runtime(settings)
    assert process(tasks[0][0], rt) == "superseded"
    assert schedule.in_flight() == 1


def test_lost_message_is_scheduled_again_once_the_queue_is_empty(redis_client):
    """An in-flight entry past its watch time goes back to the schedule, due now, only while
    the Celery queue is empty (a message in a long queue is late, not lost)."""
    schedule = Schedule(redis_client, "t")
    member = member_of({"n": 1})
    schedule.hand_off([member], watch_until=100.0)
    assert schedule.sweep(now=99.0, queue="q") == 0
    redis_client.rpush("q", "something waiting")
    assert schedule.sweep(now=200.0, queue="q") == 0
    redis_client.delete("q")
    assert schedule.sweep(now=200.0, queue="q") == 1
    assert schedule.in_flight() == 0
    published: list[list[str]] = []
    pump_once(
        schedule, published.append, now=200.0, lease_s=30, queue="q", slots=1, batch=1, watch_s=60
    )
    assert published == [[member]]
    assert schedule.in_flight() == 1  # watched again until a worker finishes it
    assert schedule.depth() == 0


def test_an_update_finished_before_its_publish_returns_leaves_nothing_in_flight(
    settings, redis_client, shop_sandbox
):
    """A worker may finish an update before the pump's publish call has returned (here the
    publisher runs each task at once, as a fast worker would): nothing stays in flight, so
    nothing is swept and sent again later."""
    rt = Runtime(
        settings.with_overrides(
            sequra_url=shop_sandbox.url,
            sequra_username=SHOP.username,
            sequra_password=SHOP.password,
        )
    )
    producer = Producer(rt.settings, client=rt.redis)
    for ref in ("R1", "R2", "R3"):
        item = Item("s", "shirt", 100)
        producer.enqueue(fully_shipped(merchant=SHOP.ref, order_ref=ref, items=[item]))
    outcomes: list[str] = []

    def publish_and_run(members: list[str]) -> None:
        outcomes.extend(process(member, rt) for member in members)

    pump_once(
        rt.schedule, publish_and_run, now=time.time(), lease_s=30, queue="q", slots=4, batch=1,
        watch_s=60,
    )  # fmt: skip
    rt.client.close()
    assert outcomes == ["delivered"] * 3
    assert rt.schedule.in_flight() == 0
    assert rt.schedule.sweep(now=time.time() + 3600, queue="q") == 0


def test_a_failed_publish_leaves_its_updates_to_be_published_again(redis_client):
    """When publishing a task fails, its updates and those not yet published leave the
    in-flight set for the schedule, due when the claim's lease ends; the tasks published
    before stay in flight."""
    schedule = Schedule(redis_client, "t")
    for n in range(3):
        schedule.add({"n": n}, due=1.0)
    published: list[list[str]] = []

    def second_fails(members: list[str]) -> None:
        if published:
            raise ConnectionError("broker gone")
        published.append(members)

    with contextlib.suppress(ConnectionError):
        pump_once(
            schedule, second_fails, now=100.0, lease_s=30, queue="q", slots=3, batch=1,
            watch_s=60,
        )  # fmt: skip
    assert published == [[member_of({"n": 0})]]
    assert redis_client.zrange(schedule.inflight_key, 0, -1) == [member_of({"n": 0}).encode()]
    assert schedule.due(129.0) == 0
    assert schedule.due(130.0) == 2
