"""Request id, one error body for every failure, the 500 path, CORS."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from tests.support import assert_error
from tests.support.backends import backend_independent

pytestmark = backend_independent


async def test_every_response_carries_a_generated_uuid4_request_id(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert ids[0] != ids[1]


async def test_a_valid_client_request_id_is_used_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "trace-abc_123"})
    assert response.headers["X-Request-ID"] == "trace-abc_123"
    assert response.json()["request_id"] == "trace-abc_123"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "tab\there", ""])
async def test_an_invalid_client_request_id_is_replaced(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": bad})
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 4


async def test_unknown_route_is_404_in_the_error_body(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/does-not-exist"), 404, "NOT_FOUND")


async def test_wrong_method_is_405_with_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/login")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]


@pytest.fixture
def crashing_app(app: FastAPI) -> FastAPI:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("secret internals: /etc/passwd SELECT * FROM users")

    app.include_router(router)
    return app


async def test_unexpected_exception_is_500_without_details(
    crashing_app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/boom", headers={"X-Request-ID": "crash-1"})
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert body["detail"] == "Internal server error"
    assert body["request_id"] == "crash-1"
    for leak in ("RuntimeError", "secret internals", "SELECT", "/etc/passwd", "Traceback"):
        assert leak not in response.text


async def test_no_422_anywhere_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).text
    assert '"422"' not in document
    assert "HTTPValidationError" not in document


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cors_origins": "https://app.example"}


async def test_cors_preflight_from_allowed_origin_is_answered(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/auth/login",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_cors_preflight_from_other_origin_gets_no_allow_origin(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/auth/login",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    # Refused by policy, in the contract's body (Starlette's own: 400 text/plain).
    body = assert_error(response, 403, "FORBIDDEN")
    assert body["detail"] == "CORS request refused: origin"
    assert response.headers["Content-Type"] == "application/json"
    assert "Origin" in response.headers["Vary"]


async def test_cors_preflight_for_a_method_not_allowed_is_refused_in_the_error_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/auth/login",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "TRACE"},
    )
    body = assert_error(response, 403, "FORBIDDEN")
    assert body["detail"] == "CORS request refused: method"
