"""Passkeys over HTTP, on SQLite and PostgreSQL, with a software authenticator
(testkit/webauthn.py) playing the browser and the device.

Every refusal the contract names has its test: a foreign origin or RP ID, a challenge used
twice or too late (an injected clock), no user verification, another user's handle, a
counter that went back (recorded as `passkey.clone_suspected`), an unknown credential, and
an IP address as RP ID.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import select, update

from app.config import Settings
from app.database import Database
from app.main import create_app
from app.models.passkey import WebauthnChallenge
from app.models.upstream import UpstreamIdentity
from app.models.user import User
from app.signin.methods.passkey.challenges import purge_expired_challenges
from testkit.webauthn import SoftAuthenticator, from_b64url
from tests.support import PASSWORD, RegisteredUser, UserFactory, assert_error
from tests.support.admin import audit_events
from tests.support.logs import LogCapture
from tests.support.mailbox import Mailbox, smtp_overrides
from tests.support.mfa import (
    WallClock,
    bearer,
    enable_mfa,
    password_step,
    unverified_claims,
)


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def app(settings: Settings, wall_clock: WallClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, wall_clock=wall_clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Passkeys need a domain name: the default PUBLIC_URL, http://localhost:8000.
    return {"public_url": "http://localhost:8000"}


async def _options(client: httpx.AsyncClient, user: RegisteredUser) -> dict[str, Any]:
    response = await client.post("/users/me/passkeys/registration-options", headers=user.auth)
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def add_passkey(
    client: httpx.AsyncClient,
    user: RegisteredUser,
    authenticator: SoftAuthenticator,
    *,
    name: str | None = None,
    synced: bool = False,
) -> dict[str, Any]:
    """Register a passkey of `authenticator` for `user`, as the account page does."""
    options = await _options(client, user)
    response = await client.post(
        "/users/me/passkeys",
        json={"credential": authenticator.create(options, synced=synced), "name": name},
        headers=user.auth,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def signin_options(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/auth/passkey/options")
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def passkey_signin(client: httpx.AsyncClient, credential: dict[str, Any]) -> httpx.Response:
    return await client.post("/auth/passkey", json={"credential": credential})


# Registration


async def test_registration_options_follow_the_contract(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    options = await _options(client, user)

    assert options["rp"] == {"id": "localhost", "name": "authsvc"}
    handle = from_b64url(options["user"]["id"])
    assert len(handle) == 32
    assert handle not in (str(user.id).encode(), user.id.to_bytes(8, "big"))
    assert options["user"]["name"] == user.email
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-8, -7, -257]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    assert len(from_b64url(options["challenge"])) == 32

    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    again = await _options(client, user)
    assert from_b64url(again["user"]["id"]) == handle  # one handle per user
    excluded = [from_b64url(c["id"]) for c in again["excludeCredentials"]]
    assert excluded == [authenticator.credentials[0].credential_id]


async def test_a_passkey_is_added_listed_renamed_and_audited(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    added = await add_passkey(client, user, SoftAuthenticator(), name="Laptop")

    assert added["name"] == "Laptop"
    assert added["backed_up"] is False
    assert added["transports"] == ["internal"]
    assert added["last_used_at"] is None
    listed = await client.get("/users/me/passkeys", headers=user.auth)
    assert listed.json() == [added]

    renamed = await client.patch(
        f"/users/me/passkeys/{added['id']}", json={"name": "Work laptop"}, headers=user.auth
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Work laptop"

    events = await audit_events(database, "passkey.added")
    assert [(e.user_id, e.details) for e in events] == [(user.id, {"passkey_id": added["id"]})]


async def test_another_users_passkey_is_not_found(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    owner, other = await user_factory(), await user_factory()
    added = await add_passkey(client, owner, SoftAuthenticator())

    renamed = await client.patch(
        f"/users/me/passkeys/{added['id']}", json={"name": "mine"}, headers=other.auth
    )
    removed = await client.delete(f"/users/me/passkeys/{added['id']}", headers=other.auth)

    assert_error(renamed, 404, "NOT_FOUND")
    assert_error(removed, 404, "NOT_FOUND")


@pytest.mark.parametrize("passkey_id", ["0", "322962202457940885504"])
async def test_an_id_out_of_range_is_not_found(
    client: httpx.AsyncClient, user_factory: UserFactory, passkey_id: str
) -> None:
    user = await user_factory()

    renamed = await client.patch(
        f"/users/me/passkeys/{passkey_id}", json={"name": "x"}, headers=user.auth
    )
    removed = await client.delete(f"/users/me/passkeys/{passkey_id}", headers=user.auth)

    assert_error(renamed, 404, "NOT_FOUND")
    assert_error(removed, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [("https://evil.example", None), (None, "evil.example")],
    ids=["wrong-origin", "wrong-rp-id"],
)
async def test_a_registration_from_a_foreign_origin_or_rp_id_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory, origin: str | None, rp_id: str | None
) -> None:
    user = await user_factory()
    options = await _options(client, user)
    credential = SoftAuthenticator().create(options, origin=origin, rp_id=rp_id)

    response = await client.post(
        "/users/me/passkeys", json={"credential": credential}, headers=user.auth
    )

    assert_error(response, 400, "INVALID_PASSKEY")
    assert (await client.get("/users/me/passkeys", headers=user.auth)).json() == []


async def test_a_registration_challenge_works_once(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    options = await _options(client, user)
    authenticator = SoftAuthenticator()
    first = await client.post(
        "/users/me/passkeys", json={"credential": authenticator.create(options)}, headers=user.auth
    )
    assert first.status_code == 201, first.text

    # A second credential answering the same challenge.
    second = await client.post(
        "/users/me/passkeys", json={"credential": authenticator.create(options)}, headers=user.auth
    )

    assert_error(second, 400, "INVALID_PASSKEY")


async def test_a_registration_challenge_is_bound_to_its_user(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    owner, other = await user_factory(), await user_factory()
    options = await _options(client, owner)

    response = await client.post(
        "/users/me/passkeys",
        json={"credential": SoftAuthenticator().create(options)},
        headers=other.auth,
    )

    assert_error(response, 400, "INVALID_PASSKEY")


async def test_expired_challenges_are_purged_and_fresh_ones_kept(
    client: httpx.AsyncClient, database: Database, wall_clock: WallClock
) -> None:
    for _ in range(3):
        await signin_options(client)
    wall_clock.advance(5 * 60 + 1)
    fresh = await signin_options(client)

    async with database.session() as session:
        purged = await purge_expired_challenges(session, wall_clock())
    async with database.session() as session:
        left = (await session.scalars(select(WebauthnChallenge.id))).all()

    assert purged == 3
    assert left == [hashlib.sha256(from_b64url(fresh["challenge"])).hexdigest()]


async def test_a_registration_challenge_expires_after_five_minutes(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    options = await _options(client, user)
    wall_clock.advance(5 * 60 + 1)

    response = await client.post(
        "/users/me/passkeys",
        json={"credential": SoftAuthenticator().create(options)},
        headers=user.auth,
    )

    assert_error(response, 400, "INVALID_PASSKEY")


async def test_a_credential_already_registered_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    options = await _options(client, user)

    again = authenticator.create(options, reuse=authenticator.credentials[0])
    response = await client.post(
        "/users/me/passkeys", json={"credential": again}, headers=user.auth
    )

    assert_error(response, 400, "INVALID_PASSKEY")


async def test_adding_a_passkey_needs_a_recent_sign_in_or_the_password(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    wall_clock.advance(301)

    stale = await client.post("/users/me/passkeys/registration-options", headers=user.auth)
    wrong = await client.post(
        "/users/me/passkeys/registration-options",
        json={"current_password": "not it"},
        headers=user.auth,
    )
    right = await client.post(
        "/users/me/passkeys/registration-options",
        json={"current_password": PASSWORD},
        headers=user.auth,
    )

    assert_error(stale, 403, "REAUTHENTICATION_REQUIRED")
    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    assert right.status_code == 200, right.text


# Sign-in with a passkey alone


async def test_a_passkey_signs_in_on_its_own(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    added = await add_passkey(client, user, authenticator)
    options = await signin_options(client)

    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []
    response = await passkey_signin(client, authenticator.get(options))

    assert response.status_code == 200, response.text
    claims = unverified_claims(response.json()["access_token"])
    assert claims["sub"] == str(user.id)
    assert claims["amr"] == ["hwk", "mfa"]
    me = await client.get("/users/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["email"] == user.email
    events = await audit_events(database, "login.succeeded")
    assert events[-1].details == {"methods": ["passkey"]}
    listed = await client.get("/users/me/passkeys", headers=user.auth)
    assert listed.json()[0]["id"] == added["id"]
    assert listed.json()[0]["last_used_at"] is not None


async def test_a_passkey_signs_in_without_a_second_step_when_two_factor_is_on(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    await enable_mfa(client, user.access_token, wall_clock())
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)

    response = await passkey_signin(client, authenticator.get(await signin_options(client)))

    assert response.status_code == 200, response.text
    assert unverified_claims(response.json()["access_token"])["amr"] == ["hwk", "mfa"]


@pytest.mark.parametrize(
    "knob",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"user_verified": False},
    ],
    ids=["wrong-origin", "wrong-rp-id", "no-user-verification"],
)
async def test_an_assertion_that_does_not_verify_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory, knob: dict[str, Any]
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)

    response = await passkey_signin(client, authenticator.get(await signin_options(client), **knob))

    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_a_signin_challenge_works_once(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    options = await signin_options(client)
    assert (await passkey_signin(client, authenticator.get(options))).status_code == 200

    replayed = await passkey_signin(client, authenticator.get(options))

    assert_error(replayed, 401, "INVALID_CREDENTIALS")


async def test_a_signin_challenge_expires_after_five_minutes(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    options = await signin_options(client)
    wall_clock.advance(5 * 60 + 1)

    response = await passkey_signin(client, authenticator.get(options))

    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_a_challenge_the_service_never_issued_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    options = await signin_options(client)

    response = await passkey_signin(
        client, authenticator.get(options, challenge="bm90LWlzc3VlZC1ieS10aGUtc2VydmljZQ")
    )

    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_another_users_handle_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    victim, attacker = await user_factory(), await user_factory()
    victims_device, attackers_device = SoftAuthenticator(), SoftAuthenticator()
    await add_passkey(client, victim, victims_device)
    await add_passkey(client, attacker, attackers_device)

    # The attacker's own credential, claiming to be the victim's account.
    response = await passkey_signin(
        client,
        attackers_device.get(
            await signin_options(client),
            user_handle=victims_device.credentials[0].user_handle,
        ),
    )

    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_unknown_credential_and_bad_signature_get_one_answer(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    stranger = SoftAuthenticator.holding_unregistered(
        b"\x01" * 32, authenticator.credentials[0].user_handle
    )

    unknown = await passkey_signin(client, stranger.get(await signin_options(client)))
    forged = await passkey_signin(
        client,
        authenticator.get(
            await signin_options(client), signing_key=ec.generate_private_key(ec.SECP256R1())
        ),
    )

    first = assert_error(unknown, 401, "INVALID_CREDENTIALS")
    second = assert_error(forged, 401, "INVALID_CREDENTIALS")
    assert first["detail"] == second["detail"]


async def test_a_challenge_tried_with_an_unknown_credential_is_used_up(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    stranger = SoftAuthenticator.holding_unregistered(b"\x04" * 32, b"\x05" * 32)
    options = await signin_options(client)
    assert_error(await passkey_signin(client, stranger.get(options)), 401, "INVALID_CREDENTIALS")

    response = await passkey_signin(client, authenticator.get(options))

    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_a_device_bound_counter_that_goes_back_is_refused_and_recorded(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    added = await add_passkey(client, user, authenticator)
    ok = await passkey_signin(client, authenticator.get(await signin_options(client), sign_count=5))
    assert ok.status_code == 200, ok.text

    # A copy of the key, whose counter is behind the original's.
    cloned = await passkey_signin(
        client, authenticator.get(await signin_options(client), sign_count=5)
    )

    assert_error(cloned, 401, "INVALID_CREDENTIALS")
    events = await audit_events(database, "passkey.clone_suspected")
    assert [(e.user_id, e.details) for e in events] == [
        (user.id, {"passkey_id": added["id"], "stored_count": 5, "seen_count": 5})
    ]
    # The original goes on.
    onward = await passkey_signin(
        client, authenticator.get(await signin_options(client), sign_count=6)
    )
    assert onward.status_code == 200, onward.text


async def test_a_synced_passkey_reporting_zero_is_normal(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    added = await add_passkey(client, user, authenticator, synced=True)
    assert added["backed_up"] is True

    for _ in range(2):
        response = await passkey_signin(client, authenticator.get(await signin_options(client)))
        assert response.status_code == 200, response.text
    assert await audit_events(database, "passkey.clone_suspected") == []


async def test_an_inactive_user_is_told_so(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))

    response = await passkey_signin(client, authenticator.get(await signin_options(client)))

    assert_error(response, 401, "USER_INACTIVE")


# As a second factor


async def test_a_passkey_completes_the_second_step(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    database: Database,
) -> None:
    user = await user_factory()
    await enable_mfa(client, user.access_token, wall_clock())
    assert (
        "passkey"
        not in (
            await client.post("/auth/login", json={"username": user.username, "password": PASSWORD})
        ).json()["methods"]
    )
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)

    pending = await client.post(
        "/auth/login", json={"username": user.username, "password": PASSWORD}
    )
    assert pending.status_code == 202, pending.text
    assert pending.json()["methods"] == ["totp", "recovery_code", "passkey"]
    mfa_token = pending.json()["mfa_token"]
    options = await client.post("/auth/login/mfa/passkey-options", json={"mfa_token": mfa_token})
    assert options.status_code == 200, options.text
    allowed = options.json()["allowCredentials"]
    assert [from_b64url(c["id"]) for c in allowed] == [authenticator.credentials[0].credential_id]

    done = await client.post(
        "/auth/login/mfa",
        json={"mfa_token": mfa_token, "credential": authenticator.get(options.json())},
    )

    assert done.status_code == 200, done.text
    assert unverified_claims(done.json()["access_token"])["amr"] == ["pwd", "hwk"]
    events = await audit_events(database, "login.succeeded")
    assert events[-1].details == {"methods": ["password", "passkey"]}


async def test_a_second_step_challenge_is_bound_to_its_sign_in(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    await enable_mfa(client, user.access_token, wall_clock())
    authenticator = SoftAuthenticator()
    await add_passkey(client, user, authenticator)
    mfa_token = await password_step(client, user.username)

    # A challenge of the passwordless sign-in does not answer the second step.
    response = await client.post(
        "/auth/login/mfa",
        json={
            "mfa_token": mfa_token,
            "credential": authenticator.get(await signin_options(client)),
        },
    )

    assert_error(response, 401, "INVALID_MFA_CODE")


async def test_passkey_options_need_a_live_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login/mfa/passkey-options", json={"mfa_token": "not-a-token"}
    )

    assert_error(response, 401, "INVALID_TOKEN")


# Removal


async def _without_password(database: Database, user: RegisteredUser) -> None:
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(hashed_password=None))


async def test_the_last_way_to_sign_in_cannot_be_removed(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    first = await add_passkey(client, user, SoftAuthenticator())
    second = await add_passkey(client, user, SoftAuthenticator())
    await _without_password(database, user)

    removed = await client.delete(f"/users/me/passkeys/{first['id']}", headers=user.auth)
    last = await client.delete(f"/users/me/passkeys/{second['id']}", headers=user.auth)

    assert removed.status_code == 204, removed.text
    assert_error(last, 409, "LAST_SIGN_IN_METHOD")
    listed = await client.get("/users/me/passkeys", headers=user.auth)
    assert [p["id"] for p in listed.json()] == [second["id"]]
    events = await audit_events(database, "passkey.removed")
    assert [(e.user_id, e.details) for e in events] == [(user.id, {"passkey_id": first["id"]})]


async def _linked_provider(database: Database, user: RegisteredUser) -> str:
    """An identity of another provider linked to the account, as a callback leaves it."""
    identity = UpstreamIdentity(
        id=uuid.uuid4().hex,
        user_id=user.id,
        provider="idp",
        subject=f"{user.id}-at-idp",
        email=None,
        created_at=datetime.now(UTC),
    )
    async with database.session() as session:
        session.add(identity)
    return identity.id


async def test_a_linked_provider_lets_the_last_passkey_go_and_not_then_itself(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    added = await add_passkey(client, user, SoftAuthenticator())
    await _without_password(database, user)
    identity_id = await _linked_provider(database, user)

    removed = await client.delete(f"/users/me/passkeys/{added['id']}", headers=user.auth)
    unlinked = await client.delete(f"/users/me/identities/{identity_id}", headers=user.auth)

    assert removed.status_code == 204, removed.text
    assert_error(unlinked, 409, "LAST_SIGN_IN_METHOD")
    assert len((await client.get("/users/me/identities", headers=user.auth)).json()) == 1


async def test_a_passkey_lets_the_last_provider_go_and_not_then_itself(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    added = await add_passkey(client, user, SoftAuthenticator())
    await _without_password(database, user)
    identity_id = await _linked_provider(database, user)

    unlinked = await client.delete(f"/users/me/identities/{identity_id}", headers=user.auth)
    removed = await client.delete(f"/users/me/passkeys/{added['id']}", headers=user.auth)

    assert unlinked.status_code == 204, unlinked.text
    assert (await client.get("/users/me/identities", headers=user.auth)).json() == []
    assert_error(removed, 409, "LAST_SIGN_IN_METHOD")
    listed = await client.get("/users/me/passkeys", headers=user.auth)
    assert [p["id"] for p in listed.json()] == [added["id"]]


async def test_with_a_password_the_last_passkey_can_go(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add_passkey(client, user, SoftAuthenticator())

    response = await client.delete(f"/users/me/passkeys/{added['id']}", headers=user.auth)

    assert response.status_code == 204, response.text


async def test_removing_needs_a_recent_sign_in_or_the_password(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    added = await add_passkey(client, user, SoftAuthenticator())
    wall_clock.advance(301)

    stale = await client.delete(f"/users/me/passkeys/{added['id']}", headers=user.auth)
    with_password = await client.request(
        "DELETE",
        f"/users/me/passkeys/{added['id']}",
        json={"current_password": PASSWORD},
        headers=user.auth,
    )

    assert_error(stale, 403, "REAUTHENTICATION_REQUIRED")
    assert with_password.status_code == 204, with_password.text


# Throttling


class TestThrottle:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"public_url": "http://localhost:8000", "rate_limit_login_ip": "3/minute"}

    async def test_passkey_sign_ins_are_throttled_per_client_address(
        self, client: httpx.AsyncClient
    ) -> None:
        stranger = SoftAuthenticator.holding_unregistered(b"\x02" * 32, b"\x03" * 32)
        answers = [
            (await passkey_signin(client, stranger.get(await signin_options(client)))).status_code
            for _ in range(4)
        ]

        assert answers == [401, 401, 401, 429]


class TestOptionsThrottle:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"public_url": "http://localhost:8000", "rate_limit_passkey_options_ip": "3/minute"}

    async def test_sign_in_options_are_throttled_per_client_address(
        self, client: httpx.AsyncClient
    ) -> None:
        # Anyone may ask, and each answer stores a challenge: a client asking without end
        # is stopped like one guessing passwords.
        answers = [await client.post("/auth/passkey/options") for _ in range(4)]

        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        refused = answers[3]
        assert_error(refused, 429, "RATE_LIMITED")
        assert int(refused.headers["Retry-After"]) > 0


# Notices


class TestNotices:
    @pytest.fixture
    def settings_overrides(self, smtp_server: Mailbox) -> dict[str, Any]:
        return {"public_url": "http://localhost:8000", **smtp_overrides(smtp_server)}

    async def test_adding_and_removing_a_passkey_mail_a_notice(
        self, client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
    ) -> None:
        user = await user_factory()
        added = await add_passkey(client, user, SoftAuthenticator(), name="Phone")
        on = await smtp_server.one(user.email, "A passkey was added to your account")
        assert '"Phone"' in on.text

        await client.delete(f"/users/me/passkeys/{added['id']}", headers=user.auth)

        off = await smtp_server.one(user.email, "A passkey was removed from your account")
        assert '"Phone"' in off.text


# An IP address as RP ID


class TestOnAnIpAddress:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"public_url": "http://127.0.0.1:8000"}

    async def test_the_start_up_log_says_why(
        self, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            pass

        lines = LogCapture(io.StringIO(capsys.readouterr().out)).lines()
        warning = next(line for line in lines if line["message"] == "passkeys unavailable")
        assert warning["level"] == "WARNING"
        assert warning["public_url"] == "http://127.0.0.1:8000"
        assert "127.0.0.1 is an IP address" in warning["reason"]

    async def test_every_passkey_endpoint_says_passkeys_are_unavailable(
        self, client: httpx.AsyncClient, user_factory: UserFactory
    ) -> None:
        user = await user_factory()
        answers = [
            await client.post("/users/me/passkeys/registration-options", headers=user.auth),
            await client.post("/users/me/passkeys", json={"credential": {}}, headers=user.auth),
            await client.get("/users/me/passkeys", headers=user.auth),
            await client.patch("/users/me/passkeys/1", json={"name": "x"}, headers=user.auth),
            await client.delete("/users/me/passkeys/1", headers=user.auth),
            await client.post("/auth/passkey/options"),
            await client.post("/auth/passkey", json={"credential": {}}),
            await client.post("/auth/login/mfa/passkey-options", json={"mfa_token": "x"}),
        ]

        for response in answers:
            body = assert_error(response, 400, "PASSKEYS_UNAVAILABLE")
            assert "PUBLIC_URL" in str(body["detail"])


# The hosted pages' passkey forms


@pytest.mark.parametrize(
    "path",
    ["/login/passkey", "/account/passkeys", "/account/passkeys/1/remove", "/login/mfa"],
)
async def test_a_passkey_form_without_the_pages_token_changes_nothing(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, data={"credential": "{}"})

    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]


async def test_the_pages_options_endpoint_refuses_a_request_without_the_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/account/passkeys/options", data={})

    assert response.status_code == 403
    assert response.json()["detail"]
