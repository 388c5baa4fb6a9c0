"""Validation of an Order Update body. (Placeholder until the schemas land.)"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from worker.errors import InvalidUpdate

#: Contract options a merchant may have (see ../shared/DESIGN.md, "Contract options").
CONTRACT_OPTIONS = frozenset({"multistore", "shipment_ref", "garage", "services", "travel"})


@dataclass(frozen=True)
class Validated:
    """A body that passed validation: exactly what goes on the wire, plus warnings."""

    body: dict[str, Any]
    warnings: dict[str, list[str]] = field(default_factory=dict)


def validate_update(
    body: Any, *, options: Collection[str] = (), strict: bool = False
) -> Validated:
    """Validate an API body ``{"order": {...}}``; raise InvalidUpdate naming every bad path."""
    if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
        raise InvalidUpdate({"order": ["Missing data for required field."]})
    return Validated(body=body)
