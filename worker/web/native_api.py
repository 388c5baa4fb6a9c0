"""The native API: ``POST /v1/updates``, ``POST /v1/updates/batch`` and the lookups.

Producers authenticate with ``Authorization: Bearer TOKEN`` (``config/producers.py``); a
token may send and look up only for the merchants it is scoped to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from flask import Response, request
from flask_smorest import Blueprint

from cartsync.config.producers import ProducerAccount
from cartsync.tasks import codec
from cartsync.tasks.schemas.paths import ROOT
from cartsync.worker.errors import InvalidUpdate
from cartsync.worker.web import bodies
from cartsync.worker.web.answers import answer, native_error
from cartsync.worker.web.auth import producer_for
from cartsync.worker.web.context import Services, deadline, notes, services
from cartsync.worker.web.intake import NOT_YOURS, REDIS_DOWN, Item, Outcome, unavailable
from cartsync.worker.web.schemas import (
    Accepted,
    BatchResult,
    FieldErrors,
    NativeUpdateBody,
    OrderStatus,
    UpdateStatus,
)

blp = Blueprint(
    "updates", __name__, url_prefix="/v1", description="cartsync's own API for producers."
)

UNAUTHENTICATED = "Send Authorization: Bearer TOKEN with a token from the producers file."
UNSUPPORTED = "Unsupported Content-Type: send application/json."
UNSUPPORTED_BATCH = "Unsupported Content-Type: send application/json or application/x-ndjson."
UNKNOWN_UPDATE = "No update with this id was accepted (or it is older than the idempotency window)."

P = ParamSpec("P")

_AUTH: dict[str, Any] = {"security": [{"bearer": []}]}
_HEADERS = [
    {
        "in": "header",
        "name": "Idempotency-Key",
        "schema": {"type": "string", "minLength": 1, "maxLength": bodies.MAX_KEY_LENGTH},
        "description": "The same key again answers the first result and enqueues nothing.",
    },
    {
        "in": "header",
        "name": "Order-Version",
        "schema": {"type": "integer", "minimum": 1},
        "description": "The producer's own increasing version of the order (a row version).",
    },
]


def _producer_only(
    view: Callable[Concatenate[Services, ProducerAccount, P], Response],
) -> Callable[P, Response]:
    """A view for producers: it is called with the services and the producer whose bearer
    token the request carries, and never runs without one (401)."""

    @functools.wraps(view)
    def authenticated(*args: P.args, **kwargs: P.kwargs) -> Response:
        found = services()
        producer = producer_for(found.producers, request.headers.get("Authorization"))
        if producer is None:
            notes().outcome = "unauthorized"
            return native_error(
                401, {"Authorization": [UNAUTHENTICATED]}, **{"WWW-Authenticate": "Bearer"}
            )
        return view(found, producer, *args, **kwargs)

    return authenticated


def _accepted(outcome: Outcome) -> Response:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return answer(outcome.code, outcome.answer(), headers)


def _opened(
    producer: ProducerAccount, item: Any, key: str | None, version: int | None
) -> Item | Outcome:
    """The update of a native body, or the answer refusing its envelope."""
    envelope = bodies.open_envelope(item, key=key, version=version)
    if envelope.errors:
        return Outcome(422, errors=envelope.errors)
    return Item(envelope.body, f"producer:{producer.name}", envelope.key, envelope.version)


@blp.route("/updates", methods=["POST"])
@blp.doc(
    summary="Enqueue one update",
    parameters=_HEADERS,
    requestBody={"required": True, "content": {"application/json": {"schema": NativeUpdateBody}}},
    **_AUTH,
)
@blp.response(202, Accepted, description="Safe in Redis (or superseded: see status).")
@blp.alt_response(401, schema=FieldErrors, description="No or unknown token")
@blp.alt_response(403, schema=FieldErrors, description="The token may not send for this merchant")
@blp.alt_response(413, schema=FieldErrors, description="The body is too large")
@blp.alt_response(415, schema=FieldErrors, description="Not JSON")
@blp.alt_response(422, schema=FieldErrors, description="Invalid: every error by path")
@blp.alt_response(
    503, schema=FieldErrors, description="Redis does not answer; retry after Retry-After"
)
@_producer_only
def post_update(found: Services, producer: ProducerAccount) -> Response:
    if bodies.media_type(request.headers.get("Content-Type")) not in bodies.JSON_TYPES:
        return native_error(415, {"Content-Type": [UNSUPPORTED]})
    note = notes()
    try:
        data = bodies.read_body(request.stream, request.content_length, codec.MAX_BODY_BYTES)
        key = bodies.idempotency_key(request.headers.get("Idempotency-Key"))
        version = bodies.order_version(request.headers.get("Order-Version"))
        item = codec.decode(data)
    except bodies.TooLarge as exc:
        return native_error(413, {ROOT: [exc.message]})
    except InvalidUpdate as exc:
        note.outcome = "invalid"
        return native_error(422, exc.errors)
    opened = _opened(producer, item, key, version)
    outcome = (
        opened
        if isinstance(opened, Outcome)
        else found.intake.submit_many(
            [opened], may_send_for=producer.may_send_for, deadline=deadline()
        )[0]
    )
    note.enqueued(outcome.enqueue_s)
    if outcome.receipt is not None:
        note.merchant, note.order_ref = outcome.receipt.merchant, outcome.receipt.order_ref
        note.update_id, note.outcome = outcome.receipt.update_id, outcome.receipt.status
        return _accepted(outcome)
    note.outcome = {403: "forbidden", 503: "unavailable"}.get(outcome.code, "invalid")
    return native_error(outcome.code, outcome.errors)


@blp.route("/updates/batch", methods=["POST"])
@blp.doc(
    summary="Enqueue many updates, each answered on its own",
    description=(
        f"Up to {bodies.DEFAULT_BATCH_MAX} updates (by default; `cartsync serve --batch-max`) "
        "as a JSON array or JSON Lines (`application/x-ndjson`). Each item is a body as for "
        "`POST /v1/updates`, with optional `idempotency_key` and `version` beside `order`. "
        "An `Idempotency-Key` header gives item *i* without a key of its own the key "
        "`KEY#i`, so that the whole batch can be sent again safely."
    ),
    parameters=_HEADERS[:1],
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/NativeUpdateBody"},
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
    **_AUTH,
)
@blp.response(200, BatchResult, description="One result per item, in order.")
@blp.alt_response(401, schema=FieldErrors, description="No or unknown token")
@blp.alt_response(413, schema=FieldErrors, description="Too many items or bytes")
@blp.alt_response(415, schema=FieldErrors, description="Neither JSON nor JSON Lines")
@blp.alt_response(422, schema=FieldErrors, description="Not a JSON array")
@blp.alt_response(
    503, schema=FieldErrors, description="Redis does not answer; nothing was enqueued"
)
@_producer_only
def post_batch(found: Services, producer: ProducerAccount) -> Response:
    media = bodies.media_type(request.headers.get("Content-Type"))
    if media not in bodies.JSON_TYPES | bodies.NDJSON_TYPES:
        return native_error(415, {"Content-Type": [UNSUPPORTED_BATCH]})
    try:
        data = bodies.read_body(request.stream, request.content_length, bodies.BATCH_MAX_BYTES)
        key = bodies.idempotency_key(request.headers.get("Idempotency-Key"))
        texts = bodies.batch_texts(data, media, found.batch_max)
    except bodies.TooLarge as exc:
        return native_error(413, {ROOT: [exc.message]})
    except InvalidUpdate as exc:
        return native_error(422, exc.errors)
    note = notes()
    note.count = len(texts)
    opened: list[Item | Outcome] = []
    for index, text in enumerate(texts):
        try:
            item = codec.decode(text)
        except InvalidUpdate as exc:
            opened.append(Outcome(422, errors=exc.errors))
            continue
        opened.append(_opened(producer, item, f"{key}#{index}" if key else None, None))
    items = [o for o in opened if isinstance(o, Item)]
    stored = iter(
        found.intake.submit_many(items, may_send_for=producer.may_send_for, deadline=deadline())
    )
    results: list[dict[str, Any]] = []
    for index, each in enumerate(opened):
        outcome = each if isinstance(each, Outcome) else next(stored)
        note.enqueued(outcome.enqueue_s)
        results.append({"index": index, "code": outcome.code, **outcome.answer()})
    accepted = sum(1 for r in results if r["code"] == 202)
    if results and all(r["code"] == 503 for r in results):
        note.outcome = "unavailable"
        return native_error(503, {ROOT: [unavailable()]})
    note.outcome = "batch"
    return answer(
        200, {"accepted": accepted, "refused": len(results) - accepted, "results": results}
    )


@blp.route("/updates/<update_id>", methods=["GET"])
@blp.doc(summary="What happened to an update", **_AUTH)
@blp.response(200, UpdateStatus)
@blp.alt_response(401, schema=FieldErrors, description="No or unknown token")
@blp.alt_response(404, schema=FieldErrors, description="Unknown (or not this token's merchant's)")
@blp.alt_response(503, schema=FieldErrors, description="Redis does not answer")
@_producer_only
def get_update(found: Services, producer: ProducerAccount, update_id: str) -> Response:
    note = notes()
    note.update_id = update_id
    try:
        looked = found.lookup.update(update_id, deadline())
    except REDIS_DOWN:
        return native_error(503, {ROOT: [unavailable()]})
    if looked is None or not producer.may_send_for(looked.merchant):
        return native_error(404, {"update_id": [UNKNOWN_UPDATE]})
    note.merchant, note.order_ref, note.outcome = looked.merchant, looked.order_ref, looked.status
    return answer(200, looked.as_dict())


@blp.route("/orders/<merchant>/<path:order_ref>", methods=["GET"])
@blp.doc(
    summary="An order: versions enqueued and delivered, what waits, open dead letters", **_AUTH
)
@blp.response(200, OrderStatus)
@blp.alt_response(401, schema=FieldErrors, description="No or unknown token")
@blp.alt_response(403, schema=FieldErrors, description="The token may not see this merchant")
@blp.alt_response(503, schema=FieldErrors, description="Redis does not answer")
@_producer_only
def get_order(
    found: Services, producer: ProducerAccount, merchant: str, order_ref: str
) -> Response:
    note = notes()
    note.merchant, note.order_ref = merchant, order_ref
    if not producer.may_send_for(merchant):
        return native_error(403, {"merchant": [NOT_YOURS]})
    try:
        view = found.lookup.order(merchant, order_ref, deadline())
    except REDIS_DOWN:
        return native_error(503, {ROOT: [unavailable()]})
    return answer(200, view)
