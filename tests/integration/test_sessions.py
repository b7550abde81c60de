"""Logout, revocation and refresh-token rotation over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.core.jwt import TokenType
from app.database import Database
from app.main import purge_expired_sessions
from app.models import AuthSession
from app.sessions.service import SessionService
from app.users.service import UserService
from tests.support import UserFactory, assert_error, codec_at

ROTATION = pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": True}])


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def _logout(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/logout", json={"refresh_token": token})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _session_count(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(select(func.count(AuthSession.id)))).scalar_one())


# --- logout -----------------------------------------------------------------------------


async def test_logout_revokes_the_refresh_and_access_tokens_at_once(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    refreshed = (await _refresh(client, user.refresh_token)).json()["access_token"]
    response = await _logout(client, user.refresh_token)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await _refresh(client, user.refresh_token), 401, "INVALID_TOKEN")
    for access in (user.access_token, refreshed):
        response = await client.get("/users/me", headers=_bearer(access))
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_logout_with_an_access_token_ends_its_session(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    other = (
        await client.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        )
    ).json()

    response = await _logout(client, user.access_token)

    assert response.status_code == 204
    assert_error(await client.get("/users/me", headers=user.auth), 401, "INVALID_TOKEN")
    assert_error(await _refresh(client, user.refresh_token), 401, "INVALID_TOKEN")
    assert (
        await client.get("/users/me", headers=_bearer(other["access_token"]))
    ).status_code == 200
    assert await _session_count(database) == 1


async def test_logout_ends_only_its_own_session(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    other = login.json()
    assert (await _logout(client, user.refresh_token)).status_code == 204
    assert (
        await client.get("/users/me", headers=_bearer(other["access_token"]))
    ).status_code == 200
    assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_is_idempotent(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    assert (await _logout(client, user.refresh_token)).status_code == 204
    assert (await _logout(client, user.refresh_token)).status_code == 204
    assert await _session_count(database) == 0


@pytest.mark.parametrize(
    "kind", ["garbage", "expired", "expired_access", "foreign", "unknown_session"]
)
async def test_logout_with_any_bad_token_is_204_and_revokes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database, kind: str
) -> None:
    user = await user_factory()
    week_ago = datetime.now(UTC) - timedelta(days=8)
    token = {
        "garbage": "not.a.token",
        "expired": codec_at(week_ago).issue(str(user.id), TokenType.REFRESH).token,
        "expired_access": codec_at(week_ago).issue(str(user.id), TokenType.ACCESS).token,
        "foreign": jwt.encode({"sub": str(user.id), "type": "refresh"}, "x" * 64),
        "unknown_session": codec_at(datetime.now(UTC))
        .issue(str(user.id), TokenType.REFRESH, extra={"sid": "f" * 32})
        .token,
    }[kind]
    response = await _logout(client, token)
    assert response.status_code == 204
    assert await _session_count(database) == 1
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200


async def test_logout_with_unknown_fields_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout", json={"refresh_token": "x", "all": True})
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_token_without_a_session_is_401(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    sessionless = codec_at(datetime.now(UTC)).issue(str(user.id), TokenType.ACCESS).token
    assert_error(await client.get("/users/me", headers=_bearer(sessionless)), 401, "INVALID_TOKEN")


async def test_a_session_of_another_user_is_not_honoured(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    alice, bob = await user_factory(), await user_factory()
    sid = jwt.decode(alice.access_token, options={"verify_signature": False})["sid"]
    forged = (
        codec_at(datetime.now(UTC)).issue(str(bob.id), TokenType.ACCESS, extra={"sid": sid}).token
    )
    assert_error(await client.get("/users/me", headers=_bearer(forged)), 401, "INVALID_TOKEN")


# --- deactivation and clean-up ----------------------------------------------------------


async def test_deactivation_revokes_sessions_even_after_reactivation(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    async with database.session() as session:
        users = UserService(session)
        account = await users.get_by_id(user.id)
        assert account is not None
        await users.set_active(account, False)
        await users.set_active(account, True)
    assert_error(await client.get("/users/me", headers=user.auth), 401, "INVALID_TOKEN")
    assert_error(await _refresh(client, user.refresh_token), 401, "INVALID_TOKEN")


async def test_expired_sessions_are_purged_and_live_ones_kept(
    app: FastAPI, user_factory: UserFactory, database: Database, client: httpx.AsyncClient
) -> None:
    live = await user_factory()
    long_ago = datetime.now(UTC) - timedelta(days=30)
    async with database.session() as session:
        sessions = SessionService(session)
        for n in range(3):
            await sessions.start(
                sid=f"{n:032x}",
                user_id=live.id,
                refresh_jti=f"{n:032x}",
                now=long_ago,
                expires_at=long_ago + timedelta(days=7),
            )
    assert await _session_count(database) == 4
    assert await purge_expired_sessions(database, app.state.settings) == 3
    assert await _session_count(database) == 1
    assert (await client.get("/users/me", headers=live.auth)).status_code == 200


# --- rotation ---------------------------------------------------------------------------


async def test_without_rotation_the_refresh_token_is_returned_unchanged(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(2):
        body = (await _refresh(client, user.refresh_token)).json()
        assert body["refresh_token"] == user.refresh_token


@ROTATION
async def test_with_rotation_each_refresh_returns_a_new_refresh_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    first = (await _refresh(client, user.refresh_token)).json()
    assert first["refresh_token"] != user.refresh_token
    second = await _refresh(client, first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (user.refresh_token, first["refresh_token"])


@ROTATION
async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    newer = (await _refresh(client, user.refresh_token)).json()
    assert_error(await _refresh(client, user.refresh_token), 401, "INVALID_TOKEN")  # replay
    assert_error(await _refresh(client, newer["refresh_token"]), 401, "INVALID_TOKEN")
    for access in (user.access_token, newer["access_token"]):
        assert_error(await client.get("/users/me", headers=_bearer(access)), 401, "INVALID_TOKEN")


@ROTATION
async def test_logout_with_an_older_token_of_the_family_revokes_the_newer_ones(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    newer = (await _refresh(client, user.refresh_token)).json()
    assert (await _logout(client, user.refresh_token)).status_code == 204
    assert_error(await _refresh(client, newer["refresh_token"]), 401, "INVALID_TOKEN")


@ROTATION
async def test_concurrent_refreshes_with_one_token_have_exactly_one_winner(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    responses = await asyncio.gather(*(_refresh(client, user.refresh_token) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 9, [r.text for r in responses]
    for response in responses:
        if response.status_code == 401:
            assert_error(response, 401, "INVALID_TOKEN")


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": False}])
async def test_without_rotation_concurrent_refreshes_all_succeed(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    responses = await asyncio.gather(*(_refresh(client, user.refresh_token) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
