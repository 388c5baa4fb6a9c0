"""seQura's own Order Update call, drop-in: ``PUT /merchants/{merchant-ref}/orders/{order-ref}``.

A shop that talks to seQura today points its client's endpoint here instead, with the same
credentials, headers and body; cartsync answers as seQura does (202; 409 with
``{"errors": ["Invalid data: ..."]}``; 401 ``Access denied``; 403 ``You do not have access to
this URL``) and takes the delivery, retries and dead letters off the shop's hands.

seQura's PHP client keeps only scheme, host and port of its endpoint, speaks HTTP/1.0, sends
no ``Sequra-Merchant-Id`` and does not escape the order-ref: ``A14/12345`` arrives as
``/merchants/m/orders/A14/12345``. The order-ref is therefore the whole rest of the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from cartsync.tasks import codec
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.basicauth import NO_ACCESS, REFUSALS
from cartsync.worker.errors import InvalidUpdate
from cartsync.worker.web import bodies
from cartsync.worker.web.answers import answer, invalid_data, sequra_error
from cartsync.worker.web.auth import merchant_verdict
from cartsync.worker.web.context import deadline, notes, services
from cartsync.worker.web.intake import unavailable
from cartsync.worker.web.schemas import Accepted, OrderUpdateBody, SequraErrors

blp = Blueprint(
    "sequra",
    __name__,
    description="seQura's Order Update API, drop-in: the same call, queued and delivered.",
)

MERCHANT_MISMATCH = "Does not match the merchant-ref in the URL."
ORDER_MISMATCH = "Does not match the order-ref in the URL."
UNSUPPORTED = "Unsupported Content-Type: send application/json."


def with_path_identity(
    body: Any, merchant: str, order_ref: str
) -> tuple[Any, dict[str, list[str]]]:
    """The body with ``order.merchant.id`` and ``order.merchant_reference.order_ref_1`` filled
    in from the URL where it leaves them out; errors where it names others. The caller's body
    is never changed."""
    order = body.get("order") if isinstance(body, Mapping) else None
    if not isinstance(order, Mapping):
        return body, {}  # validation names what is wrong
    errors: dict[str, list[str]] = {}
    filled = dict(order)
    for key, field, expected, mismatch in (
        ("merchant", "id", merchant, MERCHANT_MISMATCH),
        ("merchant_reference", "order_ref_1", order_ref, ORDER_MISMATCH),
    ):
        part = order.get(key)
        if part is None and key not in order:
            filled[key] = {field: expected}
        elif isinstance(part, Mapping):
            if field not in part:
                filled[key] = {**part, field: expected}
            elif (
                isinstance(part[field], str | int)
                and not isinstance(part[field], bool)
                and str(part[field]) != expected
            ):
                errors[f"order.{key}.{field}"] = [mismatch]
    return {**body, "order": filled}, errors


@blp.route("/merchants/<merchant>/orders/<path:order_ref>", methods=["PUT"])
@blp.doc(
    security=[{"basic": []}],
    summary="Send an order's current carts, as to seQura",
    requestBody={"required": True, "content": {"application/json": {"schema": OrderUpdateBody}}},
    parameters=[
        {"in": "header", "name": "Sequra-Merchant-Id", "schema": {"type": "string"}},
        {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}},
    ],
)
@blp.response(202, Accepted, description="Queued: it will be delivered to seQura.")
@blp.alt_response(401, schema=SequraErrors, description="Access denied")
@blp.alt_response(403, schema=SequraErrors, description="You do not have access to this URL")
@blp.alt_response(409, schema=SequraErrors, description="Invalid data")
@blp.alt_response(413, schema=SequraErrors, description="The body is too large")
@blp.alt_response(415, schema=SequraErrors, description="Not JSON")
@blp.alt_response(503, schema=SequraErrors, description="Redis does not answer; retry")
def put_order(merchant: str, order_ref: str) -> Response:
    found = services()
    note = notes()
    note.merchant, note.order_ref = merchant, order_ref
    verdict = merchant_verdict(found.merchants, merchant, request.headers.get("Authorization"))
    if verdict is not None:
        note.outcome = "unauthorized"
        return sequra_error(verdict, REFUSALS[verdict])
    claimed = request.headers.get("Sequra-Merchant-Id")
    if claimed is not None and claimed != merchant:
        note.outcome = "unauthorized"
        return sequra_error(403, NO_ACCESS)
    media = bodies.media_type(request.headers.get("Content-Type"))
    if media and media not in bodies.JSON_TYPES:
        return sequra_error(415, UNSUPPORTED)
    try:
        data = bodies.read_body(request.stream, request.content_length, codec.MAX_BODY_BYTES)
        key = bodies.idempotency_key(request.headers.get("Idempotency-Key"))
        decoded = codec.decode(data)
    except bodies.TooLarge as exc:
        return sequra_error(413, exc.message)
    except InvalidUpdate as exc:
        note.outcome = "invalid"
        return sequra_error(409, *invalid_data(exc.errors))
    body, errors = with_path_identity(decoded, merchant, order_ref)
    if errors:
        note.outcome = "invalid"
        return sequra_error(409, *invalid_data(errors))
    outcome = found.intake.submit(body, scope=f"merchant:{merchant}", key=key, deadline=deadline())
    note.enqueued(outcome.enqueue_s)
    if outcome.code == 202 and outcome.receipt is not None:
        note.update_id, note.outcome = outcome.receipt.update_id, outcome.receipt.status
        return answer(202, outcome.answer())
    if outcome.code == 503:
        note.outcome = "unavailable"
        return sequra_error(503, unavailable())
    note.outcome = "invalid"
    errors = outcome.errors or {ROOT: ["Invalid data."]}
    return sequra_error(409, *invalid_data(errors))
