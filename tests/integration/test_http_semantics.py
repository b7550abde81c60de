"""HTTP semantics seen from outside: HEAD on every GET route, and bodies no parser can take."""

from __future__ import annotations

import httpx
import pytest

from tests.support import LogCapture, UserFactory, assert_error
from tests.support.backends import backend_independent

pytestmark = backend_independent

# Served with GET but not described in the OpenAPI document.
UNDOCUMENTED_GETS = ["/openapi.json", "/docs", "/redoc", "/docs/redoc.standalone.js", "/metrics"]
# Bodies that change from one request to the next (a latency, counters).
VARYING = {"/health", "/metrics"}


async def _get_paths(client: httpx.AsyncClient) -> list[str]:
    """Every GET operation of the OpenAPI document without path parameters, and the docs."""
    document = (await client.get("/openapi.json")).json()
    documented = [
        path for path, item in document["paths"].items() if "get" in item and "{" not in path
    ]
    return documented + UNDOCUMENTED_GETS


async def test_head_answers_every_get_route_as_get_without_a_body(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    paths = await _get_paths(client)
    assert {"/users/me", "/health", "/health/live", "/metrics"} <= set(paths)
    for path in paths:
        get = await client.get(path, headers=user.auth)
        head = await client.head(path, headers=user.auth)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["Content-Type"] == get.headers["Content-Type"], path
        assert int(head.headers["Content-Length"]) > 0, path
        if path not in VARYING:
            assert head.headers["Content-Length"] == str(len(get.content)), path
        assert head.headers["X-Request-ID"] != get.headers["X-Request-ID"]


async def test_head_without_a_token_gets_the_get_status_and_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.head("/users/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.content == b""


async def test_head_on_a_post_only_route_is_405_naming_post(client: httpx.AsyncClient) -> None:
    response = await client.head("/auth/login")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_a_get_route_are_405_allowing_get_and_head(
    client: httpx.AsyncClient, method: str
) -> None:
    # /users/me also answers DELETE (account deletion): a GET-only route of the same router.
    response = await client.request(method, "/users/me/audit")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "GET, HEAD"


async def test_head_is_logged_as_head(client: httpx.AsyncClient, logs: LogCapture) -> None:
    response = await client.head("/users/me")
    [line] = logs.of_request(response.headers["X-Request-ID"])
    assert line["method"] == "HEAD"
    assert line["route"] == "/users/me"
    assert line["status_code"] == 401


@pytest.mark.parametrize("depth", [2_000, 30_000])  # 60 kB: under the body limit
async def test_deeply_nested_json_is_a_validation_error_with_its_errors_list(
    client: httpx.AsyncClient, depth: int
) -> None:
    response = await client.post(
        "/auth/login",
        content="[" * depth + "]" * depth,
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "body", "message": body["detail"]}]
    assert "parsing" not in str(body["detail"])
