"""Administration meets mail and keys: the admin's reset link, `email_verified`, the mail
flows' audit events, `key.rotated`, and account deletion with tokens and mail pending.
Real SMTP (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.database import Database
from app.mail.outbox import SUBJECTS
from app.mail.sender import purge_mail_and_tokens
from app.models import AuditEvent, OneTimeToken, OutboxMail
from app.models.mail import MailKind, MailStatus
from app.utils.clock import utc_now
from tests.support import RegisteredUser, UserFactory, assert_error
from tests.support.admin import audit_events, bearer
from tests.support.mailbox import (
    CHANGE_SUBJECT,
    RESET_SUBJECT,
    VERIFY_SUBJECT,
    Mailbox,
    smtp_overrides,
)

NEW_PASSWORD = "a brand new passphrase 42"
DEADLINE_S = 10.0


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return smtp_overrides(smtp_server)


async def _events_eventually(database: Database, name: str, count: int) -> list[AuditEvent]:
    """The events of a name once there are `count` of them (the sender records after
    delivery, in its own transaction); fails after a bounded deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        events = await audit_events(database, name)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


async def _count(database: Database, model: type[Any], *conditions: Any) -> int:
    async with database.session() as session:
        stmt = select(func.count()).select_from(model).where(*conditions)
        return int((await session.execute(stmt)).scalar_one())


