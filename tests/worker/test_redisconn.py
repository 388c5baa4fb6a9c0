"""The one Redis client factory: plain URLs, Sentinel-managed masters that follow a
failover, and the wait for replicas that producer and park share."""

import time

import pytest
import redis

from cartsync.config.merchants import MerchantAccount, MerchantDirectory
from cartsync.config.settings import Settings
from cartsync.tasks.builders import Item, fully_shipped
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.celeryapp import broker_url, sentinel_options
from cartsync.worker.errors import BrokerUnavailable, ReplicasUnavailable
from cartsync.worker.redisconn import connect, execute_confirmed
from cartsync.worker.redisgroup import MASTER_NAME, SentinelGroup
from cartsync.worker.redisurl import kombu_url, parse_sentinel_url


@pytest.fixture(scope="module")
def group():
    """A master, two replicas and three Sentinels on loopback, for this module."""
    started = SentinelGroup(replicas=2).start()
    yield started
    started.remove()


MERCHANTS = MerchantDirectory(single=MerchantAccount(ref="", username="u", password="pw"))


def body():
    return fully_shipped(merchant="shop1", order_ref="R-1", items=[Item("s", "Shirt", 1250, 2)])


def sentinel_settings(group, **changes):
    return Settings(redis_url=group.url, redis_sentinel_master=MASTER_NAME, **changes)


def test_a_plain_url_gives_a_plain_client(redis_url):
    """A redis:// URL gives a client of that Redis, with the options given."""
    client = connect(Settings(redis_url=redis_url), socket_timeout=2)
    assert client.ping()
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 2


def test_kombu_reads_the_credentials_and_database_from_the_first_address():
    """The master's password and database, written on any address, move to the first one
    (where kombu reads them), quoted; the other addresses stay as they are."""
    parsed = parse_sentinel_url("sentinel://h1;sentinel://u:p%40ss@h2:26380/3")
    assert parsed.sentinels == (("h1", 26379), ("h2", 26380))
    assert (parsed.db, parsed.username, parsed.password) == (3, "u", "p@ss")
    assert kombu_url(parsed) == "sentinel://u:p%40ss@h1:26379/3;sentinel://h2:26380"


def test_the_broker_takes_the_master_name_from_the_same_setting():
    """The Celery app's broker URL and transport options come from CARTSYNC_REDIS_URL and
    CARTSYNC_REDIS_SENTINEL_MASTER: one setting points everything at the Sentinels."""
    settings = Settings(
        redis_url="sentinel://h1:1;sentinel://h2:2",
        redis_sentinel_master="mymaster",
        redis_sentinel_password="spw",
    )
    assert broker_url(settings.redis_url) == "sentinel://h1:1/0;sentinel://h2:2"
    options = sentinel_options(settings)
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"]["password"] == "spw"
    assert sentinel_options(Settings()) == {}


def test_a_sentinel_url_gives_a_client_of_the_master(group):
    """Through the Sentinels, the client writes to the master, and the replicas get it."""
    client = connect(sentinel_settings(group), socket_timeout=2, socket_connect_timeout=1)
    client.set("redisconn:probe", "1")
    assert client.execute_command("WAIT", 2, 1000) == 2
    assert group.replicas[0].client().get("redisconn:probe") == b"1"


def test_enough_replicas_confirm_and_the_replies_come_back(group):
    """With replicas asked for and present, the pipeline's own replies are returned and
    nothing is raised."""
    settings = sentinel_settings(group, redis_min_replicas=2, redis_replica_timeout_ms=1000)
    client = connect(settings, socket_timeout=2)
    pipe = client.pipeline(transaction=False)
    pipe.set("redisconn:a", "1")
    pipe.incr("redisconn:n")
    assert execute_confirmed(pipe, settings, what="the test") == [True, 1]


def test_missing_replicas_make_the_write_unavailable(settings):
    """A Redis without replicas cannot confirm: ReplicasUnavailable, a BrokerUnavailable,
    naming how many confirmed and the setting."""
    settings = settings.with_overrides(redis_min_replicas=1, redis_replica_timeout_ms=20)
    pipe = connect(settings).pipeline(transaction=False)
    pipe.set("redisconn:b", "1")
    with pytest.raises(ReplicasUnavailable, match=r"0 of 1 replica.*CARTSYNC_REDIS_MIN_REPLICAS"):
        execute_confirmed(pipe, settings, what="the test")


def test_without_replicas_asked_for_an_empty_pipeline_costs_nothing():
    """Replica confirmation off: nothing is sent (the client points at a closed port)."""
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    pipe = connect(settings).pipeline(transaction=False)
    assert execute_confirmed(pipe, settings, what="nothing") == []


def test_the_producer_answers_unavailable_when_replicas_do_not_confirm(settings):
    """An enqueue the replicas do not confirm is refused as unavailable, never accepted; sent
    again once they confirm, it is the same update (duplicate), not a second one."""
    waiting = settings.with_overrides(redis_min_replicas=1, redis_replica_timeout_ms=20)
    with pytest.raises(BrokerUnavailable, match="replica"):
        Producer(waiting, merchants=MERCHANTS).enqueue(body(), update_id="u-wait-1")
    again = Producer(settings, merchants=MERCHANTS).enqueue(body(), update_id="u-wait-1")
    assert again.status == "duplicate"


def test_the_producer_confirms_through_sentinel(group):
    """Against a Sentinel-managed master with replicas, enqueues with confirmation on are
    accepted, a repeated update id included."""
    settings = sentinel_settings(group, redis_min_replicas=1)
    producer = Producer(settings, merchants=MERCHANTS)
    first = producer.enqueue(body(), update_id="u-sentinel-1")
    assert first.status == "enqueued"
    assert producer.enqueue(body(), update_id="u-sentinel-1").status == "duplicate"


def test_a_master_without_the_scripts_still_accepts_with_confirmation(group):
    """A promoted replica has no Lua scripts cached (Redis does not replicate them): the
    pipelined accept meets NOSCRIPT, loads the script, runs it and still waits for the
    replica before answering accepted."""
    settings = sentinel_settings(group, redis_min_replicas=1)
    producer = Producer(settings, merchants=MERCHANTS)
    producer.enqueue(body(), update_id="u-noscript-0")  # the script is loaded now...
    producer.client.script_flush()  # ...and forgotten, as by a new master
    receipt = producer.enqueue(body(), update_id="u-noscript-1")
    assert receipt.status == "enqueued"
    marker = keys.update(settings.key_prefix, "u-noscript-1")
    assert any(replica.client().exists(marker) for replica in group.replicas)


def test_a_client_follows_a_failover_by_itself(group):
    """After the master is killed, the same client object writes to the promoted replica,
    once the Sentinels have named it, without being rebuilt."""
    settings = sentinel_settings(group)
    client = connect(settings, socket_timeout=1, socket_connect_timeout=0.5)
    client.set("redisconn:before", "1")
    client.execute_command("WAIT", 2, 1000)
    old = group.master.port
    group.master.kill()
    deadline = time.monotonic() + 30
    while True:
        try:
            client.set("redisconn:after", "1")
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "no new master within 30 s"
            time.sleep(0.2)
    assert group.master_port() != old
    assert client.get("redisconn:before") == b"1"

