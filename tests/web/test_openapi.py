"""/openapi.json describes the service, and the service answers as it says (schemathesis)."""

from __future__ import annotations

import base64
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.sandbox_fixtures import SHOP
from tests.web.server import BACKEND_TOKEN

#: What is checked of each answer. The document describes bodies loosely (seQura's reference,
#: enforced by tasks/validation.py, is the authority), so a body the document allows may still
#: be refused: the checks of that (positive_data_acceptance and the like) are left out.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def test_the_document_lists_every_route(web):
    """/openapi.json is OpenAPI 3 and documents both ways in, the lookups and operations."""
    document = web.get("/openapi.json", token=None).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/merchants/{merchant}/orders/{order_ref}",
        "/v1/updates",
        "/v1/updates/batch",
        "/v1/updates/{update_id}",
        "/v1/orders/{merchant}/{order_ref}",
        "/healthz",
        "/readyz",
    }
    assert set(document["components"]["securitySchemes"]) == {"basic", "bearer"}


def test_no_answer_is_a_server_error_or_off_the_document(web):
    """Requests generated from the document, for every operation, never get a 500, and every
    answer matches the document (status, content type, headers, body schema)."""
    document = schemathesis.openapi.from_url(web.url + "/openapi.json")
    basic = base64.b64encode(f"{SHOP.username}:{SHOP.password}".encode()).decode()
    for result in document.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.path.startswith("/merchants/"):
            headers = {"Authorization": f"Basic {basic}"}
        else:
            headers = {"Authorization": f"Bearer {BACKEND_TOKEN}"}

        check_operation(operation.as_strategy(), headers)


def check_operation(strategy: Any, headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
