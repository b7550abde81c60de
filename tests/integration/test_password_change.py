"""PUT /users/me/password: a new session for the caller, every other one ends, a notice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import UserFactory, assert_error
from tests.support.mailbox import PASSWORD_CHANGED_SUBJECT, RESET_SUBJECT, Mailbox, smtp_overrides

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return smtp_overrides(smtp_server)


async def _change(
    client: httpx.AsyncClient, auth: dict[str, str], current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.put(
        "/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=auth,
    )


async def test_change_ends_every_session_and_answers_with_a_new_one(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    other = (
        await client.post("/auth/login", json={"email": user.email, "password": user.password})
    ).json()

    changed = await _change(client, user.auth, user.password)

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["user"]["id"] == user.id
    assert changed.headers["Cache-Control"] == "no-store"
    fresh = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.get("/users/me", headers=fresh)).status_code == 200
    for access in (user.access_token, other["access_token"]):
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {access}"})
        assert_error(me, 401, "INVALID_TOKEN")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(refreshed, 401, "INVALID_TOKEN")
    login = await client.post("/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    await smtp_server.one(user.email, PASSWORD_CHANGED_SUBJECT)


async def test_wrong_current_password_is_400_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    wrong = await _change(client, user.auth, "not the password")

    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    login = await client.post("/auth/login", json={"email": user.email, "password": user.password})
    assert login.status_code == 200


async def test_wrong_current_passwords_count_towards_the_login_throttle(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(5):  # RATE_LIMIT_LOGIN_ACCOUNT's first window: 5 / 5 minutes
        assert_error(await _change(client, user.auth, "not the password"), 400,
                     "INVALID_CURRENT_PASSWORD")  # fmt: skip

    throttled = await _change(client, user.auth, user.password)
    login = await client.post("/auth/login", json={"email": user.email, "password": user.password})

    assert_error(throttled, 429, "RATE_LIMITED")
    assert_error(login, 429, "RATE_LIMITED")


async def test_a_weak_new_password_is_refused_on_its_field(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    weak = await _change(client, user.auth, user.password, new=user.username + "123")

    assert_error(weak, 400, "VALIDATION_ERROR")
    assert [e["field"] for e in weak.json()["errors"]] == ["new_password"]
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200


async def test_a_change_kills_outstanding_reset_links(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await client.post("/auth/password/forgot", json={"email": user.email})
    token = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    assert (await _change(client, user.auth, user.password)).status_code == 200

    reset = await client.post(
        "/auth/password/reset", json={"token": token, "new_password": "sneaky other passphrase"}
    )
    assert_error(reset, 400, "INVALID_RESET_TOKEN")
