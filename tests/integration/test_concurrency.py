"""100 concurrent requests: no 500, no "database is locked", no pool exhaustion."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.database import Database
from tests.support import PASSWORD, UserFactory


@pytest.mark.parametrize(
    "settings_overrides",
    [{}, {"db_pool_size": 2, "db_max_overflow": 0}],
    ids=["default-pool", "two-connections"],
)
async def test_hundred_concurrent_register_and_login_requests(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    database: Database,
    settings_overrides: dict[str, Any],
) -> None:
    existing = [await user_factory() for _ in range(10)]

    async def register(i: int) -> httpx.Response:
        return await client.post(
            "/auth/register",
            json={"email": f"c{i}@example.com", "username": f"conc{i}", "password": PASSWORD},
        )

    async def login(i: int) -> httpx.Response:
        user = existing[i % len(existing)]
        return await client.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        )

    async def me(i: int) -> httpx.Response:
        return await client.get("/users/me", headers=existing[i % len(existing)].auth)

    calls = [register(i) if i % 3 == 0 else login(i) if i % 3 == 1 else me(i) for i in range(100)]
    responses = await asyncio.gather(*calls)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 34
    assert statuses.count(200) == 66
    assert "locked" not in "".join(r.text for r in responses)
    # With two connections the requests queue for the pool instead of failing, and every
    # connection comes back.
    assert database.breaker.failure_count == 0
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
