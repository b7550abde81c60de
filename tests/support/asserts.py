"""Assertions on the contract's answers, shared by the test modules."""

from __future__ import annotations

import re

import httpx

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The contract's error body with this status and code; returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["error_code"] == code
    assert set(body) <= {"detail", "error_code", "timestamp", "request_id", "errors"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert TIMESTAMP.match(str(body["timestamp"]))
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def assert_unavailable(response: httpx.Response, error_code: str = "SERVICE_UNAVAILABLE") -> None:
    """A 503 in the contract's body, with Retry-After, that names no internals."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"detail", "error_code", "timestamp", "request_id"}
    assert body["error_code"] == error_code
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) >= 1
    for leak in ("Traceback", "OperationalError", "sqlite", "auth.db", "asyncpg", "127.0.0.1"):
        assert leak not in response.text
