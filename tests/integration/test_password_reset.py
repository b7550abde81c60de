"""Password reset through a real SMTP server: the mailed link, single use, expiry, purpose."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import OneTimeToken
from app.recovery.one_time_tokens import hash_token
from tests.support import UserFactory, assert_error, running_app
from tests.support.mailbox import (
    PASSWORD_CHANGED_SUBJECT,
    RESET_SUBJECT,
    VERIFY_SUBJECT,
    Mailbox,
    smtp_overrides,
)

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return smtp_overrides(smtp_server)


async def _forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/password/forgot", json={"email": email})


async def _reset(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/password/reset", json={"token": token, "new_password": password}
    )


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_reset_link_from_the_mail_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    second = await _login(client, user.email, user.password)

    forgot = await _forgot(client, user.email.upper())
    assert forgot.status_code == 202
    assert forgot.json() == {
        "detail": "If the address belongs to an account, a reset link is on its way"
    }
    mail = await smtp_server.one(user.email, RESET_SUBJECT)
    assert mail.link.startswith("http://localhost:8000/reset-password?token=")
    assert user.username in mail.text

    reset = await _reset(client, mail.token, NEW_PASSWORD)

    assert reset.status_code == 204, reset.text
    assert_error(await _login(client, user.email, user.password), 401, "INVALID_CREDENTIALS")
    assert (await _login(client, user.email, NEW_PASSWORD)).status_code == 200
    for access in (user.access_token, second.json()["access_token"]):
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {access}"})
        assert_error(me, 401, "INVALID_TOKEN")
    for refresh in (user.refresh_token, second.json()["refresh_token"]):
        refreshed = await client.post("/auth/refresh", json={"refresh_token": refresh})
        assert_error(refreshed, 401, "INVALID_TOKEN")
    notice = await smtp_server.one(user.email, PASSWORD_CHANGED_SUBJECT)
    assert "http" not in notice.text  # a notice carries no link to follow
    # The mail reached its owner: the address counts as verified.
    token = (await _login(client, user.email, NEW_PASSWORD)).json()
    assert token["user"]["email_verified"] is True


async def test_the_message_has_a_text_and_an_html_part_and_proper_headers(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    mail = await smtp_server.one(user.email, RESET_SUBJECT)

    assert mail.envelope_to == [user.email]
    assert mail.message["From"] == "authsvc <no-reply@localhost>"
    assert mail.message["Message-ID"].endswith("@localhost>")
    assert mail.message["Date"]
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.link in mail.text
    assert mail.link.replace("&", "&amp;") in mail.html
    assert len(mail.token) >= 43


async def test_a_reset_token_works_once(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    token = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    assert (await _reset(client, token, NEW_PASSWORD)).status_code == 204
    again = await _reset(client, token, "yet another passphrase 7")

    assert_error(again, 400, "INVALID_RESET_TOKEN")
    assert (await _login(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_two_concurrent_uses_of_one_token_give_one_success(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    token = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    first, second = await asyncio.gather(
        _reset(client, token, "first racing passphrase"),
        _reset(client, token, "second racing passphrase"),
    )

    assert sorted([first.status_code, second.status_code]) == [204, 400]
    winner = "first racing passphrase" if first.status_code == 204 else "second racing passphrase"
    loser = "second racing passphrase" if first.status_code == 204 else "first racing passphrase"
    assert (await _login(client, user.email, winner)).status_code == 200
    assert (await _login(client, user.email, loser)).status_code == 401


async def test_a_later_reset_kills_the_earlier_reset_links(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    await _forgot(client, user.email)
    mails = await smtp_server.wait_for(lambda m: m.subject == RESET_SUBJECT, count=2)
    first, second = (m.token for m in mails)
    assert first != second

    assert (await _reset(client, second, NEW_PASSWORD)).status_code == 204

    assert_error(await _reset(client, first, "another passphrase 9"), 400, "INVALID_RESET_TOKEN")


async def test_a_verification_token_is_refused_by_reset_and_the_other_way_round(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    verification = (await smtp_server.one(user.email, VERIFY_SUBJECT)).token
    await _forgot(client, user.email)
    reset = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    assert_error(await _reset(client, verification, NEW_PASSWORD), 400, "INVALID_RESET_TOKEN")
    refused = await client.post("/auth/verify-email", json={"token": reset})
    assert_error(refused, 400, "INVALID_VERIFICATION_TOKEN")
    # Neither refusal used anything up.
    assert (await _reset(client, reset, NEW_PASSWORD)).status_code == 204
    verified = await client.post("/auth/verify-email", json={"token": verification})
    assert verified.status_code == 200


async def test_unknown_and_malformed_tokens_are_400(client: httpx.AsyncClient) -> None:
    for token in ("A" * 43, "not a token at all", "x" * 512):
        assert_error(await _reset(client, token, NEW_PASSWORD), 400, "INVALID_RESET_TOKEN")
    too_long = await _reset(client, "x" * 513, NEW_PASSWORD)
    assert_error(too_long, 400, "VALIDATION_ERROR")


async def test_a_weak_new_password_is_refused_on_its_field_and_keeps_the_token(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    token = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    weak = await _reset(client, token, "password")

    assert_error(weak, 400, "VALIDATION_ERROR")
    assert {e["field"] for e in weak.json()["errors"]} == {"new_password"}
    assert (await _reset(client, token, NEW_PASSWORD)).status_code == 204


async def test_only_the_hash_of_a_token_is_stored(
    app: Any, client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await _forgot(client, user.email)
    token = (await smtp_server.one(user.email, RESET_SUBJECT)).token

    async with app.state.database.session() as session:
        rows = (await session.execute(select(OneTimeToken))).scalars().all()
    assert hash_token(token) in {row.token_hash for row in rows}
    assert all(token not in (row.token_hash, row.email) for row in rows)


class WallClock:
    """A UTC clock that moves only when told to (one-time token expiry)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def test_a_reset_token_expires_after_its_lifetime(
    settings: Settings, smtp_server: Mailbox
) -> None:
    clock = WallClock()
    async with running_app(settings, wall_clock=clock) as (_, client):
        await client.post(
            "/auth/register",
            json={"email": "late@example.com", "username": "late", "password": "a long passphrase"},
        )
        await _forgot(client, "late@example.com")
        token = (await smtp_server.one("late@example.com", RESET_SUBJECT)).token
        clock.advance(timedelta(minutes=settings.password_reset_token_expire_minutes, seconds=1))

        expired = await _reset(client, token, NEW_PASSWORD)

        assert_error(expired, 400, "INVALID_RESET_TOKEN")


