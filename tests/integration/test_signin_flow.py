"""The sign-in flow and its methods, over HTTP: re-authentication for turning two-factor
on, the notices of two-factor on and off, the cost of a wrong recovery code, throttled
unknown mfa_tokens, a second step that a password change ends, accounts without a
password."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.config import Settings
from app.core.passwords import PasswordHasher
from app.database import Database
from app.main import create_app
from app.models import User
from tests.integration.test_mfa import _mfa_user
from tests.support import PASSWORD, UserFactory, assert_error, running_app
from tests.support.admin import bearer, grant, sign_in
from tests.support.mailbox import Mailbox, smtp_overrides
from tests.support.mfa import WallClock, password_step, second_step, totp_code

MFA_ON_SUBJECT = "Two-factor authentication was turned on"
MFA_OFF_SUBJECT = "Two-factor authentication was turned off"


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return {
        **smtp_overrides(smtp_server),
        "rate_limit_login_account": "1000/minute",
        "rate_limit_signin_flow_ip": "3/minute",
    }


@pytest.fixture
async def app(settings: Settings, wall_clock: WallClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, wall_clock=wall_clock)
    async with application.router.lifespan_context(application):
        yield application


class HashCount:
    """How many password-hash verifications the service ran (`verify`, each a hash) and
    how many of them were against the dummy hash (`dummy`)."""

    def __init__(self) -> None:
        self.verify = 0
        self.dummy = 0


@pytest.fixture
def hash_count(app: FastAPI) -> Iterator[HashCount]:
    hasher: PasswordHasher = app.state.hasher
    count = HashCount()
    verify, dummy = hasher.verify_sync, hasher.verify_dummy_sync

    def counted_verify(password: str, hashed: str) -> tuple[bool, str | None]:
        count.verify += 1
        return verify(password, hashed)

    def counted_dummy(password: str) -> None:
        count.dummy += 1
        dummy(password)

    hasher.verify_sync = counted_verify  # type: ignore[method-assign]
    hasher.verify_dummy_sync = counted_dummy  # type: ignore[method-assign]
    yield count
    hasher.verify_sync, hasher.verify_dummy_sync = verify, dummy  # type: ignore[method-assign]


# --- re-authentication --------------------------------------------------------------------


async def test_a_stolen_access_token_alone_cannot_turn_two_factor_on(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    # The token is still valid (30 minutes), its sign-in no longer recent (5 minutes).
    wall_clock.advance(301)

    response = await client.post("/users/me/mfa/totp", headers=user.auth)

    assert_error(response, 403, "REAUTHENTICATION_REQUIRED")
    me = await client.get("/users/me", headers=user.auth)
    assert me.json()["mfa_enabled"] is False


async def test_an_old_session_turns_two_factor_on_with_the_current_password(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    wall_clock.advance(301)

    wrong = await client.post(
        "/users/me/mfa/totp", json={"current_password": "not the password"}, headers=user.auth
    )
    right = await client.post(
        "/users/me/mfa/totp", json={"current_password": user.password}, headers=user.auth
    )

    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    assert right.status_code == 201, right.text
    assert set(right.json()) == {"secret", "otpauth_uri", "qr_svg"}


async def test_a_recent_sign_in_turns_two_factor_on_without_a_password(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    wall_clock.advance(299)

    response = await client.post("/users/me/mfa/totp", headers=user.auth)

    assert response.status_code == 201, response.text


# --- notices --------------------------------------------------------------------------------


async def test_turning_two_factor_on_and_off_mails_a_notice_each_time(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    smtp_server: Mailbox,
) -> None:
    user, _, _ = await _mfa_user(client, user_factory, wall_clock)
    on = await smtp_server.one(user.email, MFA_ON_SUBJECT)

    off = await client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": user.password}, headers=user.auth
    )

    assert off.status_code == 204, off.text
    notice = await smtp_server.one(user.email, MFA_OFF_SUBJECT)
    assert "turned on" in " ".join(on.text.split())
    assert "with your password" in " ".join(notice.text.split())


async def test_an_admin_turning_two_factor_off_mails_the_user(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    database: Database,
    smtp_server: Mailbox,
) -> None:
    user, _, _ = await _mfa_user(client, user_factory, wall_clock)
    admin = await user_factory(username="root", email="root@example.com")
    await grant(database, admin.id, "admin")
    admin_token = (await sign_in(client, admin.username))["access_token"]

    reset = await client.delete(f"/admin/users/{user.id}/mfa", headers=bearer(admin_token))

    assert reset.status_code == 204, reset.text
    notice = await smtp_server.one(user.email, MFA_OFF_SUBJECT)
    assert "by an administrator" in " ".join(notice.text.split())


# --- the second step ------------------------------------------------------------------------


async def test_a_wrong_recovery_code_costs_no_more_than_one_hash(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    hash_count: HashCount,
) -> None:
    user, _, codes = await _mfa_user(client, user_factory, wall_clock)
    token = await password_step(client, user.username)
    before = hash_count.verify

    wrong = await second_step(client, token, "zzzzz-zzzzz")
    wrong_cost = hash_count.verify - before
    right = await second_step(client, token, codes[-1])
    right_cost = hash_count.verify - before - wrong_cost

    assert_error(wrong, 401, "INVALID_MFA_CODE")
    assert right.status_code == 200, right.text
    # Ten unused codes: the one whose lookup tag matches is checked, no other.
    assert wrong_cost <= 1
    assert right_cost == 1


async def test_unknown_mfa_tokens_are_throttled_per_client(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    token = await password_step(client, user.username)

    guesses = [await second_step(client, f"guessed-token-{n}", "123456") for n in range(4)]

    for guess in guesses[:3]:
        assert_error(guess, 401, "INVALID_TOKEN")
    assert_error(guesses[3], 429, "RATE_LIMITED")
    # A real flow of the same client is not held up by the guesses.
    done = await second_step(client, token, totp_code(secret, wall_clock.now))
    assert done.status_code == 200, done.text


async def test_a_second_step_begun_with_the_old_password_fails_after_a_change(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    stolen = await password_step(client, user.username)
    changed = await client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": "a brand new passphrase 42"},
        headers=user.auth,
    )
    assert changed.status_code == 200, changed.text

    response = await second_step(client, stolen, totp_code(secret, wall_clock.now))

    assert_error(response, 401, "INVALID_TOKEN")


async def test_a_second_step_begun_with_the_old_password_fails_after_a_reset(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    database: Database,
    app: FastAPI,
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    stolen = await password_step(client, user.username)
    new_hash = await app.state.hasher.hash("a brand new passphrase 42")
    async with database.session() as session:  # what a reset through the mailed link stores
        await session.execute(
            update(User).where(User.id == user.id).values(hashed_password=new_hash)
        )

    response = await second_step(client, stolen, totp_code(secret, wall_clock.now))

    assert_error(response, 401, "INVALID_TOKEN")


# --- accounts without a password -------------------------------------------------------------


async def _remove_password(database: Database, user_id: int) -> None:
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(hashed_password=None))


async def test_a_password_sign_in_without_a_password_is_a_wrong_password(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    database: Database,
    hash_count: HashCount,
) -> None:
    user = await user_factory()
    await _remove_password(database, user.id)

    response = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    wrong = await client.post(
        "/auth/login", json={"username": "nobody-here", "password": user.password}
    )

    assert_error(response, 401, "INVALID_CREDENTIALS")
    assert response.json()["detail"] == wrong.json()["detail"]
    # The same work as for an unknown account: one hash each, against the dummy hash.
    assert (hash_count.verify, hash_count.dummy) == (2, 2)


async def test_the_user_object_says_whether_there_is_a_password(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    assert (await client.get("/users/me", headers=user.auth)).json()["has_password"] is True

    await _remove_password(database, user.id)
    me = await client.get("/users/me", headers=user.auth)

    assert me.json()["has_password"] is False


async def test_without_a_password_a_sensitive_change_needs_a_recent_sign_in(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database, wall_clock: WallClock
) -> None:
    user = await user_factory()
    await _remove_password(database, user.id)
    change: Callable[[], Any] = lambda: client.put(  # noqa: E731
        "/users/me/email",
        json={"new_email": "new@example.com", "current_password": "anything at all"},
        headers=user.auth,
    )

    recent = await change()
    wall_clock.advance(timedelta(minutes=6).total_seconds())
    old = await change()

    assert recent.status_code == 202, recent.text
    assert_error(old, 403, "REAUTHENTICATION_REQUIRED")


# --- one check of the current password ------------------------------------------------------


async def test_every_check_of_the_current_password_shares_one_budget_and_clears_none(
    settings: Settings, wall_clock: WallClock
) -> None:
    """Password change, email change, account deletion and two-factor on or off count in the
    login's per-account bucket, and a right password at any of them clears no count (the
    password change used to clear them, the deletion never did)."""
    tight = settings.model_copy(update={"rate_limit_login_account": "4/5 minutes"})
    async with running_app(tight, wall_clock=wall_clock) as (_, client):
        registered = await client.post(
            "/auth/register",
            json={"email": "quinn@example.com", "username": "quinn", "password": PASSWORD},
        )
        auth = bearer(registered.json()["access_token"])
        wrong = {"current_password": "not the password"}

        deleting = await client.request("DELETE", "/users/me", json=wrong, headers=auth)
        turning_off = await client.request("DELETE", "/users/me/mfa/totp", json=wrong, headers=auth)
        new_password = "a brand new passphrase 42"
        right = await client.put(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=auth,
        )
        # The checks count on the account's address: so do these.
        email = "quinn@example.com"
        mistyped = await client.post("/auth/login", json={"email": email, "password": "x"})
        login = await client.post("/auth/login", json={"email": email, "password": new_password})

    assert_error(deleting, 400, "INVALID_CURRENT_PASSWORD")
    assert_error(turning_off, 400, "INVALID_CURRENT_PASSWORD")
    assert right.status_code == 200, right.text
    assert_error(mistyped, 401, "INVALID_CREDENTIALS")  # the fourth count of the window
    assert_error(login, 429, "RATE_LIMITED")
