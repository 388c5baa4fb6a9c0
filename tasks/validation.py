"""Validation of an Order Update body: the one entry point producers, workers and the CLI use.

``validate_update(body, options=..., strict=...)`` checks a body ``{"order": {...}}`` against
the marshmallow schemas in :mod:`tasks.schemas` for a merchant's contract options, and
returns what goes on the wire plus warnings, or raises :class:`worker.errors.InvalidUpdate`
naming every bad field by its full dotted path (``order.shipped_cart.items.1.quantity``).

Before the schemas, the body goes through the one JSON codec's checks (``tasks/codec.py``),
whoever hands it over: the Python API's caller, the CLI, the HTTP API, a dead-letter edit or
the worker itself. So NaN, Infinity, integers beyond 64 bits, nesting past the codec's depth
and values JSON has no form for are refused by path here, and a body accepted at the door is
one the worker can send.

What goes on the wire is the producer's JSON: validation never converts a value (ints stay
ints, strings stay as sent, unknown keys are forwarded unchanged unless ``strict``), and
:func:`wire_bytes` serializes it with the codec as UTF-8 without escaping non-ASCII letters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from cartsync.config import merchants as contract
from cartsync.tasks import codec
from cartsync.tasks.schemas.order import body_schema
from cartsync.tasks.schemas.paths import flatten
from cartsync.tasks.schemas.warnings import collect_warnings
from cartsync.worker.errors import InvalidUpdate

#: Contract options a merchant may have (docs/SEQURA_API.md, "Contract options"):
#: multistore, shipment_ref, garage, services, travel. Their names live with the merchant
#: accounts (config/merchants.py); what each one means is in tasks/schemas/options.py.
CONTRACT_OPTIONS = contract.CONTRACT_OPTIONS


@dataclass(frozen=True)
class Validated:
    """A body that passed validation: exactly what goes on the wire, plus warnings."""

    body: dict[str, Any]
    warnings: dict[str, list[str]] = field(default_factory=dict)


def validate_update(body: Any, *, options: Collection[str] = (), strict: bool = False) -> Validated:
    """Validate an API body ``{"order": {...}}`` for a merchant with contract ``options``.

    Returns :class:`Validated`, whose ``body`` equals ``body`` (same keys in the same order,
    same values and types) but is a copy: every object and list the references describe is
    new, so filling in a field of it leaves the caller's dict alone. Values of unknown keys
    are shared, not copied.

    Raises :class:`InvalidUpdate` with every error by dotted path (and the warnings), or
    :class:`worker.errors.ConfigurationError` for an unknown contract option name. What JSON
    cannot carry (``tasks/codec.py``) is reported alone: the schemas never see it.
    """
    schema = body_schema(contract.normalize(options), bool(strict))
    unsendable = codec.problems(body)
    if unsendable:
        raise InvalidUpdate(unsendable, collect_warnings(body))
    try:
        loaded = schema.load(body)
    except ValidationError as exc:
        raise InvalidUpdate(flatten(exc.messages), collect_warnings(body)) from None
    return Validated(body=loaded, warnings=collect_warnings(body))


def dump_update(
    body: dict[str, Any], *, options: Collection[str] = (), strict: bool = False
) -> dict[str, Any]:
    """Serialize a validated body with the schemas: the inverse of the load, key for key."""
    dumped: dict[str, Any] = body_schema(contract.normalize(options), bool(strict)).dump(body)
    return dumped


def wire_bytes(body: dict[str, Any]) -> bytes:
    """The body as sent to seQura: compact UTF-8 JSON, non-ASCII letters as they are, NaN
    refused (:func:`tasks.codec.encode_utf8`, which the seQura client uses too)."""
    return codec.encode_utf8(body)
