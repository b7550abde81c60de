"""The audit trail: one event per security-relevant action, with its context, no secrets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from app.audit.log import AuditLog, Event
from app.config import Settings
from app.database import Database
from app.main import purge_old_audit_events
from app.models import User
from tests.support import (
    TEST_SECRET,
    LogCapture,
    UserFactory,
    build_settings,
    running_app,
)
from tests.support.admin import audit_events, bearer, grant, sign_in

ROTATION = pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": True}])
UA = {"User-Agent": "AuditTest/1.0"}


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/login", json={"username": username, "password": password}, headers=UA
    )


async def test_sign_up_and_sign_in_events_carry_user_actor_ip_agent_and_request_id(
    client: httpx.AsyncClient, database: Database
) -> None:
    registered = await client.post(
        "/auth/register",
        json={"email": "eve@example.com", "username": "eve", "password": "correct horse battery"},
        headers={**UA, "X-Request-ID": "req-register-1"},
    )
    user_id = registered.json()["user"]["id"]
    login = await _login(client, "eve", "correct horse battery")

    events = await audit_events(database)

    assert [e.event for e in events] == ["user.registered", "login.succeeded"]
    for event, response in zip(events, (registered, login), strict=True):
        assert (event.user_id, event.actor_id) == (user_id, user_id)
        assert event.ip == "203.0.113.7"
        assert event.user_agent == "AuditTest/1.0"
        assert event.request_id == response.headers["X-Request-ID"]
        assert event.at.tzinfo is not None
    assert events[0].request_id == "req-register-1"


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": "unix"}])
async def test_behind_a_trusted_unix_socket_proxy_events_record_the_forwarded_client(
    app: FastAPI, database: Database, logs: LogCapture
) -> None:
    async def over_a_unix_socket(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": None}, receive, send)  # a Unix socket has no peer address

    transport = httpx.ASGITransport(app=over_a_unix_socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://authsvc") as client:
        registered = await client.post(
            "/auth/register",
            json={"email": "uds@example.com", "username": "uds", "password": "correct horse 42"},
            headers={"X-Forwarded-For": "198.51.100.23"},
        )
    assert registered.status_code == 201, registered.text

    [event] = await audit_events(database)
    assert event.event == "user.registered"
    assert event.ip == "198.51.100.23"
    lines = logs.of_request(registered.headers["X-Request-ID"])
    assert {line["client_ip"] for line in lines} == {"198.51.100.23"}


async def test_failed_logins_are_recorded_with_their_reason_although_the_answer_is_401(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user, inactive = await user_factory(), await user_factory()
    admin = await user_factory()
    await grant(database, admin.id, "admin")
    admin_token = (await sign_in(client, admin.username))["access_token"]
    await client.patch(
        f"/admin/users/{inactive.id}", json={"is_active": False}, headers=bearer(admin_token)
    )

    answers = [
        (await _login(client, "nobody-here", user.password)).status_code,
        (await _login(client, user.username, "the wrong password")).status_code,
        (await _login(client, inactive.username, inactive.password)).status_code,
    ]

    assert answers == [401, 401, 401]
    failed = await audit_events(database, "login.failed")
    assert [(e.user_id, e.actor_id, e.details) for e in failed] == [
        (None, None, {"reason": "unknown_user"}),
        (user.id, None, {"reason": "wrong_password"}),
        (inactive.id, None, {"reason": "inactive"}),
    ]


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "2/hour"}])
async def test_a_throttled_flood_is_recorded_once_per_refusal_period(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    answers = [(await _login(client, user.username, "wrong guess")).status_code for _ in range(7)]
    assert answers == [401, 401, 429, 429, 429, 429, 429]
    [throttled] = await audit_events(database, "login.throttled")
    assert throttled.user_id == user.id
    assert throttled.actor_id is None
    assert throttled.details["bucket"] == "login-account-ip"
    assert throttled.details["retry_after"] > 0
    assert len(await audit_events(database, "login.failed")) == 2


async def test_logout_and_ended_sessions_are_recorded_with_the_user_as_actor(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    other, third = await sign_in(client, user.username), await sign_in(client, user.username)
    await client.post("/auth/logout", json={"refresh_token": other["refresh_token"]})
    await client.post("/auth/logout", json={"refresh_token": other["refresh_token"]})  # no-op
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    third_id = next(s["id"] for s in sessions if not s["current"])
    await client.delete(f"/users/me/sessions/{third_id}", headers=user.auth)
    await client.delete("/users/me/sessions", headers=user.auth)

    [logout] = await audit_events(database, "logout")
    revoked = await audit_events(database, "session.revoked")

    assert (logout.user_id, logout.actor_id) == (user.id, user.id)
    assert [(e.user_id, e.actor_id) for e in revoked] == [(user.id, user.id)] * 2
    assert revoked[0].details == {"scope": "one", "session_id": third_id, "count": 1}
    assert revoked[1].details == {"scope": "others", "count": 0}
    assert third["access_token"]  # ended above


@ROTATION
async def test_refresh_token_reuse_is_recorded_although_the_answer_is_401(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    assert (
        await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    ).status_code == 200
    reuse = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert reuse.status_code == 401
    [event] = await audit_events(database, "token.reuse_detected")
    assert event.user_id == user.id
    assert event.actor_id is None


async def test_admin_changes_are_recorded_with_the_changed_fields_and_the_admin_as_actor(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    admin, user = await user_factory(), await user_factory()
    await grant(database, admin.id, "admin")
    token = bearer((await sign_in(client, admin.username))["access_token"])
    await client.patch(
        f"/admin/users/{user.id}", json={"roles": ["ops"], "is_active": False}, headers=token
    )
    await client.patch(
        f"/admin/users/{user.id}", json={"roles": ["ops"]}, headers=token
    )  # no change

    [updated] = await audit_events(database, "user.updated")

    assert (updated.user_id, updated.actor_id) == (user.id, admin.id)
    assert updated.details == {
        "fields": ["is_active", "roles"],
        "is_active": {"from": True, "to": False},
        "roles": {"added": ["ops"], "removed": []},
    }


async def test_a_rolled_back_action_leaves_no_event_and_a_committed_one_does(
    database: Database,
) -> None:
    async def failing_action() -> None:
        async with database.session() as session:
            AuditLog(session).record(Event.USER_UPDATED, user_id=1, details={"fields": ["x"]})
            await session.flush()
            raise RuntimeError("the action failed after its event was written")

    with pytest.raises(RuntimeError):
        await failing_action()
    assert await audit_events(database) == []
    async with database.session() as session:
        AuditLog(session).record(Event.USER_UPDATED, user_id=1, details={"fields": ["x"]})
    [kept] = await audit_events(database)
    assert (kept.ip, kept.user_agent, kept.request_id) == (None, None, None)  # no request


@pytest.mark.parametrize("key", ["password", "new_password", "refresh_token", "secret", "hash"])
def test_details_that_name_a_secret_are_refused(key: str) -> None:
    log = AuditLog(session=None)  # type: ignore[arg-type]  # refused before any database use
    with pytest.raises(ValueError, match="secrets"):
        log.record(Event.USER_UPDATED, user_id=1, details={key: "x"})


async def test_no_event_holds_a_password_a_token_or_a_hash_the_suite_used(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database, settings: Settings
) -> None:
    password = "Saffron-Walrus-Kettle-93b1"
    user = await user_factory(password=password)
    secrets: list[str] = [password, "Wrong-Guess-Teal-55", TEST_SECRET]
    secrets += [user.access_token, user.refresh_token]
    login = await sign_in(client, user.username, password=password)
    secrets += [login["access_token"], login["refresh_token"]]
    await _login(client, user.username, "Wrong-Guess-Teal-55")
    await _login(client, "Wrong-Guess-Teal-55", password)  # a password typed as the name
    refreshed = await client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    secrets.append(refreshed.json()["access_token"])
    await client.post("/auth/logout", json={"refresh_token": login["refresh_token"]})
    await client.delete("/users/me/sessions", headers=user.auth)
    wrong = await client.request(
        "DELETE", "/users/me", json={"current_password": "Wrong-Guess-Teal-55"}, headers=user.auth
    )
    assert wrong.status_code == 400
    async with database.session() as session:
        stored = (await session.execute(select(User.hashed_password))).scalars().all()
    secrets += list(stored)
    assert (
        await client.request(
            "DELETE", "/users/me", json={"current_password": password}, headers=user.auth
        )
    ).status_code == 204

    events = await audit_events(database)
    dumped = "\n".join(
        repr((e.event, e.user_id, e.actor_id, e.ip, e.user_agent, e.request_id, e.details))
        for e in events
    )
    assert len(events) == 7  # registered, login, 2 failures, logout, revoked, deleted
    for secret in secrets:
        assert secret not in dumped
    for token in secrets[3:8]:
        assert token.rsplit(".", 1)[1] not in dumped
    assert "$argon2" not in dumped
    assert user.email not in dumped
    assert user.username not in dumped


# --- reading the trail ---------------------------------------------------------------------


async def _admin_token(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> dict[str, str]:
    admin = await user_factory()
    await grant(database, admin.id, "admin")
    return bearer((await sign_in(client, admin.username))["access_token"])


async def test_my_activity_lists_my_own_events_newest_first_page_by_page(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    me, stranger = await user_factory(), await user_factory()
    for _ in range(3):
        await sign_in(client, me.username)
    await _login(client, stranger.username, "wrong password here")

    first = await client.get("/users/me/audit", params={"limit": 2}, headers=me.auth)
    assert first.status_code == 200
    body = first.json()
    assert [e["event"] for e in body["items"]] == ["login.succeeded", "login.succeeded"]
    second = await client.get(
        "/users/me/audit", params={"limit": 2, "cursor": body["next_cursor"]}, headers=me.auth
    )
    rest = second.json()
    assert [e["event"] for e in rest["items"]] == ["login.succeeded", "user.registered"]
    assert rest["next_cursor"] is None
    ids = [e["id"] for e in body["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    assert {e["user_id"] for e in body["items"] + rest["items"]} == {me.id}
    assert set(body["items"][0]) == {
        "id",
        "at",
        "event",
        "user_id",
        "actor_id",
        "ip",
        "user_agent",
        "request_id",
        "details",
    }


async def test_admin_audit_filters_by_user_event_and_time(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    token = await _admin_token(client, user_factory, database)
    user = await user_factory()
    await _login(client, user.username, "wrong password here")
    middle = datetime.now(UTC)
    await _login(client, user.username, "wrong password again")

    async def events(**params: Any) -> list[dict[str, Any]]:
        response = await client.get("/admin/audit", params=params, headers=token)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    mine = await events(user_id=user.id)
    assert [e["event"] for e in mine] == ["login.failed", "login.failed", "user.registered"]
    assert len(await events(event="login.failed")) == 2
    assert len(await events(event="login.failed", since=middle.isoformat())) == 1
    assert len(await events(event="login.failed", until=middle.isoformat())) == 1
    naive = middle.replace(tzinfo=None).isoformat()  # a zoneless time is UTC
    assert len(await events(event="login.failed", since=naive)) == 1
    assert await events(user_id=2**40) == []
    everything = await events()
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)


@pytest.mark.parametrize(
    "params", [{"event": "LOGIN"}, {"since": "yesterday"}, {"limit": 500}, {"cursor": "!!"}]
)
async def test_admin_audit_with_bad_parameters_is_400(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database, params: dict[str, Any]
) -> None:
    token = await _admin_token(client, user_factory, database)
    response = await client.get("/admin/audit", params=params, headers=token)
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_events_older_than_the_retention_are_purged(
    database: Database, settings: Settings
) -> None:
    now = datetime.now(UTC)
    async with database.session() as session:
        for age in (91, 89, 1):
            clock = lambda age=age: now - timedelta(days=age)  # noqa: E731
            AuditLog(session, clock=clock).record(Event.LOGOUT, user_id=age)

    assert await purge_old_audit_events(database, settings) == 1
    assert sorted(e.user_id or 0 for e in await audit_events(database)) == [1, 89]
    keep_all = settings.model_copy(update={"audit_retention_days": 0})
    assert await purge_old_audit_events(database, keep_all) == 0
    short = settings.model_copy(update={"audit_retention_days": 30})
    assert await purge_old_audit_events(database, short) == 1


async def test_the_periodic_cleanup_purges_old_events(database_url: str, tmp_path: Path) -> None:
    settings = build_settings(database_url, tmp_path, session_cleanup_interval_seconds=1)
    async with running_app(settings) as (app, _):
        database: Database = app.state.database
        async with database.session() as session:
            old = datetime.now(UTC) - timedelta(days=400)
            AuditLog(session, clock=lambda: old).record(Event.LOGOUT, user_id=1)
            AuditLog(session).record(Event.LOGOUT, user_id=2)
        deadline = time.monotonic() + 15
        while [e.user_id for e in await audit_events(database)] != [2]:
            assert time.monotonic() < deadline, "the clean-up did not purge the old event"
            await asyncio.sleep(0.05)
