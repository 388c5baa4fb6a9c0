"""``cartsync serve`` (real gunicorn) pointed at Sentinels, and answering 503, not 202, when
the replicas it is told to wait for do not confirm an update."""

from __future__ import annotations

import pytest
import requests

from cartsync.worker.redisgroup import MASTER_NAME, SentinelGroup
from tests.sandbox_fixtures import SHOP
from tests.web.bodies import shipped
from tests.web.server import BACKEND_TOKEN, WebServer, serve_env

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {BACKEND_TOKEN}", "Content-Type": "application/json"}


def post(web: WebServer, order_ref: str) -> requests.Response:
    return requests.post(
        web.url + "/v1/updates", json=shipped(SHOP.ref, order_ref), headers=HEADERS, timeout=15
    )


def test_through_sentinel_with_a_replica_confirming_updates_are_accepted(tmp_path):
    """With CARTSYNC_REDIS_URL listing Sentinels and one replica to confirm, an update is
    answered 202 and is on a replica by then."""
    group = SentinelGroup(replicas=2, relayed=False).start()
    try:
        env = serve_env(
            group.url,
            tmp_path,
            CARTSYNC_REDIS_SENTINEL_MASTER=MASTER_NAME,
            CARTSYNC_REDIS_MIN_REPLICAS="1",
        )
        web = WebServer(env, workers=1, threads=2).start()
        try:
            answer = post(web, "SENT-1")
            assert answer.status_code == 202, answer.text
            assert any(r.client().dbsize() for r in group.replicas)
        finally:
            web.stop()
    finally:
        group.remove()


def test_when_replicas_do_not_confirm_the_answer_is_503(redis_url, redis_client, tmp_path):
    """The test Redis has no replica: asked to wait for one, the service answers 503 with
    Retry-After (send again), never 202."""
    env = serve_env(
        redis_url,
        tmp_path,
        CARTSYNC_REDIS_MIN_REPLICAS="1",
        CARTSYNC_REDIS_REPLICA_TIMEOUT_MS="50",
    )
    web = WebServer(env, workers=1, threads=2).start()
    try:
        answer = post(web, "NOREPL-1")
        assert answer.status_code == 503, answer.text
        assert answer.headers.get("Retry-After")
    finally:
        web.stop()
