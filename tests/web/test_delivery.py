"""Both ways in, end to end: cartsync serve -> Redis -> a real Celery worker -> the sandbox,
and what the status lookups say along the way."""

from __future__ import annotations

import functools

import pytest

from tests.sandbox_fixtures import SHOP
from tests.support import running_worker, wait_for, worker_env
from tests.web.bodies import cancel, shipped
from tests.web.server import write_accounts

pytestmark = pytest.mark.slow

SHOP_AUTH = (SHOP.username, SHOP.password)


@pytest.fixture
def worker(web_sandbox, redis_client, tmp_path):
    web_sandbox.state.reset()
    env = worker_env(web_sandbox.url, **write_accounts(tmp_path))
    with running_worker(env) as process:
        yield process


def test_both_ways_in_reach_seQura_and_lookups_follow_each_outcome(web, web_sandbox, worker):
    """An update PUT the seQura way and one POSTed natively are delivered; a conflict is
    dead-lettered with seQura's error; retries show as retrying; an older version refused at
    the door shows as superseded by the newer; the order lookup lists versions and open dead
    letters. (Superseded at a worker's claim: tests/web/test_lookups.py.)"""
    state = web_sandbox.state
    put = web.put_order(SHOP.ref, "E1/1", shipped(SHOP.ref, "E1/1"), SHOP_AUTH)
    assert put.status_code == 202
    posted = web.post("/v1/updates", cancel(SHOP.ref, "E2"))
    assert posted.status_code == 202
    for update_id in (put.json()["update_id"], posted.json()["update_id"]):
        wait_for(functools.partial(web.became, update_id, "delivered"), what="delivery")
    assert state.order(SHOP.ref, "E1/1")["state"]["shipped_cart"]["order_total_with_tax"] == 8350
    assert state.order(SHOP.ref, "E2")["state"]["cancellation_reason"] == "out_of_stock"

    state.script(SHOP.ref, "E3", [409])
    conflict = web.post("/v1/updates", shipped(SHOP.ref, "E3")).json()
    parked = wait_for(lambda: web.became(conflict["update_id"], "dead_lettered"), what="parking")
    letter = parked["dead_letter"]
    assert letter["reason"] == "conflict"
    assert letter["status"] == 409
    assert letter["errors"]
    assert letter["errors"][0].startswith("Invalid data")

    state.script(SHOP.ref, "E4", [503, 503, 503, 503])
    retried = web.post("/v1/updates", shipped(SHOP.ref, "E4")).json()
    seen = wait_for(
        lambda: web.became(retried["update_id"], "retrying"), what="a retry", interval=0.01
    )
    assert seen["attempts"] >= 1
    assert seen["in_flight"] or seen["next_try_at"] is not None
    wait_for(lambda: web.became(retried["update_id"], "delivered"), what="delivery after retries")

    newer = web.post("/v1/updates", cancel(SHOP.ref, "E5"), headers={"Order-Version": "2"})
    older = web.post("/v1/updates", shipped(SHOP.ref, "E5"), headers={"Order-Version": "1"})
    assert older.json()["status"] == "superseded"
    superseded = web.status_of(older.json()["update_id"])
    assert (superseded["status"], superseded["superseded_by"]) == ("superseded", 2)
    wait_for(lambda: web.became(newer.json()["update_id"], "delivered"), what="the newer one")

    order = web.get(f"/v1/orders/{SHOP.ref}/E3").json()
    assert order["enqueued_version"] == 1
    assert order["delivered_version"] == 0
    assert [d["id"] for d in order["dead_letters"]] == [letter["id"]]
    assert web.get(f"/v1/orders/{SHOP.ref}/E1/1").json()["delivered_version"] == 1


def test_an_unknown_update_id_is_404(web):
    """A lookup of an id nobody was answered with is 404."""
    assert web.get("/v1/updates/0123456789abcdef").status_code == 404


def test_a_lookup_of_another_merchants_order_is_403(web):
    """A token sees only the orders of the merchants it is scoped to."""
    from tests.web.server import ZAPATERO_TOKEN

    assert web.get(f"/v1/orders/{SHOP.ref}/E1", token=ZAPATERO_TOKEN).status_code == 403
