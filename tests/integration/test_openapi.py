"""The OpenAPI document: valid 3.1, complete for every operation, true to the error
catalogue, and identical to the committed docs/openapi.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from app import __version__
from app.cli.openapi import standalone_document
from app.core import errors as exceptions
from app.openapi import install_openapi, operation_id
from tests.support import CliInvoker
from tests.support.backends import backend_independent

pytestmark = backend_independent

DOCUMENT: dict[str, Any] = json.loads(standalone_document())
COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"
OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
OPERATION_IDS = [name for name, _ in OPERATIONS]
CATALOGUE = [
    cls
    for cls in vars(exceptions).values()
    if isinstance(cls, type) and issubclass(cls, exceptions.AppException)
]
# The contract gives one code two statuses: INVALID_MFA_CODE is 400 while managing two-factor
# authentication and 401 at sign-in. Every other code has exactly one.
TWO_STATUS_CODES = {"INVALID_MFA_CODE": {400, 401}}
STATUSES_OF_CODE: dict[str, set[int]] = {}
for _cls in CATALOGUE:
    STATUSES_OF_CODE.setdefault(_cls.error_code, set()).add(_cls.status_code)
STATUS_OF_OAUTH2_ERROR = {
    cls.oauth2_error: cls.status_code
    for cls in CATALOGUE
    if issubclass(cls, exceptions.OAuth2Exception)
}


def test_each_error_code_has_one_status() -> None:
    several = {code: st for code, st in STATUSES_OF_CODE.items() if len(st) > 1}
    assert several == TWO_STATUS_CODES


def _component(ref: str) -> dict[str, Any]:
    component: dict[str, Any] = DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return component


def _has_example(media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    ref = media.get("schema", {}).get("$ref")
    return bool(ref and _component(ref).get("examples"))


async def test_served_document_is_the_committed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert served == committed, "docs/openapi.json is stale: run `make docs` and commit it"


async def test_openapi_command_writes_the_current_document(
    tmp_path: Path, run_cli: CliInvoker
) -> None:
    target = tmp_path / "docs" / "openapi.json"
    result = await run_cli("openapi", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == standalone_document()
    assert (await run_cli("openapi")).exit_code == 2


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate(DOCUMENT)


def test_info_names_the_service_its_version_and_licence() -> None:
    info = DOCUMENT["info"]
    assert info["version"] == __version__
    assert info["title"]
    assert info["description"]
    assert info["license"]["identifier"] == "MIT"
    assert info["contact"]["name"]
    assert {tag["name"] for tag in DOCUMENT["tags"]} == {
        "auth",
        "users",
        "admin",
        "health",
        "discovery",
    }


def test_no_422_anywhere() -> None:
    for name, operation in OPERATIONS:
        assert "422" not in operation["responses"], name
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    assert "ValidationError" not in DOCUMENT["components"]["schemas"]


def test_every_route_of_the_contract_is_documented() -> None:
    assert {
        "POST /auth/register",
        "POST /auth/login",
        "POST /auth/token",
        "POST /auth/refresh",
        "GET /users/me",
        "GET /health",
        "GET /health/live",
    } <= set(OPERATION_IDS)


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=OPERATION_IDS)
def test_operation_has_summary_description_and_examples(
    name: str, operation: dict[str, Any]
) -> None:
    assert operation.get("summary"), name
    assert operation.get("description"), name
    assert operation["tags"], name
    if "requestBody" in operation:
        for media in operation["requestBody"]["content"].values():
            assert _has_example(media), f"{name}: request body without example"
    successes = [s for s in operation["responses"] if s.startswith("2")]
    # One success per operation; registration also documents its 202 of
    # EMAIL_VERIFICATION_REQUIRED (created, but no tokens until the address is verified), and
    # the login its 202 when a second factor is due.
    alternates = {"POST /auth/register": ["201", "202"], "POST /auth/login": ["200", "202"]}
    assert successes == alternates.get(name, successes[:1]), name
    for status in successes:
        success = operation["responses"][status]
        if status == "204":
            assert "content" not in success, f"{name}: a 204 documents no body (RFC 9110 §15.3.5)"
        elif "content" not in success:  # RFC 7009 §2.2: revocation's 200 has an empty body
            assert "empty body" in success["description"], f"{name}: no body, not said why"
        else:
            assert _has_example(success["content"]["application/json"]), f"{name}: no example"


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=OPERATION_IDS)
def test_error_responses_use_the_error_schema_with_real_codes(
    name: str, operation: dict[str, Any]
) -> None:
    errors = {int(s): r for s, r in operation["responses"].items() if int(s) >= 400}
    assert 500 in errors, f"{name}: every operation can fail with 500"
    for status, response in errors.items():
        media = response["content"]["application/json"]
        schema = media["schema"]["$ref"].rsplit("/", 1)[1]
        if name == "GET /health" and status == 503:
            assert schema == "HealthResponse"  # the documented exception of the contract
            continue
        assert media["examples"], f"{name} {status}: no example"
        for example in media["examples"].values():
            value = example["value"]
            if schema == "OAuth2ErrorResponse":
                assert STATUS_OF_OAUTH2_ERROR[value["error"]] == status, (name, value)
            else:
                assert schema == "ErrorResponse", (name, status)
                assert status in STATUSES_OF_CODE[value["error_code"]], (name, value)
        if status in (429, 503):
            assert "Retry-After" in response["headers"], (name, status)
        if status == 401:
            assert "WWW-Authenticate" in response["headers"], name


def test_token_endpoint_documents_oauth2_errors_and_form_body() -> None:
    token = DOCUMENT["paths"]["/auth/token"]["post"]
    assert set(token["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert token["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OAuth2ErrorResponse"
    )
    examples = token["responses"]["400"]["content"]["application/json"]["examples"]
    assert {"invalid_request", "invalid_grant", "unsupported_grant_type"} <= set(examples)
    assert "invalid_client" in token["responses"]["401"]["content"]["application/json"]["examples"]
    assert "security" not in token


def test_protected_operations_reference_the_declared_bearer_schemes() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    oauth2 = next(s for s in schemes.values() if s["type"] == "oauth2")
    token_url = oauth2["flows"]["password"]["tokenUrl"]
    assert "post" in DOCUMENT["paths"][token_url]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    for name, operation in OPERATIONS:
        challenged = "NOT_AUTHENTICATED" in (
            operation["responses"].get("401", {}).get("content", {}).get("application/json", {})
        ).get("examples", {})
        assert bool(operation.get("security")) == challenged, name
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(schemes), name


# snake_case words, short enough to read as a method name of a generated client.
OPERATION_ID = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+){0,3}")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def test_op_ids_are_short_unique_names_without_path_or_method() -> None:
    ids = {name: operation["operationId"] for name, operation in OPERATIONS}
    assert len(set(ids.values())) == len(ids)
    for name, op_id in ids.items():
        method, path = name.split(" ", 1)
        assert OPERATION_ID.fullmatch(op_id), (name, op_id)
        assert len(op_id) <= 32, (name, op_id)
        words = op_id.split("_")
        assert words[-1] not in _METHODS or method.lower() != words[-1], (name, op_id)
        # FastAPI's default id carries the path flattened: `_admin_users__user_id_`.
        assert re.sub(r"\W", "_", path) not in op_id, (name, op_id)
        assert "__" not in op_id, (name, op_id)
    assert ids["GET /admin/users/{user_id}"] == "get_user"
    assert ids["DELETE /users/me"] == "delete_me"


@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_two_routes_of_one_function_name_are_refused_when_documenting() -> None:
    app = FastAPI(generate_unique_id_function=operation_id)

    @app.get("/a")
    async def show() -> None: ...

    @app.get("/b", name="show")
    async def show_b() -> None: ...

    install_openapi(app)
    with pytest.raises(RuntimeError, match="operationId 'show'"):
        app.openapi()