async def test_an_admin_mails_a_reset_link_that_sets_the_password(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    admin: RegisteredUser,
    smtp_server: Mailbox,
    database: Database,
) -> None:
    user = await user_factory()

    response = await client.post(f"/admin/users/{user.id}/password-reset", headers=admin.auth)

    assert response.status_code == 202, response.text
    mail = await smtp_server.one(user.email, RESET_SUBJECT)
    # Nothing changed yet: the old password and sessions stay until the link is used.
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    reset = await client.post(
        "/auth/password/reset", json={"token": mail.token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text
    login = await client.post("/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    [requested] = await audit_events(database, "password.reset_requested")
    assert (requested.user_id, requested.actor_id) == (user.id, admin.id)
    assert requested.details == {"via": "admin"}
    assert requested.request_id is not None
    [done] = await audit_events(database, "password.reset")
    assert (done.user_id, done.actor_id) == (user.id, None)


async def test_an_admin_reset_of_an_inactive_or_unknown_account_mails_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser, database: Database
) -> None:
    user = await user_factory()
    off = await client.patch(
        f"/admin/users/{user.id}", json={"is_active": False}, headers=admin.auth
    )
    assert off.status_code == 200
    before = await _count(database, OutboxMail, OutboxMail.kind == "password_reset")

    inactive = await client.post(f"/admin/users/{user.id}/password-reset", headers=admin.auth)
    unknown = await client.post("/admin/users/999999/password-reset", headers=admin.auth)

    assert_error(inactive, 409, "ACCOUNT_INACTIVE")
    assert_error(unknown, 404, "NOT_FOUND")
    assert await _count(database, OutboxMail, OutboxMail.kind == "password_reset") == before
    assert await audit_events(database, "password.reset_requested") == []


async def test_an_admin_sets_and_clears_email_verified(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser, database: Database
) -> None:
    user = await user_factory()
    shown = (await client.get(f"/admin/users/{user.id}", headers=admin.auth)).json()
    assert shown["email_verified"] is False

    on = await client.patch(
        f"/admin/users/{user.id}", json={"email_verified": True}, headers=admin.auth
    )
    assert on.status_code == 200, on.text
    assert on.json()["email_verified"] is True
    me = (await client.get("/users/me", headers=user.auth)).json()
    assert me["email_verified"] is True
    off = await client.patch(
        f"/admin/users/{user.id}", json={"email_verified": False}, headers=admin.auth
    )
    assert off.json()["email_verified"] is False
    refused = await client.patch(
        f"/admin/users/{user.id}", json={"email_verified": "yes"}, headers=admin.auth
    )
    assert_error(refused, 400, "VALIDATION_ERROR")

    updates = await audit_events(database, "user.updated")
    assert [(e.user_id, e.actor_id, e.details["fields"]) for e in updates] == [
        (user.id, admin.id, ["email_verified"])
    ] * 2
    assert updates[0].details["email_verified"] == {"from": False, "to": True}


async def test_forgot_password_records_the_request_once_for_a_known_address_only(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    assert (
        await client.post("/auth/password/forgot", json={"email": "nobody@example.com"})
    ).status_code == 202
    assert (
        await client.post("/auth/password/forgot", json={"email": user.email})
    ).status_code == 202
    await smtp_server.one(user.email, RESET_SUBJECT)

    [requested] = await _events_eventually(database, "password.reset_requested", 1)
    assert (requested.user_id, requested.actor_id) == (user.id, None)
    assert requested.details == {"via": "forgot"}


async def test_verification_mail_and_link_are_recorded(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    mail = await smtp_server.one(user.email, VERIFY_SUBJECT)
    [sent] = await _events_eventually(database, "email.verification_sent", 1)
    assert (sent.user_id, sent.details) == (user.id, {"purpose": "verify"})

    verified = await client.post("/auth/verify-email", json={"token": mail.token})

    assert verified.status_code == 200, verified.text
    [event] = await audit_events(database, "email.verified")
    assert event.user_id == user.id


async def test_password_and_email_changes_are_recorded_without_the_addresses(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    changed = await client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=user.auth,
    )
    assert changed.status_code == 200, changed.text
    [password_changed] = await audit_events(database, "password.changed")
    assert (password_changed.user_id, password_changed.actor_id) == (user.id, user.id)

    token = changed.json()["access_token"]
    new_email = "moved-somewhere@example.com"
    asked = await client.put(
        "/users/me/email",
        json={"new_email": new_email, "current_password": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert asked.status_code == 202, asked.text
    mail = await smtp_server.one(new_email, CHANGE_SUBJECT)
    sent = await _events_eventually(database, "email.verification_sent", 2)
    assert {e.details["purpose"] for e in sent} == {"verify", "change"}
    assert (await client.post("/auth/verify-email", json={"token": mail.token})).status_code == 200

    [email_changed] = await audit_events(database, "email.changed")
    assert email_changed.user_id == user.id
    everything = json.dumps([[e.details, e.user_agent] for e in await audit_events(database)])
    for secret in (user.email, new_email, user.password, NEW_PASSWORD, mail.token):
        assert secret not in everything


async def test_deleting_an_account_removes_its_tokens_and_mail(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    assert (
        await client.post("/auth/password/forgot", json={"email": user.email})
    ).status_code == 202
    await smtp_server.one(user.email, RESET_SUBJECT)
    assert await _count(database, OneTimeToken, OneTimeToken.user_id == user.id) >= 1
    assert await _count(database, OutboxMail, OutboxMail.recipient == user.email) >= 1

    deleted = await client.request(
        "DELETE", "/users/me", json={"current_password": user.password}, headers=user.auth
    )

    assert deleted.status_code == 204, deleted.text
    assert await _count(database, OneTimeToken, OneTimeToken.user_id == user.id) == 0
    # Only the notice of the deletion names the address, and only until it is sent.
    notice = await smtp_server.one(user.email, SUBJECTS[MailKind.ACCOUNT_DELETED])
    assert "deleted" in notice.text
    assert "http" not in notice.text
    await _wait_until_sent(database, MailKind.ACCOUNT_DELETED)
    await purge_mail_and_tokens(database, now=utc_now())
    assert await _count(database, OutboxMail, OutboxMail.recipient == user.email) == 0
    again = await user_factory(email=user.email)  # the address is free again
    assert again.email == user.email


async def _wait_until_sent(database: Database, kind: MailKind) -> None:
    """The sender records a delivery just after the SMTP server took the message."""
    deadline = time.monotonic() + DEADLINE_S
    sent = (OutboxMail.kind == kind.value) & (OutboxMail.status == MailStatus.SENT.value)
    while await _count(database, OutboxMail, sent) == 0:
        assert time.monotonic() < deadline, f"no {kind.value} mail recorded as sent"
        await asyncio.sleep(0.02)
