"""The producer validates first, versions every accepted update, and never half-writes."""

import json
import time

import pytest

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import Producer, with_platform_defaults
from cartsync.worker import keys
from cartsync.worker.errors import BrokerUnavailable, InvalidUpdate, UnknownMerchant
from tests.conftest import CLAIM_KEY

ACCOUNT = MerchantAccount(ref="", username="user", password="secret-pw")


def body(order_ref="A14/1", **extra):
    return fully_shipped(
        merchant="shop1", order_ref=order_ref, items=[Item("shirt", "Shirt", 1250, 2)], **extra
    )


@pytest.fixture
def producer(settings):
    return Producer(settings, merchants=MerchantDirectory(single=ACCOUNT))


def queued(redis_client, settings):
    """The update messages waiting in the schedule for a worker's pump, decoded."""
    members = redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1)
    return [json.loads(member) for member in members]


def test_valid_update_is_scheduled_due_now_with_a_version(producer, redis_client, settings):
    """An accepted update waits in the schedule as JSON with version 1, due at once."""
    before = time.time()
    receipt = producer.enqueue(body())
    assert receipt.status == "enqueued"
    assert receipt.version == 1
    [message] = queued(redis_client, settings)
    assert message["update_id"] == receipt.update_id
    assert message["version"] == 1
    assert message["merchant"] == "shop1"
    assert message["order_ref"] == "A14/1"
    assert message["body"]["order"]["shipped_cart"]["order_total_with_tax"] == 2500
    [(_, due)] = redis_client.zrange(keys.schedule(settings.key_prefix), 0, -1, withscores=True)
    assert before <= due <= time.time()


def test_enqueues_leave_one_wake_token_for_a_waiting_worker(producer, redis_client, settings):
    """Every accepted update wakes the workers' pump, and the wake list never grows past one."""
    for n in range(5):
        producer.enqueue(body(order_ref=f"A{n}"))
    assert redis_client.lrange(keys.wake(settings.key_prefix), 0, -1) == [b"1"]


def test_versions_grow_per_order(producer):
    """Three updates of one order get versions 1, 2, 3; another order starts at 1."""
    versions = [producer.enqueue(body()).version for _ in range(3)]
    assert versions == [1, 2, 3]
    assert producer.enqueue(body(order_ref="other")).version == 1


def test_invalid_update_enqueues_nothing(producer, redis_client, settings):
    """A body that fails validation raises InvalidUpdate and leaves Redis untouched."""
    with pytest.raises(InvalidUpdate):
        producer.enqueue({"order": "not an object"})
    assert redis_client.keys() == [CLAIM_KEY.encode()]


def test_unknown_merchant_is_refused(settings, redis_client):
    """With a merchants file that lacks the merchant, enqueue names it and writes nothing."""
    producer = Producer(settings, merchants=MerchantDirectory([MerchantAccount("other", "u", "p")]))
    with pytest.raises(UnknownMerchant, match="shop1"):
        producer.enqueue(body())
    assert redis_client.keys() == [CLAIM_KEY.encode()]


def test_unreachable_redis_is_one_clear_error(settings):
    """With Redis down, enqueue raises BrokerUnavailable saying nothing was enqueued."""
    down = settings.with_overrides(redis_url="redis://:hunter2@127.0.0.1:1/0")
    producer = Producer(down, merchants=MerchantDirectory(single=ACCOUNT))
    with pytest.raises(BrokerUnavailable, match="nothing was enqueued") as caught:
        producer.enqueue(body())
    assert "hunter2" not in str(caught.value)


def test_same_update_id_twice_enqueues_once(producer, redis_client, settings):
    """A producer retrying with its idempotency key does not queue the update twice."""
    first = producer.enqueue(body(), update_id="row-7")
    second = producer.enqueue(body(), update_id="row-7")
    assert (first.status, second.status) == ("enqueued", "duplicate")
    assert len(queued(redis_client, settings)) == 1


def test_producer_version_older_than_newest_is_superseded(producer, redis_client, settings):
    """A row version older than one already enqueued is not queued."""
    producer.enqueue(body(), version=7)
    receipt = producer.enqueue(body(), version=6)
    assert receipt.status == "superseded"
    assert len(queued(redis_client, settings)) == 1


def test_platform_defaults_fill_only_what_is_missing(settings):
    """platform.name/version/uname are filled when absent and a given value is kept."""
    given = body(platform={"name": "Magento", "version": "2.4"})
    filled = with_platform_defaults(given, settings)
    assert filled["order"]["platform"]["name"] == "Magento"
    assert filled["order"]["platform"]["uname"]
    assert "platform" in given["order"]
    assert "uname" not in given["order"]["platform"]
