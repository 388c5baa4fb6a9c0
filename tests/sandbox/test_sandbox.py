"""The local seQura sandbox: seQura's rules (404/401/403/409), faults, history, admin and CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from click.testing import CliRunner

from cartsync.sandbox.admin import SandboxAdmin, SandboxAdminError
from cartsync.sandbox.cli import sandbox as sandbox_command
from cartsync.sandbox.rules import total_errors, update_errors
from cartsync.sandbox.server import SandboxServer, order_route
from cartsync.sandbox.state import ACCESS_DENIED, NO_ACCESS
from cartsync.worker.client import order_url
from tests.sandbox_fixtures import CAMISAS, ZAPATOS, cart, order_body

REF = "A14/12345"
README_409 = (
    "Invalid data: In shipped_cart, items' total_with_tax add up to 5055 (200+295+-1500+6060) "
    "but order_total_with_tax is 5097. The diff is 42."
)


def put(server, body, *, merchant=CAMISAS.ref, ref=REF, auth=(CAMISAS.username, CAMISAS.password),
        timeout=5.0, headers=None):  # fmt: skip
    """One raw PUT to the sandbox's Order Update endpoint."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.put(
        order_url(server.url, merchant, ref), data=data, auth=auth, timeout=timeout,
        headers=headers or {},
    )  # fmt: skip


@pytest.fixture
def checked_out(sandbox):
    """camisasonline's order A14/12345, checked out for 100.00 EUR."""
    sandbox.state.create_order(CAMISAS.ref, REF, order_body(10000)["order"])
    return REF


# -- seQura's rules -------------------------------------------------------------------------


def test_cart_total_error_reads_like_the_spec_example():
    """The 409 text for a cart that does not add up matches the spec README word for word."""
    order = {"unshipped_cart": cart(), "shipped_cart": cart(200, 295, -1500, 6060, total=5097)}
    assert total_errors(order) == [README_409]


def test_upselling_limit_is_fifteen_percent():
    """A new total up to 115 % of the original passes; one cent more is refused."""
    assert update_errors(order_body(11500), 10000) == []
    [error] = update_errors(order_body(11501), 10000)
    assert "exceeds the original total 10000 by more than 15%" in error


@pytest.mark.parametrize(
    ("raw", "route"),
    [
        ("/merchants/m/orders/A14%2F12345", ("m", "A14/12345")),
        ("/merchants/m%20x/orders/%C3%B1", ("m x", "ñ")),
        ("/merchants/m/orders/%2E%2E", ("m", "..")),
        ("/merchants/m/orders/a/b", None),
        ("/merchants/m/orders/a?b", None),
        ("/merchants/m/orders/..", None),
        ("/merchants/m/orders/", None),
        ("/merchant/m/orders/x", None),
    ],
)
def test_order_route_splits_before_unescaping(raw, route):
    """Escaped slashes stay inside a segment; extra segments, queries and dot segments miss."""
    assert order_route(raw) == route


def test_unknown_order_is_404(sandbox):
    """An order nobody checked out answers 404."""
    assert put(sandbox, order_body(100)).status_code == 404


def test_wrong_password_is_401_access_denied(sandbox, checked_out):
    """A wrong password answers 401 with seQura's body."""
    response = put(sandbox, order_body(10000), auth=(CAMISAS.username, "wrong"))
    assert (response.status_code, response.json()) == (401, {"errors": [ACCESS_DENIED]})


def test_missing_credentials_are_401(sandbox, checked_out):
    """A call without Basic auth answers 401."""
    assert put(sandbox, order_body(10000), auth=None).status_code == 401


def test_another_merchants_credentials_are_403(sandbox, checked_out):
    """Valid credentials of another merchant answer 403 with seQura's body."""
    response = put(sandbox, order_body(10000), auth=(ZAPATOS.username, ZAPATOS.password))
    assert (response.status_code, response.json()) == (403, {"errors": [NO_ACCESS]})


def test_cart_not_adding_up_is_409_and_changes_nothing(sandbox, checked_out):
    """A cart whose items miss its total answers 409 and the order keeps its state."""
    body = order_body(unshipped=(200, 295, -1500, 6060))
    body["order"]["shipped_cart"] = cart(200, 295, -1500, 6060, total=5097)
    response = put(sandbox, body)
    assert (response.status_code, response.json()) == (409, {"errors": [README_409]})
    assert sandbox.state.order(CAMISAS.ref, REF)["history"] == []


