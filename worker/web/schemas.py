"""The marshmallow schemas of the HTTP API: what ``/openapi.json`` documents and answers dump.

Request bodies are read by the one JSON codec (``tasks/codec.py``) and validated by the
payload schemas (``tasks/schemas/``), never by these: a body is described here for readers
and clients, loosely (``order`` is an object), because seQura's payload reference is the
authority and ``tasks/validation.py`` enforces it by path.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

STATES = ("pending", "retrying", "delivered", "superseded", "dead_lettered")


class OrderUpdateBody(Schema):
    """seQura's Order Update body: the order's full current state."""

    order = fields.Dict(
        required=True,
        metadata={"description": "seQura's order object: both carts, merchant, references."},
    )


class NativeUpdateBody(OrderUpdateBody):
    """seQura's body, plus two optional keys beside ``order`` (taken out before sending)."""

    idempotency_key = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "Like the Idempotency-Key header, for this update."},
    )
    version = fields.Integer(
        validate=validate.Range(1, 2**63 - 1),
        metadata={"description": "Like the Order-Version header: the producer's own version."},
    )


class Accepted(Schema):
    update_id = fields.String(required=True)
    version = fields.Integer(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["enqueued", "superseded"]),
        metadata={
            "description": "enqueued: safe in Redis, will be sent. superseded: the order "
            "already has this or a newer version; nothing was enqueued."
        },
    )
    warnings = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "path -> messages; never block delivery"},
    )


class FieldErrors(Schema):
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={"description": "path (order.shipped_cart.items.1.quantity) -> messages"},
    )


class SequraErrors(Schema):
    errors = fields.List(fields.String(), required=True)


class BatchItemResult(Schema):
    index = fields.Integer(required=True)
    code = fields.Integer(required=True, metadata={"description": "202, 403, 422 or 503"})
    update_id = fields.String()
    version = fields.Integer()
    status = fields.String()
    warnings = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class BatchResult(Schema):
    accepted = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    results = fields.List(fields.Nested(BatchItemResult), required=True)


class LetterView(Schema):
    id = fields.String(required=True)
    update_id = fields.String(required=True)
    version = fields.Integer(allow_none=True)
    reason = fields.String(required=True)
    status = fields.Integer(allow_none=True, metadata={"description": "seQura's HTTP status"})
    errors = fields.List(
        fields.String(), required=True, metadata={"description": "seQura's errors"}
    )
    dead_at = fields.Float(required=True)


class UpdateStatus(Schema):
    update_id = fields.String(required=True)
    merchant = fields.String(required=True)
    order_ref = fields.String(required=True)
    version = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATES))
    accepted_at = fields.Float(required=True)
    attempts = fields.Integer(required=True)
    next_try_at = fields.Float(allow_none=True)
    in_flight = fields.Boolean(required=True)
    superseded_by = fields.Integer(allow_none=True)
    dead_letter = fields.Nested(LetterView, allow_none=True)
    outcome_at = fields.Float(
        allow_none=True,
        metadata={"description": "When a worker recorded the outcome (delivered: when)."},
    )
    sequra_status = fields.Integer(
        allow_none=True, metadata={"description": "seQura's HTTP status of the last call"}
    )


class PendingUpdate(Schema):
    update_id = fields.String(required=True)
    version = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATES))
    attempts = fields.Integer(required=True)
    next_try_at = fields.Float(allow_none=True)
    in_flight = fields.Boolean(required=True)
    superseded_by = fields.Integer(allow_none=True)


class OrderStatus(Schema):
    merchant = fields.String(required=True)
    order_ref = fields.String(required=True)
    enqueued_version = fields.Integer(required=True)
    delivered_version = fields.Integer(required=True)
    pending = fields.List(fields.Nested(PendingUpdate), required=True)
    dead_letters = fields.List(fields.Nested(LetterView), required=True)


class Health(Schema):
    status = fields.String(required=True)


class AnyErrors(Schema):
    """Any error answer: seQura's list of texts on its route, errors by path on the others."""

    errors = fields.Raw(
        required=True,
        metadata={
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            ]
        },
    )
