"""/users/me on a SQLite file: answered without a statement while nothing was committed,
and never after a commit that changed the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import build_settings, prepare_schema, running_app
from tests.support.accounts import register
from tests.support.databases import statements
from tests.support.mfa import bearer


async def me(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.get("/users/me", headers=bearer(body["access_token"]))


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await prepare_schema(url)
    return url


async def test_a_repeated_users_me_runs_no_statement_until_a_commit(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running_app(build_settings(sqlite_url, tmp_path)) as (app, client):
        body = (await register(client, "alice")).json()
        first = await me(client, body)
        with statements(app.state.database.engine) as repeated:
            second = await me(client, body)
        await client.post("/auth/logout", json={"refresh_token": body["refresh_token"]})
        with statements(app.state.database.engine) as after_logout:
            refused = await me(client, body)

    assert first.status_code == 200
    assert second.json() == first.json()
    assert repeated == []
    assert refused.status_code == 401
    assert after_logout == ["SELECT", "SELECT"]  # the session look-up, the owner's is_active


async def test_a_profile_change_is_shown_at_the_next_request(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running_app(build_settings(sqlite_url, tmp_path)) as (app, client):
        body = (await register(client, "bob")).json()
        await me(client, body)
        await me(client, body)
        # Any commit, here straight on the file as another process would make it.
        async with app.state.database.engine.begin() as connection:
            await connection.exec_driver_sql(
                "UPDATE users SET username = 'robert' WHERE id = ?", (body["user"]["id"],)
            )
        changed = await me(client, body)

    assert changed.json()["username"] == "robert"


async def test_with_the_cache_off_every_request_asks_the_database(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = build_settings(sqlite_url, tmp_path, bearer_cache_size=0)
    async with running_app(settings) as (app, client):
        body = (await register(client, "carol")).json()
        await me(client, body)
        with statements(app.state.database.engine) as repeated:
            second = await me(client, body)

    assert second.status_code == 200
    assert repeated == ["SELECT"]
