"""kombu's records of the messages a worker has taken cost no transaction."""

from kombu.connection import Connection

from cartsync.worker.celeryapp import broker_url  # importing the app patches kombu's QoS


def test_unacked_records_go_without_a_transaction_and_leave_nothing_after_the_ack(
    redis_url, redis_client
):
    """The record kombu writes when a worker takes a message, and drops on its ack, goes in a
    plain pipeline (no MULTI/EXEC, two Redis commands fewer each way) and still leaves
    nothing behind once the message is acknowledged."""
    with Connection(broker_url(redis_url)) as connection:
        channel = connection.default_channel
        qos = channel.qos
        with qos.pipe_or_acquire() as pipe:
            assert pipe.transaction is False
        raw = channel.prepare_message("body")
        raw["properties"]["delivery_info"] = {"exchange": "cartsync", "routing_key": "cartsync"}
        raw["properties"]["delivery_tag"] = "tag-1"
        message = channel.Message(raw, channel=channel)
        qos.append(message, "tag-1")
        assert redis_client.hexists(qos.unacked_key, "tag-1")
        assert redis_client.zscore(qos.unacked_index_key, "tag-1") is not None
        qos.ack("tag-1")
    assert not redis_client.hexists(qos.unacked_key, "tag-1")
    assert redis_client.zscore(qos.unacked_index_key, "tag-1") is None