async def test_a_reset_token_still_works_just_before_it_expires(
    settings: Settings, smtp_server: Mailbox
) -> None:
    clock = WallClock()
    async with running_app(settings, wall_clock=clock) as (_, client):
        await client.post(
            "/auth/register",
            json={"email": "soon@example.com", "username": "soon", "password": "a long passphrase"},
        )
        await _forgot(client, "soon@example.com")
        token = (await smtp_server.one("soon@example.com", RESET_SUBJECT)).token
        clock.advance(timedelta(minutes=settings.password_reset_token_expire_minutes - 1))

        assert (await _reset(client, token, NEW_PASSWORD)).status_code == 204


async def test_no_mail_for_an_unknown_or_inactive_address(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    smtp_server: Mailbox,
    run_cli: Any,
) -> None:
    inactive = await user_factory()
    await run_cli("users", "deactivate", inactive.email)
    known = await user_factory()

    for email in ("nobody@example.com", inactive.email, known.email):
        assert (await _forgot(client, email)).status_code == 202

    await smtp_server.one(known.email, RESET_SUBJECT)
    # The known address's job was queued last: the other two were handled before it.
    assert smtp_server.received(lambda m: m.subject == RESET_SUBJECT) == smtp_server.received(
        lambda m: m.to == known.email and m.subject == RESET_SUBJECT
    )
