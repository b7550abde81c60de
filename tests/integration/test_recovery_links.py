"""Links that give control of an account (reset, email change) against account recovery:
a password change or reset, signing out everywhere and deactivation void them, only the
newest email change counts, a link is bound to the address it was mailed to, and email
changes are throttled. Real SMTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from app.config import Settings
from app.database import Database
from app.mail.outbox import SUBJECTS
from app.mail.sender import MailMetrics, MailSender
from app.models.mail import MailKind
from tests.support import CliInvoker, RegisteredUser, UserFactory, assert_error
from tests.support.admin import bearer, grant, sign_in
from tests.support.mailbox import (
    CHANGE_NOTICE_SUBJECT,
    CHANGE_SUBJECT,
    RESET_SUBJECT,
    Mailbox,
    smtp_overrides,
)

ATTACKER = "attacker@example.net"
NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return smtp_overrides(smtp_server)


async def _ask_change(
    client: httpx.AsyncClient, user: RegisteredUser, new_email: str, password: str | None = None
) -> httpx.Response:
    return await client.put(
        "/users/me/email",
        json={"new_email": new_email, "current_password": password or user.password},
        headers=user.auth,
    )


async def _change_link(
    client: httpx.AsyncClient, smtp_server: Mailbox, user: RegisteredUser, new_email: str
) -> str:
    assert (await _ask_change(client, user, new_email)).status_code == 202
    return (await smtp_server.one(new_email, CHANGE_SUBJECT)).token


async def _reset_link(client: httpx.AsyncClient, smtp_server: Mailbox, email: str) -> str:
    forgot = await client.post("/auth/password/forgot", json={"email": email})
    assert forgot.status_code == 202
    return (await smtp_server.one(email, RESET_SUBJECT)).token


async def _verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify-email", json={"token": token})


async def _reset(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )


async def _address(client: httpx.AsyncClient, user: RegisteredUser, password: str) -> str:
    tokens = await sign_in(client, user.username, password=password)
    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    email: str = me.json()["email"]
    return email


async def _admin(client: httpx.AsyncClient, user_factory: UserFactory, database: Database) -> str:
    admin = await user_factory(username="root", email="root@example.com")
    await grant(database, admin.id, "admin")
    token: str = (await sign_in(client, admin.username))["access_token"]
    return token


# --- item: an email change queued by an intruder dies with the owner's recovery ------------


async def test_a_password_reset_voids_a_pending_email_change(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    # Someone who registered with the victim's address queues a move to their own; the
    # victim then claims the account through "forgot password".
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)

    reset = await _reset(client, await _reset_link(client, smtp_server, user.email))
    assert reset.status_code == 204, reset.text
    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")
    assert await _address(client, user, NEW_PASSWORD) == user.email


async def test_a_password_change_voids_a_pending_email_change_and_reset_links(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)
    reset = await _reset_link(client, smtp_server, user.email)

    changed = await client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=user.auth,
    )

    assert changed.status_code == 200, changed.text
    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")
    assert_error(await _reset(client, reset), 400, "INVALID_RESET_TOKEN")
    assert await _address(client, user, NEW_PASSWORD) == user.email


async def test_signing_out_everywhere_else_voids_a_pending_email_change_and_reset_links(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)
    reset = await _reset_link(client, smtp_server, user.email)
    owner = await sign_in(client, user.username)

    ended = await client.delete("/users/me/sessions", headers=bearer(owner["access_token"]))

    assert ended.status_code == 204
    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")
    assert_error(await _reset(client, reset), 400, "INVALID_RESET_TOKEN")


async def test_an_admin_signing_the_user_out_voids_a_pending_email_change(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)
    admin = await _admin(client, user_factory, database)

    ended = await client.delete(f"/admin/users/{user.id}/sessions", headers=bearer(admin))

    assert ended.status_code == 204
    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")


async def test_deactivation_voids_pending_links_for_good(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, database: Database
) -> None:
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)
    reset = await _reset_link(client, smtp_server, user.email)
    admin = await _admin(client, user_factory, database)

    for active in (False, True):
        patched = await client.patch(
            f"/admin/users/{user.id}", json={"is_active": active}, headers=bearer(admin)
        )
        assert patched.status_code == 200, patched.text

    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")
    assert_error(await _reset(client, reset), 400, "INVALID_RESET_TOKEN")


async def test_deactivation_from_the_command_line_voids_a_pending_email_change(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox, run_cli: CliInvoker
) -> None:
    user = await user_factory()
    change = await _change_link(client, smtp_server, user, ATTACKER)

    for command in ("deactivate", "activate"):
        result = await run_cli("users", command, user.email)
        assert result.exit_code == 0, result.output

    assert_error(await _verify(client, change), 400, "INVALID_VERIFICATION_TOKEN")


async def test_only_the_newest_email_change_link_works(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    first = await _change_link(client, smtp_server, user, ATTACKER)
    second = await _change_link(client, smtp_server, user, "mine@example.com")

    assert_error(await _verify(client, first), 400, "INVALID_VERIFICATION_TOKEN")
    moved = await _verify(client, second)
    assert moved.status_code == 200, moved.text
    assert moved.json()["email"] == "mine@example.com"


async def test_the_change_notice_names_the_ways_that_cancel_the_change(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    assert (await _ask_change(client, user, ATTACKER)).status_code == 202

    notice = (await smtp_server.one(user.email, CHANGE_NOTICE_SUBJECT)).text

    flat = " ".join(notice.split())
    assert '"forgot password"' in flat
    assert "sign out everywhere: either cancels this change" in flat


class TestAChangeStillInTheOutbox:
    """Recovery while the change's mail waits for the sender: it is never sent with a
    working link (the app's own sender is off; the test runs one step by step)."""

    @pytest.fixture
    def settings_overrides(self, smtp_server: Mailbox) -> dict[str, Any]:
        return {**smtp_overrides(smtp_server), "mail_sender_enabled": False}

    async def test_is_dropped_once_the_owner_signs_out_everywhere(
        self,
        client: httpx.AsyncClient,
        user_factory: UserFactory,
        smtp_server: Mailbox,
        database: Database,
        settings: Settings,
    ) -> None:
        user = await user_factory()
        assert (await _ask_change(client, user, ATTACKER)).status_code == 202
        owner = await sign_in(client, user.username)
        assert (
            await client.delete("/users/me/sessions", headers=bearer(owner["access_token"]))
        ).status_code == 204
        sender = MailSender(
            database,
            settings,
            metrics=MailMetrics(CollectorRegistry()),
            clock=lambda: datetime.now(UTC),
        )

        while await sender.run_once():
            pass

        assert smtp_server.received(lambda m: m.to == ATTACKER) == []
        assert len(smtp_server.received(lambda m: m.subject == CHANGE_NOTICE_SUBJECT)) == 1


# --- item: a link is bound to the address it was mailed to ---------------------------------


async def test_a_reset_link_mailed_to_the_old_address_dies_with_an_email_change(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    reset = await _reset_link(client, smtp_server, user.email)
    moved = await _verify(client, await _change_link(client, smtp_server, user, "new@example.com"))
    assert moved.status_code == 200, moved.text

    assert_error(await _reset(client, reset), 400, "INVALID_RESET_TOKEN")
    assert await _address(client, user, user.password) == "new@example.com"


# --- item: email changes are throttled, and are no sign-in for the login throttle ----------


class TestThrottling:
    @pytest.fixture
    def settings_overrides(self, smtp_server: Mailbox) -> dict[str, Any]:
        return {
            **smtp_overrides(smtp_server),
            "rate_limit_email_change": "2/hour",
            "rate_limit_login_account": "3/hour",
        }

    async def test_email_change_requests_are_throttled_per_account(
        self, client: httpx.AsyncClient, user_factory: UserFactory
    ) -> None:
        user, other = await user_factory(), await user_factory()
        answers = [
            (await _ask_change(client, user, f"n{n}@example.com")).status_code for n in range(2)
        ]

        throttled = await _ask_change(client, user, "n3@example.com")

        assert answers == [202, 202]
        assert_error(throttled, 429, "RATE_LIMITED")
        assert int(throttled.headers["Retry-After"]) > 0
        # Another account is not held up by this one.
        assert (await _ask_change(client, other, "o@example.com")).status_code == 202

    async def test_a_right_password_at_an_email_change_keeps_the_login_failures(
        self, client: httpx.AsyncClient, user_factory: UserFactory
    ) -> None:
        user = await user_factory()
        for _ in range(2):
            wrong = await client.post(
                "/auth/login", json={"email": user.email, "password": "not it at all"}
            )
            assert_error(wrong, 401, "INVALID_CREDENTIALS")
        # The third attempt on the account's budget: right, yet no reset of the count.
        assert (await _ask_change(client, user, "n@example.com")).status_code == 202

        fourth = await client.post(
            "/auth/login", json={"email": user.email, "password": user.password}
        )

        assert_error(fourth, 429, "RATE_LIMITED")


# --- item: notices of a completed email change and of a deletion ---------------------------


async def test_a_completed_email_change_mails_a_notice_to_the_old_address(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    link = await _change_link(client, smtp_server, user, "moved@example.org")
    # Asking is not doing: no "was changed" notice yet.
    await smtp_server.one(user.email, CHANGE_NOTICE_SUBJECT)
    assert smtp_server.received(lambda m: m.subject == SUBJECTS[MailKind.EMAIL_CHANGED]) == []

    assert (await _verify(client, link)).status_code == 200

    notice = await smtp_server.one(user.email, SUBJECTS[MailKind.EMAIL_CHANGED])
    assert "m***@example.org" in notice.text
    assert "moved@example.org" not in notice.text
    assert "http" not in notice.text
    assert (
        smtp_server.received(
            lambda m: m.to == "moved@example.org" and m.subject == SUBJECTS[MailKind.EMAIL_CHANGED]
        )
        == []
    )


@pytest.mark.parametrize("by", ["self", "admin"])
async def test_deleting_an_account_mails_a_notice_to_its_address(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    smtp_server: Mailbox,
    database: Database,
    by: str,
) -> None:
    user = await user_factory()
    if by == "self":
        deleted = await client.request(
            "DELETE", "/users/me", json={"current_password": user.password}, headers=user.auth
        )
    else:
        admin = await _admin(client, user_factory, database)
        deleted = await client.delete(f"/admin/users/{user.id}", headers=bearer(admin))
    assert deleted.status_code == 204, deleted.text

    notice = await smtp_server.one(user.email, SUBJECTS[MailKind.ACCOUNT_DELETED])

    assert "deleted" in notice.text
    assert user.username not in notice.text
