"""HTTP semantics seen from outside: HEAD on every GET route, and bodies no parser can take."""

from __future__ import annotations

import re
from collections import defaultdict

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

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


def _matches(template: str, path: str) -> bool:
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = "".join(
        ("[0-9]+" if part.endswith(":int}") else "[^/]+")
        if part.startswith("{")
        else re.escape(part)
        for part in parts
    )
    return re.fullmatch(pattern, path) is not None


def _methods_by_path(app: FastAPI) -> dict[str, set[str]]:
    """The routes table: every path template and the methods its routes declare."""
    table: dict[str, set[str]] = defaultdict(set)
    for route in iter_route_contexts(app.routes):
        if route.methods and route.path:
            table[route.path] |= route.methods
    return table


async def test_every_405_allows_every_method_of_its_path_and_head_with_get(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    table = _methods_by_path(app)
    assert len(table) > 30
    for template in table:
        path = re.sub(r"\{[^}]+\}", "1", template)
        # A path may match more than one template (`/login/passkey` and `/login/{name}`):
        # the resource answers the methods of every route that matches it.
        declared = set().union(
            *(methods for other, methods in table.items() if _matches(other, path))
        )
        allowed = declared | {"HEAD"} if "GET" in declared else declared
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - allowed:
            response = await client.request(method, path)
            assert_error(response, 405, "METHOD_NOT_ALLOWED")
            listed = response.headers["Allow"].split(", ")
            assert sorted(listed) == sorted(allowed), f"{method} {path}"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/users/me", "GET, HEAD, DELETE"),
        ("PUT", "/users/me/mfa/totp", "POST, DELETE"),
        ("POST", "/users/me/sessions", "GET, HEAD, DELETE"),
        ("POST", "/admin/users/7", "GET, HEAD, PATCH, DELETE"),
        ("HEAD", "/users/me/mfa/totp", "POST, DELETE"),
    ],
)
async def test_405_on_a_path_of_several_routes_lists_them_all(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow


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
