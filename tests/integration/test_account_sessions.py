"""The signed-in user's sessions and deleting the account, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.database import Database
from app.models import AuthSession, UserRole
from tests.support import UserFactory
from tests.support.admin import audit_events, bearer, grant, sign_in


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _count(database: Database, model: type[AuthSession] | type[UserRole]) -> int:
    async with database.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_sessions_are_listed_newest_first_with_device_and_the_current_one(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    phone = await sign_in(client, user.username, user_agent="Phone/1.0")
    laptop = await sign_in(client, user.username, user_agent="Laptop/2.0 " + "x" * 400)

    response = await client.get("/users/me/sessions", headers=bearer(phone["access_token"]))

    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 3
    assert [s["current"] for s in sessions] == [False, True, False]
    assert sessions[0]["user_agent"].startswith("Laptop/2.0")
    assert len(sessions[0]["user_agent"]) == 256  # truncated, not refused
    assert sessions[1]["user_agent"] == "Phone/1.0"
    assert {s["ip"] for s in sessions} == {"203.0.113.7"}
    created = [_ts(s["created_at"]) for s in sessions]
    assert created == sorted(created, reverse=True)
    assert set(sessions[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "ip",
        "user_agent",
        "current",
    }
    assert laptop["access_token"] != phone["access_token"]


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": "203.0.113.0/24"}])
async def test_the_session_ip_is_the_one_trusted_proxies_forwarded_for(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    login = await client.post(
        "/auth/login",
        json={"username": user.username, "password": user.password},
        headers={"X-Forwarded-For": "198.51.100.23"},
    )
    sessions = (
        await client.get("/users/me/sessions", headers=bearer(login.json()["access_token"]))
    ).json()
    assert sessions[0]["ip"] == "198.51.100.23"


async def test_last_used_at_moves_on_refresh_but_not_on_a_bearer_request(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    async def last_used() -> datetime:
        sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
        return _ts(sessions[0]["last_used_at"])

    first = await last_used()
    for _ in range(3):
        assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    assert await last_used() == first
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert await last_used() > first


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": True}])
async def test_last_used_at_moves_on_a_rotating_refresh(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    before = (await client.get("/users/me/sessions", headers=user.auth)).json()[0]
    assert (
        await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    ).status_code == 200
    after = (await client.get("/users/me/sessions", headers=user.auth)).json()[0]
    assert _ts(after["last_used_at"]) > _ts(before["last_used_at"])
    assert after["created_at"] == before["created_at"]


async def test_ending_a_session_kills_its_tokens_at_once_and_keeps_the_others(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    other = await sign_in(client, user.username)
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    target = next(s["id"] for s in sessions if not s["current"])

    response = await client.delete(f"/users/me/sessions/{target}", headers=user.auth)

    assert response.status_code == 204
    assert (await client.get("/users/me", headers=bearer(other["access_token"]))).status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refresh.status_code == 401
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    remaining = (await client.get("/users/me/sessions", headers=user.auth)).json()
    assert [s["id"] for s in remaining] == [s["id"] for s in sessions if s["current"]]


async def test_ending_the_current_session_signs_the_caller_out(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    current = (await client.get("/users/me/sessions", headers=user.auth)).json()[0]["id"]
    assert (
        await client.delete(f"/users/me/sessions/{current}", headers=user.auth)
    ).status_code == 204
    assert (await client.get("/users/me", headers=user.auth)).status_code == 401


@pytest.mark.parametrize("kind", ["another_users", "unknown", "garbage", "nul"])
async def test_ending_a_session_that_is_not_the_callers_is_404(
    client: httpx.AsyncClient, user_factory: UserFactory, kind: str
) -> None:
    alice, bob = await user_factory(), await user_factory()
    bobs = (await client.get("/users/me/sessions", headers=bob.auth)).json()[0]["id"]
    session_id = {
        "another_users": bobs,
        "unknown": "0" * 32,
        "garbage": "x" * 300,
        "nul": "%00abc",
    }[kind]

    response = await client.delete(f"/users/me/sessions/{session_id}", headers=alice.auth)

    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"
    assert (await client.get("/users/me", headers=bob.auth)).status_code == 200


async def test_sign_out_everywhere_else_keeps_only_the_callers_session(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user, bystander = await user_factory(), await user_factory()
    others = [await sign_in(client, user.username) for _ in range(3)]

    response = await client.delete("/users/me/sessions", headers=user.auth)

    assert response.status_code == 204
    for other in others:
        assert (
            await client.get("/users/me", headers=bearer(other["access_token"]))
        ).status_code == 401
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    assert [s["current"] for s in sessions] == [True]
    assert (await client.get("/users/me", headers=bystander.auth)).status_code == 200


class TestTheCap:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"sessions_per_user_max": 3}

    async def test_a_sign_in_beyond_the_cap_ends_the_least_recently_used_session(
        self, client: httpx.AsyncClient, user_factory: UserFactory, database: Database
    ) -> None:
        user, bystander = await user_factory(), await user_factory()
        second, third = [await sign_in(client, user.username) for _ in range(2)]
        # The first session (the registration's) is refreshed: used more recently.
        refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
        assert refreshed.status_code == 200

        fourth = await sign_in(client, user.username)

        assert (
            await client.get("/users/me", headers=bearer(second["access_token"]))
        ).status_code == 401
        for kept in (refreshed.json(), third, fourth):
            assert (
                await client.get("/users/me", headers=bearer(kept["access_token"]))
            ).status_code == 200
        listed = (
            await client.get("/users/me/sessions", headers=bearer(fourth["access_token"]))
        ).json()
        assert len(listed) == 3
        (event,) = [
            e for e in await audit_events(database, "session.revoked") if e.user_id == user.id
        ]
        assert event.details == {"scope": "cap", "count": 1}
        assert (await client.get("/users/me", headers=bystander.auth)).status_code == 200


async def test_the_sessions_list_pages_with_a_link_to_the_next_page(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(4):
        await sign_in(client, user.username)
    everything = (await client.get("/users/me/sessions", headers=user.auth)).json()
    assert len(everything) == 5

    seen: list[str] = []
    url: str | None = "/users/me/sessions?limit=2"
    while url is not None:
        page = await client.get(url, headers=user.auth)
        assert page.status_code == 200, page.text
        assert len(page.json()) <= 2
        seen += [s["id"] for s in page.json()]
        link = page.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('; rel="next"')

    assert seen == [s["id"] for s in everything]
    bad = await client.get("/users/me/sessions?cursor=nonsense", headers=user.auth)
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "VALIDATION_ERROR"


async def test_session_routes_need_a_bearer_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/users/me/sessions"),
        ("DELETE", "/users/me/sessions"),
        ("DELETE", "/users/me/sessions/" + "0" * 32),
        ("GET", "/users/me/audit"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401, path
        assert response.json()["error_code"] == "NOT_AUTHENTICATED"
        assert response.headers["WWW-Authenticate"] == "Bearer"


# --- deleting the account ----------------------------------------------------------------


async def _delete_me(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.request(
        "DELETE", "/users/me", json={"current_password": password}, headers=bearer(token)
    )


async def test_deleting_the_account_removes_it_and_everything_tied_to_it(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user, bystander = await user_factory(), await user_factory()
    await grant(database, user.id, "billing")
    other = await sign_in(client, user.username)

    response = await _delete_me(client, user.access_token, user.password)

    assert response.status_code == 204
    for token in (user.access_token, other["access_token"]):
        gone = await client.get("/users/me", headers=bearer(token))
        assert gone.status_code == 401
        assert gone.json()["error_code"] == "INVALID_TOKEN"
    refresh = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refresh.status_code == 401
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert login.json()["error_code"] == "INVALID_CREDENTIALS"
    assert await _count(database, AuthSession) == 1  # the bystander's
    assert await _count(database, UserRole) == 0
    again = await client.post(
        "/auth/register",
        json={"email": user.email, "username": user.username, "password": user.password},
    )
    assert again.status_code == 201  # the name and address are free again
    assert (await client.get("/users/me", headers=bystander.auth)).status_code == 200


async def test_a_deleted_users_audit_events_stay_without_email_or_username(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory(email="leaving@example.com", username="leaving")
    await sign_in(client, user.username)
    assert (await _delete_me(client, user.access_token, user.password)).status_code == 204

    events = [e for e in await audit_events(database) if e.user_id == user.id]

    assert [e.event for e in events] == ["user.registered", "login.succeeded", "user.deleted"]
    deleted = events[-1]
    assert deleted.actor_id == user.id
    for event in events:
        text = repr((event.details, event.user_agent, event.ip))
        assert "leaving" not in text


async def test_deleting_the_account_with_a_wrong_password_is_400_and_keeps_it(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()

    response = await _delete_me(client, user.access_token, "not the password at all")

    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_CURRENT_PASSWORD"
    assert set(body) == {"detail", "error_code", "timestamp", "request_id"}
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    assert await audit_events(database, "user.deleted") == []


async def test_wrong_passwords_at_account_deletion_are_throttled_like_logins(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    answers = [
        (await _delete_me(client, user.access_token, f"wrong guess {n}")).status_code
        for n in range(6)
    ]
    assert answers == [400] * 5 + [429]  # RATE_LIMIT_LOGIN_ACCOUNT: 5 in 5 minutes
    assert (await _delete_me(client, user.access_token, user.password)).status_code == 429


@pytest.mark.parametrize(
    "body",
    [{}, {"current_password": ""}, {"current_password": "x", "force": True}],
    ids=["missing", "empty", "extra_field"],
)
async def test_deleting_the_account_with_a_bad_body_is_400(
    client: httpx.AsyncClient, user_factory: UserFactory, body: dict[str, object]
) -> None:
    user = await user_factory()
    response = await client.request("DELETE", "/users/me", json=body, headers=user.auth)
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_the_last_active_admin_cannot_delete_their_own_account(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    admin = await user_factory()
    await grant(database, admin.id, "admin")

    response = await _delete_me(client, admin.access_token, admin.password)

    assert response.status_code == 409
    assert response.json()["error_code"] == "LAST_ADMIN"
    assert (await client.get("/users/me", headers=admin.auth)).status_code == 200
    second = await user_factory()
    await grant(database, second.id, "admin")
    assert (await _delete_me(client, admin.access_token, admin.password)).status_code == 204
