"""Schemathesis against the app's own OpenAPI document, over HTTP to a live server.

Bounded and deterministic (derandomized Hypothesis, no example database): every run sends
the same cases, valid and invalid ones. Checks: no 5xx, every status documented for its
operation, every body valid against the documented schema, the documented content type.
It found the NUL-in-username 500 on PostgreSQL (see test_user_service.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.cli.openapi import standalone_document
from tests.support import PASSWORD

if TYPE_CHECKING:  # the alias exists for type checkers only
    from schemathesis.specs.openapi.schemas import OpenApiCase

DOCUMENT: dict[str, Any] = json.loads(standalone_document())
SECURED_PATHS = [
    path
    for path, item in DOCUMENT["paths"].items()
    if any("security" in operation for operation in item.values())
]

schema = schemathesis.openapi.from_dict(DOCUMENT)
secured = schema.include(path=SECURED_PATHS)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
BOUNDED = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    # The live server is set up once per operation on purpose; Hypothesis need not warn.
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def access_token(live_server: str) -> str:
    response = httpx.post(
        f"{live_server}/auth/register",
        json={"email": "fuzz@example.com", "username": "fuzz", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


@schema.parametrize()
@BOUNDED
def test_api_answers_as_documented(case: OpenApiCase, live_server: str) -> None:
    case.call_and_validate(base_url=live_server, checks=CHECKS, timeout=30)


@secured.parametrize()
@BOUNDED
def test_signed_in_calls_answer_as_documented(
    case: OpenApiCase, live_server: str, access_token: str
) -> None:
    case.call_and_validate(
        base_url=live_server,
        checks=CHECKS,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=30,
    )
