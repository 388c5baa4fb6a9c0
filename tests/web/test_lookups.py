"""``GET /v1/updates/{update_id}`` for updates enqueued through the Python API (no receipt):
every outcome, from a real worker delivering to the sandbox, read through cartsync serve."""

from __future__ import annotations

import time

import pytest
import redis

from cartsync.config.settings import load_settings
from cartsync.tasks.producer import Producer
from cartsync.worker import keys
from cartsync.worker.outcome_records import after_attempt, write_into
from cartsync.worker.web.lookup import Lookup
from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env
from tests.web.bodies import cancel, shipped
from tests.web.server import write_accounts

pytestmark = pytest.mark.slow


@pytest.fixture
def env(web_sandbox, redis_client, tmp_path):
    web_sandbox.state.reset()
    return worker_env(web_sandbox.url, **write_accounts(tmp_path))


@pytest.fixture
def producer(env):
    return Producer(load_settings(env))


def test_python_api_updates_are_looked_up_through_every_outcome(web, web_sandbox, env, producer):
    """Updates enqueued through the Python API show as pending, then retrying (attempts, next
    try), delivered (when, seQura's status), superseded (by which version), and dead-lettered
    (letter id, reason, seQura's error); a delivered update stays delivered once overtaken."""
    state = web_sandbox.state
    pending = producer.enqueue(shipped(SHOP.ref, "P1"))
    older = producer.enqueue(shipped(SHOP.ref, "P2"), version=1)
    producer.enqueue(cancel(SHOP.ref, "P2"), version=2)
    seen = web.status_of(pending.update_id)
    assert (seen["status"], seen["merchant"], seen["order_ref"]) == ("pending", SHOP.ref, "P1")
    assert seen["version"] == 1
    assert (seen["attempts"], seen["outcome_at"]) == (0, None)

    state.script(SHOP.ref, "P3", [503, 503, 503, 503, 503, 503])
    state.script(SHOP.ref, "P4", [409])
    retried = producer.enqueue(shipped(SHOP.ref, "P3"))
    conflict = producer.enqueue(shipped(SHOP.ref, "P4"))
    before = time.time()
    with running_worker(env):
        delivered = wait_for(lambda: web.became(pending.update_id, "delivered"), what="delivery")
        assert delivered["sequra_status"] in (200, 204)
        assert before <= delivered["outcome_at"] <= time.time()
        assert delivered["attempts"] == 1

        superseded = wait_for(
            lambda: web.became(older.update_id, "superseded"), what="superseding"
        )
        assert (superseded["version"], superseded["superseded_by"]) == (1, 2)

        retrying = wait_for(
            lambda: web.became(retried.update_id, "retrying"), what="a retry", interval=0.01
        )
        assert retrying["attempts"] >= 1
        assert retrying["sequra_status"] == 503
        assert retrying["next_try_at"] >= retrying["outcome_at"]

        parked = wait_for(lambda: web.became(conflict.update_id, "dead_lettered"), what="parking")
        letter = parked["dead_letter"]
        assert letter["id"]
        assert (letter["reason"], letter["status"]) == ("conflict", 409)
        assert letter["errors"][0].startswith("Invalid data")
        assert parked["sequra_status"] == 409

        newer = producer.enqueue(cancel(SHOP.ref, "P1"))
        wait_for(lambda: web.became(newer.update_id, "delivered"), what="the newer delivery")
    overtaken = web.status_of(pending.update_id)
    assert overtaken["status"] == "delivered"
    assert overtaken["outcome_at"] == delivered["outcome_at"]


def test_a_python_api_update_of_another_merchant_is_404_to_a_token_not_scoped_to_it(web, producer):
    """A token sees the Python API's updates only of the merchants it is scoped to."""
    from tests.web.server import ZAPATERO_TOKEN

    enqueued = producer.enqueue(shipped(SHOP.ref, "P9"))
    assert web.get(f"/v1/updates/{enqueued.update_id}", token=ZAPATERO_TOKEN).status_code == 404
    assert web.get(f"/v1/updates/{enqueued.update_id}").status_code == 200


def test_a_lookup_scanning_a_backlog_stops_at_the_request_deadline(redis_client):
    """A lookup that must scan the schedule gives up with a timeout (the request's 503) once
    its deadline has passed, instead of scanning on; without one it finds the message."""
    from cartsync.tasks.message import UpdateMessage
    from cartsync.worker import keys
    from cartsync.worker.schedule import member_of
    from cartsync.worker.web.lookup import SCAN_COUNT, Lookup, update_pattern

    backlog = {f'{{"update_id":"other{n}","x":1}}': n for n in range(SCAN_COUNT * 3)}
    wanted = UpdateMessage("wanted", SHOP.ref, "o", 1, shipped(SHOP.ref, "o"), 0.0)
    backlog[member_of(wanted.to_dict())] = 0
    redis_client.zadd(keys.schedule("cartsync"), backlog)
    lookup = Lookup(redis_client, "cartsync")
    with pytest.raises(redis.TimeoutError):
        list(lookup.waiting(update_pattern("wanted"), deadline=time.monotonic() - 1))
    found = list(lookup.waiting(update_pattern("wanted"), deadline=time.monotonic() + 60))
    assert [w.message.update_id for w in found] == ["wanted"]


def test_an_outcome_record_an_older_release_wrote_as_a_hash_still_answers(web, redis_client):
    """Records written as hashes before the JSON form are read until they expire."""
    redis_client.hset(
        keys.outcome_hash("cartsync", "old-1"),
        mapping={
            "outcome": "delivered", "at": "1764000000.5", "merchant": SHOP.ref,
            "order_ref": "H1", "version": "4", "enqueued_at": "1763999999.0",
            "attempts": "2", "status": "200", "next_try_at": "", "letter_id": "",
            "reason": "", "superseded_by": "",
        },
    )  # fmt: skip
    seen = web.status_of("old-1")
    assert (seen["status"], seen["order_ref"], seen["version"]) == ("delivered", "H1", 4)
    assert (seen["attempts"], seen["sequra_status"]) == (2, 200)


def test_an_update_finished_while_the_lookup_scans_answers_from_its_record(redis_client):
    """A Python API update whose worker records it and drops its message between the
    lookup's first read and its scans is shown from the record, not as unknown."""
    redis_client.set(keys.update("cartsync", "raced"), "3")  # accepted, no receipt

    class Racing(Lookup):
        def _find_waiting(self, update_id, deadline):  # the worker finishes meanwhile
            record = after_attempt(
                "delivered", at=5.0, merchant=SHOP.ref, order_ref="R1", version=3,
                enqueued_at=1.0, attempts=1, status=200,
            )  # fmt: skip
            assert record is not None
            pipe = self.client.pipeline(transaction=False)
            write_into(pipe, "cartsync", update_id, record, 60.0)
            pipe.execute()
            return None

    seen = Racing(redis_client, "cartsync").update("raced")
    assert seen is not None
    assert (seen.status, seen.order_ref, seen.version) == ("delivered", "R1", 3)
    assert Lookup(redis_client, "cartsync").update("unknown") is None
