"""Email verification, resend and change, and EMAIL_VERIFICATION_REQUIRED, over real SMTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, UserFactory, assert_error, build_settings, running_app
from tests.support.mailbox import (
    CHANGE_NOTICE_SUBJECT,
    CHANGE_SUBJECT,
    VERIFY_SUBJECT,
    Mailbox,
    smtp_overrides,
)


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return smtp_overrides(smtp_server)


async def _verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify-email", json={"token": token})


async def test_registration_mails_a_link_that_verifies_the_address(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    mail = await smtp_server.one(user.email, VERIFY_SUBJECT)
    assert mail.link.startswith("http://localhost:8000/verify-email?token=")

    verified = await _verify(client, mail.token)

    assert verified.status_code == 200, verified.text
    assert verified.json()["id"] == user.id
    assert verified.json()["email_verified"] is True
    me = await client.get("/users/me", headers=user.auth)
    assert me.json()["email_verified"] is True
    assert_error(await _verify(client, mail.token), 400, "INVALID_VERIFICATION_TOKEN")


async def test_resend_answers_alike_and_mails_only_an_unverified_account(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    verified = await user_factory()
    await _verify(client, (await smtp_server.one(verified.email, VERIFY_SUBJECT)).token)
    unverified = await user_factory()
    await smtp_server.one(unverified.email, VERIFY_SUBJECT)

    answers = [
        await client.post("/auth/verify-email/resend", json={"email": email})
        for email in (verified.email, "nobody@example.com", unverified.email)
    ]

    expected = "If the address belongs to an account that needs it, a link is on its way"
    assert [(a.status_code, a.json()) for a in answers] == [(202, {"detail": expected})] * 3
    resent = await smtp_server.wait_for(
        lambda m: m.to == unverified.email and m.subject == VERIFY_SUBJECT, count=2
    )
    assert resent[0].token != resent[1].token
    assert len(smtp_server.received(lambda m: m.to == verified.email)) == 1
    assert smtp_server.received(lambda m: m.to == "nobody@example.com") == []
    # Both links of the unverified account work; the first one used settles it.
    assert (await _verify(client, resent[1].token)).status_code == 200


async def test_email_change_mails_the_new_address_a_link_and_the_old_a_notice(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    new_email = "moved@example.org"

    asked = await client.put(
        "/users/me/email",
        json={"new_email": "Moved@Example.org", "current_password": user.password},
        headers=user.auth,
    )

    assert asked.status_code == 202, asked.text
    notice = await smtp_server.one(user.email, CHANGE_NOTICE_SUBJECT)
    assert "m***@example.org" in notice.text
    assert "http" not in notice.text
    link = await smtp_server.one(new_email, CHANGE_SUBJECT)
    # Nothing changes before the link is used.
    assert (await client.get("/users/me", headers=user.auth)).json()["email"] == user.email

    changed = await _verify(client, link.token)

    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == new_email
    assert changed.json()["email_verified"] is True
    login = await client.post("/auth/login", json={"email": new_email, "password": user.password})
    assert login.status_code == 200
    old = await client.post("/auth/login", json={"email": user.email, "password": user.password})
    assert_error(old, 401, "INVALID_CREDENTIALS")


async def test_email_change_to_a_taken_address_is_409_and_mails_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user, other = await user_factory(), await user_factory()
    for new_email in (other.email, user.email):
        taken = await client.put(
            "/users/me/email",
            json={"new_email": new_email, "current_password": user.password},
            headers=user.auth,
        )
        assert_error(taken, 409, "USER_ALREADY_EXISTS")
    await smtp_server.wait_for(lambda m: m.subject == VERIFY_SUBJECT, count=2)
    assert smtp_server.received(lambda m: m.subject != VERIFY_SUBJECT) == []


async def test_email_change_link_is_409_when_the_address_was_taken_meanwhile(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    await client.put(
        "/users/me/email",
        json={"new_email": "wanted@example.com", "current_password": user.password},
        headers=user.auth,
    )
    token = (await smtp_server.one("wanted@example.com", CHANGE_SUBJECT)).token
    await user_factory(email="wanted@example.com")

    assert_error(await _verify(client, token), 409, "USER_ALREADY_EXISTS")


async def test_email_change_with_a_wrong_password_is_400_and_mails_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    wrong = await client.put(
        "/users/me/email",
        json={"new_email": "else@example.com", "current_password": "not the password"},
        headers=user.auth,
    )
    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    unauthenticated = await client.put(
        "/users/me/email", json={"new_email": "else@example.com", "current_password": PASSWORD}
    )
    assert_error(unauthenticated, 401, "NOT_AUTHENTICATED")
    await smtp_server.one(user.email, VERIFY_SUBJECT)
    assert smtp_server.received(lambda m: m.to == "else@example.com") == []


async def test_an_old_verification_link_dies_when_the_address_changes(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    old_link = (await smtp_server.one(user.email, VERIFY_SUBJECT)).token
    await client.put(
        "/users/me/email",
        json={"new_email": "fresh@example.com", "current_password": user.password},
        headers=user.auth,
    )
    await _verify(client, (await smtp_server.one("fresh@example.com", CHANGE_SUBJECT)).token)

    assert_error(await _verify(client, old_link), 400, "INVALID_VERIFICATION_TOKEN")


async def test_with_verification_required_registration_gives_no_tokens_until_verified(
    settings: Any, smtp_server: Mailbox, tmp_path: Any
) -> None:
    required = build_settings(
        settings.database_url,
        tmp_path,
        **smtp_overrides(smtp_server),
        email_verification_required=True,
        redis_key_prefix=settings.redis_key_prefix,
    )
    credentials = {"email": "strict@example.com", "password": PASSWORD}
    async with running_app(required) as (_, client):
        registered = await client.post("/auth/register", json={**credentials, "username": "strict"})
        assert registered.status_code == 202, registered.text
        body = registered.json()
        assert set(body) == {"detail", "user"}
        assert body["user"]["email_verified"] is False

        unverified = await client.post("/auth/login", json=credentials)
        assert_error(unverified, 403, "EMAIL_NOT_VERIFIED")
        wrong = await client.post("/auth/login", json={**credentials, "password": "wrong one!"})
        assert_error(wrong, 401, "INVALID_CREDENTIALS")
        grant = await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "strict", "password": PASSWORD},
        )
        assert grant.status_code == 400
        assert grant.json()["error"] == "invalid_grant"

        token = (await smtp_server.one("strict@example.com", VERIFY_SUBJECT)).token
        assert (await _verify(client, token)).status_code == 200

        assert (await client.post("/auth/login", json=credentials)).status_code == 200