def test_upselling_over_fifteen_percent_is_409(sandbox, checked_out):
    """Raising the order total by more than 15 % over the checkout answers 409."""
    assert put(sandbox, order_body(11500)).status_code == 200
    response = put(sandbox, order_body(11501))
    assert response.status_code == 409
    assert "more than 15%" in response.json()["errors"][0]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", {"cart": {}}, {"order": {"shipped_cart": cart(1)}}, {"order": []}],
)
def test_body_that_is_not_an_update_is_409(sandbox, checked_out, body):
    """A body that is not JSON or lacks the carts answers 409 with an Invalid data text."""
    response = put(sandbox, body)
    assert response.status_code == 409
    assert response.json()["errors"][0].startswith("Invalid data:")


def test_accepted_update_becomes_the_state(sandbox, checked_out):
    """An accepted update answers 200 and becomes the order's current state."""
    body = order_body(2500, unshipped=(7500,))
    assert put(sandbox, body).status_code == 200
    assert sandbox.state.order(CAMISAS.ref, REF)["state"] == body["order"]


@pytest.mark.parametrize("status", [202, 204])
def test_accepted_status_is_configurable(sandbox, checked_out, status):
    """The answer to an accepted update can be 202 or 204 (204 without a body)."""
    sandbox.state.set_faults({"status": status})
    response = put(sandbox, order_body(10000))
    assert response.status_code == status
    assert (response.content == b"") == (status == 204)


def test_auto_create_takes_the_first_accepted_update_as_checkout():
    """With auto-create an unknown order is created on its first valid update, whose total is
    the original one for the upselling limit."""
    with SandboxServer(accounts=[CAMISAS], auto_create=True) as server:
        assert put(server, order_body(1000)).status_code == 200
        assert put(server, order_body(1151)).status_code == 409
        found = server.state.order(CAMISAS.ref, REF)
    assert found is not None
    assert (found["created"], found["original_total"], len(found["history"])) == ("auto", 1000, 1)


def test_without_accounts_any_credentials_pass():
    """A sandbox started with no accounts accepts any credentials (the demo's default)."""
    with SandboxServer(auto_create=True) as server:
        assert put(server, order_body(100), auth=("anyone", "anything")).status_code == 200


# -- history and counters -------------------------------------------------------------------


def test_history_lists_accepted_updates_in_order_with_versions(sandbox, checked_out):
    """History holds every accepted update, in the order accepted, with the version header,
    arrival time and body; refused calls are counted but not in the history."""
    for version, amount in [(1, 9000), (2, 9500), (3, 9700)]:
        headers = {"X-Cartsync-Update-Version": str(version)}
        assert put(sandbox, order_body(amount), headers=headers).status_code == 200
    put(sandbox, order_body(99999))  # upselling: refused
    found = sandbox.state.order(CAMISAS.ref, REF)
    history = found["history"]
    assert [entry["version"] for entry in history] == [1, 2, 3]
    assert [entry["order"]["shipped_cart"]["order_total_with_tax"] for entry in history] == [
        9000,
        9500,
        9700,
    ]
    assert [e["seq"] for e in history] == sorted(e["seq"] for e in history)
    assert all(e["received_at"] <= e["accepted_at"] for e in history)
    assert found["calls"] == 4


def test_calls_are_counted_for_unknown_orders_and_faults(sandbox):
    """Every call is counted per order, even when the order is unknown or a fault answers."""
    sandbox.state.script(CAMISAS.ref, "ghost", [503])
    put(sandbox, order_body(1), ref="ghost")
    put(sandbox, order_body(1), ref="ghost")
    assert sandbox.state.calls(CAMISAS.ref, "ghost") == 2
    assert sandbox.state.calls() == 2


def test_concurrent_updates_are_all_recorded(sandbox):
    """Updates from many threads at once are all accepted and each lands in its order."""
    refs = [f"C-{n}" for n in range(20)]
    for ref in refs:
        sandbox.state.create_order(CAMISAS.ref, ref, order_body(100)["order"])
    with requests.Session() as session, ThreadPoolExecutor(10) as pool:

        def send(ref):
            return session.put(
                order_url(sandbox.url, CAMISAS.ref, ref),
                data=json.dumps(order_body(100)),
                auth=(CAMISAS.username, CAMISAS.password),
                timeout=5,
            ).status_code

        statuses = list(pool.map(send, refs * 5))
    assert statuses == [200] * 100
    assert {len(sandbox.state.order(CAMISAS.ref, ref)["history"]) for ref in refs} == {5}


