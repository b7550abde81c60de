"""Linking and unlinking providers: after signing in to the account an address belongs to
(second factor included), from the account page, and through the JSON API; the second
step after a linked provider; the last way into an account stays; an account without a
password gets one through "forgot password"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.models.audit import AuditEvent
from app.models.mail import OutboxMail
from app.models.session import AuthSession
from app.models.upstream import UpstreamIdentity
from tests.support.accounts import PASSWORD, UserFactory
from tests.support.asserts import assert_error
from tests.support.fake_upstream import CLIENT_ID, CLIENT_SECRET, FakeUpstream, fake_upstream
from tests.support.mailbox import Mailbox, smtp_overrides
from tests.support.mfa import WallClock, enable_mfa, totp_code
from tests.support.pages import alert_of, browser_client, csrf_of, flow_of, sign_in


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with fake_upstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeUpstream) -> None:
    fake.tamper = {}
    fake.claims = {"email": "alice@example.com", "email_verified": True}


@pytest.fixture
def settings_overrides(fake: FakeUpstream) -> dict[str, Any]:
    return {
        "public_url": "http://testserver",
        "upstream_providers": [
            {
                "name": "idp",
                "display_name": "IdP",
                "kind": "oidc",
                "issuer": fake.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }
        ],
    }


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def app(settings: Settings, clock: WallClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, wall_clock=clock)
    async with application.router.lifespan_context(application):
        yield application


async def back_from_provider(
    browser: httpx.AsyncClient, fake: FakeUpstream, location: str, subject: str
) -> httpx.Response:
    code = fake.authorize(location, subject)
    state = httpx.URL(location).params["state"]
    return await browser.get("/login/idp/callback", params={"code": code, "state": state})


async def continue_with_idp(
    browser: httpx.AsyncClient, fake: FakeUpstream, subject: str = "alice-at-idp"
) -> httpx.Response:
    leave = await browser.get("/login/idp")
    assert leave.status_code == 303, leave.text
    return await back_from_provider(browser, fake, leave.headers["location"], subject)


async def second_step(
    browser: httpx.AsyncClient, step: httpx.Response, code: str
) -> httpx.Response:
    return await browser.post(
        "/login/mfa", data={"csrf_token": csrf_of(step), "flow": flow_of(step), "code": code}
    )


async def linked(db: AsyncSession) -> list[tuple[str, int]]:
    db.expire_all()
    rows = (await db.execute(select(UpstreamIdentity))).scalars().all()
    return [(row.subject, row.user_id) for row in rows]


async def mails(db: AsyncSession, kind: str) -> list[str]:
    rows = (await db.execute(select(OutboxMail).where(OutboxMail.kind == kind))).scalars()
    return [row.recipient for row in rows]


async def test_with_two_factor_on_the_link_waits_for_the_second_step_and_so_does_signing_in(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    clock: WallClock,
    fake: FakeUpstream,
    db_session: AsyncSession,
) -> None:
    alice = await user_factory(email="alice@example.com", username="alice")
    enabled = await enable_mfa(client, alice.access_token, clock.now)
    async with browser_client(app) as browser:
        offered = await continue_with_idp(browser, fake)
        assert "exists already" in offered.text
        step = await sign_in(browser, "alice")
        assert step.status_code == 200  # the second step's page
        assert await linked(db_session) == []  # not before the second factor
        clock.advance(30)
        done = await second_step(browser, step, totp_code(enabled.secret, clock.now))
        assert done.status_code == 303, done.text
    assert await linked(db_session) == [("alice-at-idp", alice.id)]
    assert await mails(db_session, "identity_linked") == ["alice@example.com"]

    # Signing in with the provider now: the second step follows, through the same flow.
    async with browser_client(app) as browser:
        step = await continue_with_idp(browser, fake)
        assert step.status_code == 200
        assert (await browser.get("/account")).status_code == 303  # not signed in yet
        wrong = await second_step(browser, step, "000000")
        assert wrong.status_code == 401
        clock.advance(30)
        done = await second_step(browser, step, totp_code(enabled.secret, clock.now))
        assert done.status_code == 303, done.text
        assert "Unlink IdP" in (await browser.get("/account")).text
    event = (
        (
            await db_session.execute(
                select(AuditEvent)
                .where(AuditEvent.event == "login.succeeded")
                .order_by(AuditEvent.id.desc())
            )
        )
        .scalars()
        .first()
    )
    assert event is not None
    assert event.details == {"methods": ["fed", "totp"], "provider": "idp"}
    amr = (
        (await db_session.execute(select(AuthSession.amr).order_by(AuthSession.created_at.desc())))
        .scalars()
        .first()
    )
    assert amr == ["fed", "otp"]


async def test_link_and_unlink_from_the_account_page(
    app: FastAPI, user_factory: UserFactory, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    bob = await user_factory(email="bob@example.com", username="bob")
    async with browser_client(app) as browser:
        await sign_in(browser, "bob")
        account = await browser.get("/account")
        assert "Link IdP</button>" in account.text
        # A sign-in moments ago stands for the password.
        leave = await browser.post(
            "/account/providers/idp/link", data={"csrf_token": csrf_of(account)}
        )
        assert leave.status_code == 303, leave.text
        # The provider's address is not bob's: linking from the account needs no match.
        done = await back_from_provider(browser, fake, leave.headers["location"], "bob-at-idp")
        assert done.headers["location"] == "/account?done=linked"
        assert await linked(db_session) == [("bob-at-idp", bob.id)]
        account = await browser.get("/account")
        identity_id = (await db_session.execute(select(UpstreamIdentity.id))).scalar_one()
        unlinked = await browser.post(
            f"/account/identities/{identity_id}/unlink",
            data={"csrf_token": csrf_of(account), "current_password": PASSWORD},
        )
        assert unlinked.headers["location"] == "/account?done=unlinked"
    assert await linked(db_session) == []
    events = [
        e.event
        for e in (await db_session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars()
    ]
    assert "identity.linked" in events
    assert "identity.unlinked" in events
    assert await mails(db_session, "identity_unlinked") == ["bob@example.com"]


async def test_linking_needs_a_recent_sign_in_or_the_password(
    app: FastAPI, user_factory: UserFactory, clock: WallClock, db_session: AsyncSession
) -> None:
    await user_factory(email="bob@example.com", username="bob")
    async with browser_client(app) as browser:
        await sign_in(browser, "bob")
        clock.advance(301)
        account = await browser.get("/account")
        refused = await browser.post(
            "/account/providers/idp/link", data={"csrf_token": csrf_of(account)}
        )
        assert refused.status_code == 403
        wrong = await browser.post(
            "/account/providers/idp/link",
            data={"csrf_token": csrf_of(account), "current_password": "wrong password"},
        )
        assert wrong.status_code == 400
        right = await browser.post(
            "/account/providers/idp/link",
            data={"csrf_token": csrf_of(account), "current_password": PASSWORD},
        )
        assert right.status_code == 303


async def test_an_identity_linked_to_one_account_does_not_link_to_another(
    app: FastAPI, user_factory: UserFactory, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    fake.claims = {"email": "carol@example.com", "email_verified": True}
    async with browser_client(app) as browser:
        assert (await continue_with_idp(browser, fake, "carol-at-idp")).status_code == 303
    bob = await user_factory(email="bob@example.com", username="bob")
    async with browser_client(app) as browser:
        await sign_in(browser, "bob")
        account = await browser.get("/account")
        leave = await browser.post(
            "/account/providers/idp/link", data={"csrf_token": csrf_of(account)}
        )
        refused = await back_from_provider(browser, fake, leave.headers["location"], "carol-at-idp")
        assert refused.status_code == 409
        assert "linked to an account already" in (alert_of(refused) or "")
    assert bob.id not in [user_id for _, user_id in await linked(db_session)]


class TestWithoutPassword:
    @pytest.fixture
    def settings_overrides(self, fake: FakeUpstream, smtp_server: Mailbox) -> dict[str, Any]:
        values = {
            "public_url": "http://testserver",
            "upstream_providers": [
                {
                    "name": "idp",
                    "display_name": "IdP",
                    "kind": "oidc",
                    "issuer": fake.url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                }
            ],
        }
        return {**values, **smtp_overrides(smtp_server)}

    async def test_the_last_way_in_stays_until_forgot_password_gives_a_password(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        fake: FakeUpstream,
        smtp_server: Mailbox,
        db_session: AsyncSession,
    ) -> None:
        async with browser_client(app) as browser:
            assert (await continue_with_idp(browser, fake)).status_code == 303
            account = await browser.get("/account")
            assert 'name="current_password"' not in account.text  # no password to ask for
            identity_id = (await db_session.execute(select(UpstreamIdentity.id))).scalar_one()
            refused = await browser.post(
                f"/account/identities/{identity_id}/unlink", data={"csrf_token": csrf_of(account)}
            )
            assert refused.status_code == 409
            assert "last way to sign in" in (alert_of(refused) or "")
            assert await linked(db_session) != []

            forgot = await client.post("/auth/password/forgot", json={"email": "alice@example.com"})
            assert forgot.status_code == 202
            mail = await smtp_server.one("alice@example.com", "Reset your password")
            reset = await client.post(
                "/auth/password/reset",
                json={"token": mail.token, "new_password": "a new passphrase 42"},
            )
            assert reset.status_code == 204, reset.text
            # The reset ended every session; the new password signs in, and the provider
            # can now go.
            assert (
                await sign_in(browser, "alice@example.com", "a new passphrase 42")
            ).status_code == 303
            account = await browser.get("/account")
            gone = await browser.post(
                f"/account/identities/{identity_id}/unlink", data={"csrf_token": csrf_of(account)}
            )
            assert gone.headers["location"] == "/account?done=unlinked"
        assert await linked(db_session) == []
        notice = await smtp_server.one(
            "alice@example.com", "A sign-in provider was unlinked from your account"
        )
        assert "IdP" in notice.text


async def test_json_identities(
    app: FastAPI, client: httpx.AsyncClient, user_factory: UserFactory, fake: FakeUpstream
) -> None:
    alice = await user_factory(email="alice@example.com", username="alice")
    async with browser_client(app) as browser:
        await continue_with_idp(browser, fake)
        assert (await sign_in(browser, "alice")).status_code == 303
    listed = await client.get("/users/me/identities", headers=alice.auth)
    assert listed.status_code == 200
    [identity] = listed.json()
    assert set(identity) == {"id", "provider", "subject", "email", "created_at"}
    assert (identity["provider"], identity["subject"], identity["email"]) == (
        "idp",
        "alice-at-idp",
        "alice@example.com",
    )
    missing = await client.request(
        "DELETE",
        "/users/me/identities/nope",
        headers=alice.auth,
        json={"current_password": PASSWORD},
    )
    assert_error(missing, 404, "NOT_FOUND")
    wrong = await client.request(
        "DELETE",
        f"/users/me/identities/{identity['id']}",
        headers=alice.auth,
        json={"current_password": "not it"},
    )
    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    gone = await client.request(
        "DELETE",
        f"/users/me/identities/{identity['id']}",
        headers=alice.auth,
        json={"current_password": PASSWORD},
    )
    assert gone.status_code == 204
    assert (await client.get("/users/me/identities", headers=alice.auth)).json() == []


async def test_a_state_expires_with_the_flow(
    app: FastAPI, clock: WallClock, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    async with browser_client(app) as browser:
        leave = await browser.get("/login/idp")
        location = leave.headers["location"]
        code = fake.authorize(location, "late")
        clock.advance(601)  # UPSTREAM_FLOW_EXPIRE_SECONDS: 600
        late = await browser.get(
            "/login/idp/callback",
            params={"code": code, "state": httpx.URL(location).params["state"]},
        )
    assert late.status_code == 400
    assert "has expired" in (alert_of(late) or "")
    assert await linked(db_session) == []
