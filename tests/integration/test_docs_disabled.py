"""DOCS_ENABLED=false: no documentation pages and no schema, the API unaffected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.backends import backend_independent

pytestmark = backend_independent


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"docs_enabled": False}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_docs_are_gone_when_disabled(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_api_still_answers_when_docs_are_disabled(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200