# -- faults ---------------------------------------------------------------------------------


def test_scripted_answers_come_first_then_normal_service(sandbox, checked_out):
    """ "The next 3 calls answer 503": they do, and the fourth is accepted."""
    sandbox.state.script(CAMISAS.ref, REF, [503, 503, 503])
    statuses = [put(sandbox, order_body(10000)).status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    assert len(sandbox.state.order(CAMISAS.ref, REF)["history"]) == 1


def test_fail_rate_answers_server_errors(sandbox, checked_out):
    """With fail_rate 1 every call answers 500, 502 or 503, and nothing is applied."""
    sandbox.state.set_faults({"fail_rate": 1.0})
    statuses = {put(sandbox, order_body(10000)).status_code for _ in range(30)}
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1
    assert sandbox.state.order(CAMISAS.ref, REF)["history"] == []


def test_fail_rate_is_a_share_of_calls(sandbox, checked_out):
    """A fail_rate of 0.3 fails roughly 30 % of calls (seeded dice)."""
    sandbox.state.set_faults({"fail_rate": 0.3})
    failed = sum(put(sandbox, order_body(10000)).status_code >= 500 for _ in range(200))
    assert 30 <= failed <= 90


def test_rate_limit_answers_429_with_retry_after(sandbox, checked_out):
    """rate_limit_rate answers 429 with the configured Retry-After header."""
    sandbox.state.set_faults({"rate_limit_rate": 1.0, "retry_after": 9})
    response = put(sandbox, order_body(10000))
    assert (response.status_code, response.headers["Retry-After"]) == (429, "9")


def test_latency_is_added_to_every_call(sandbox, checked_out):
    """latency_ms delays the answer by at least that long."""
    sandbox.state.set_faults({"latency_ms": 150})
    started = time.perf_counter()
    assert put(sandbox, order_body(10000)).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_timeout_rate_never_answers(sandbox, checked_out):
    """timeout_rate holds the answer back until the client gives up."""
    sandbox.state.set_faults({"timeout_rate": 1.0})
    with pytest.raises(requests.ReadTimeout):
        put(sandbox, order_body(10000), timeout=0.3)


def test_drop_rate_closes_the_connection_unanswered(sandbox, checked_out):
    """drop_rate closes the connection without an answer."""
    sandbox.state.set_faults({"drop_rate": 1.0})
    with pytest.raises(requests.ConnectionError):
        put(sandbox, order_body(10000))


def test_timeout_after_apply_applies_then_never_answers(sandbox, checked_out):
    """A scripted timeout_after_apply stores the update although the client hears nothing:
    the case where a retry resends a state seQura already has."""
    sandbox.state.script(CAMISAS.ref, REF, ["timeout_after_apply"])
    with pytest.raises(requests.ReadTimeout):
        put(sandbox, order_body(9000), timeout=0.3)
    assert len(sandbox.state.order(CAMISAS.ref, REF)["history"]) == 1


def test_stop_does_not_wait_for_held_answers():
    """stop() returns promptly although a call waits for an answer that never comes."""
    server = SandboxServer(auto_create=True).start()
    server.state.set_faults({"timeout_rate": 1.0, "hang_s": 30})
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(put, server, order_body(1), timeout=10)
        time.sleep(0.2)
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 2
        with pytest.raises(requests.ConnectionError):
            pending.result()


def test_stop_closes_kept_alive_connections():
    """After stop(), a kept-alive connection gets no more answers from the old server."""
    server = SandboxServer(auto_create=True).start()
    with requests.Session() as session:
        url = order_url(server.url, "m", "o")
        assert session.put(url, data=json.dumps(order_body(1)), timeout=2).status_code == 200
        server.stop()
        with pytest.raises(requests.ConnectionError):
            session.put(url, data=json.dumps(order_body(1)), timeout=2)


# -- the admin endpoints --------------------------------------------------------------------


def test_admin_client_drives_a_whole_scenario(sandbox):
    """Over HTTP: create an order, script a fault, read state, history, calls and stats."""
    admin = sandbox.admin
    assert admin.health()
    admin.create_order(CAMISAS.ref, REF, order_body(10000)["order"])
    assert admin.script(CAMISAS.ref, REF, [503, "drop"]) == [503, "drop"]
    assert put(sandbox, order_body(9000)).status_code == 503
    with pytest.raises(requests.ConnectionError):
        put(sandbox, order_body(9000))
    assert put(sandbox, order_body(9000)).status_code == 200
    assert admin.order_state(CAMISAS.ref, REF) == order_body(9000)["order"]
    assert [e["order"] for e in admin.history(CAMISAS.ref, REF)] == [order_body(9000)["order"]]
    assert admin.calls(CAMISAS.ref, REF) == 3
    assert admin.orders()[0]["accepted"] == 1
    assert admin.stats()["answers"] == {"503": 1, "drop": 1, "200": 1}
    assert admin.order(CAMISAS.ref, "unknown") is None


def test_admin_changes_faults_at_run_time_and_names_bad_ones(sandbox, checked_out):
    """Faults change through the admin endpoint; an unknown or invalid one is refused by name."""
    admin = sandbox.admin
    assert admin.set_faults(fail_rate=1.0)["fail_rate"] == 1.0
    assert put(sandbox, order_body(10000)).status_code >= 500
    with pytest.raises(SandboxAdminError, match="unknown fault 'fail_ratio'"):
        admin.set_faults(fail_ratio=0.5)
    with pytest.raises(SandboxAdminError, match="drop_rate must be between 0 and 1"):
        admin.set_faults(drop_rate=2)
    with pytest.raises(SandboxAdminError, match="add up to"):
        admin.set_faults(drop_rate=0.5)  # 1.0 + 0.5
    with pytest.raises(SandboxAdminError, match="scripted answer 'slow'"):
        admin.script(CAMISAS.ref, REF, ["slow"])


def test_admin_reset_forgets_everything(sandbox, checked_out):
    """reset forgets orders, scripts and counters, and restores the start-up faults."""
    admin = sandbox.admin
    admin.script(CAMISAS.ref, REF, [500])
    admin.set_faults(latency_ms=5)
    put(sandbox, order_body(10000))
    admin.reset()
    assert (admin.orders(), admin.calls(), admin.faults()["latency_ms"]) == ([], 0, 0.0)
    admin.create_order(CAMISAS.ref, REF, original_total=100)
    assert put(sandbox, order_body(100)).status_code == 200  # the script is gone


def test_admin_adds_accounts(sandbox):
    """An account added at run time can send updates."""
    sandbox.admin.add_account("nuevo", "nuevo-api", "nuevo-pw")
    sandbox.admin.create_order("nuevo", "1")
    assert put(sandbox, order_body(5), merchant="nuevo", ref="1",
               auth=("nuevo-api", "nuevo-pw")).status_code == 200  # fmt: skip


def test_admin_paths_do_not_collide_with_the_api(sandbox):
    """GET on the API path is 405; unknown admin paths are 404 with an explanation."""
    assert requests.get(order_url(sandbox.url, "m", "o"), timeout=5).status_code == 405
    response = requests.get(f"{sandbox.url}/_admin/nope", timeout=5)
    assert response.status_code == 404
    assert "no admin endpoint" in response.json()["errors"][0]


# -- the command ----------------------------------------------------------------------------


def test_command_serves_until_terminated():
    """`python -m cartsync.sandbox --port 0` prints its URL, serves updates and exits on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cartsync.sandbox", "--port", "0", "--auto-create",
         "--account", "shop:shop-api:pw:with:colons"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "sandbox listening on http://127.0.0.1:" in line
        url = line.split()[3]
        SandboxAdmin(url).wait_ready()
        response = requests.put(
            order_url(url, "shop", "1"),
            data=json.dumps(order_body(10)),
            auth=("shop-api", "pw:with:colons"),
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--account", "shop:only-user"], "--account"),
        (["--fail-rate", "0.7", "--drop-rate", "0.5"], "add up to"),
        (["--fail-rate", "1.5"], "--fail-rate"),
        (["--status", "201"], "--status"),
        (["--merchants", "does-not-exist.toml"], "does not exist"),
    ],
)
def test_command_refuses_bad_options_in_one_line(args, expected):
    """A bad option exits non-zero with a message naming it, never a traceback."""
    result = CliRunner().invoke(sandbox_command, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_command_never_echoes_an_account_password():
    """A malformed --account is refused without repeating its value."""
    result = CliRunner().invoke(sandbox_command, ["--account", "shop:user-no-password-x1"])
    assert result.exit_code == 2
    assert "user-no-password-x1" not in result.output
