"""Introspection of refresh tokens with rotation on, and of asymmetric tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.support import CliInvoker, UserFactory


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"refresh_token_rotation": True, "jwt_algorithm": "ES256"}


async def test_a_replaced_refresh_token_is_inactive_and_asking_revokes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, run_cli: CliInvoker
) -> None:
    created = json.loads((await run_cli("clients", "create", "gateway", "--json")).stdout)
    pair = f"{created['client_id']}:{created['client_secret']}".encode()
    auth = {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    user = await user_factory()
    rotated = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    current = rotated.json()["refresh_token"]

    old = await client.post("/auth/introspect", data={"token": user.refresh_token}, headers=auth)
    new = await client.post("/auth/introspect", data={"token": current}, headers=auth)

    assert old.json() == {"active": False}
    assert new.json()["active"] is True
    # Unlike presenting it at /auth/refresh, introspecting the old token ends nothing.
    again = await client.post("/auth/introspect", data={"token": current}, headers=auth)
    assert again.json()["active"] is True
