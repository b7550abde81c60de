"""Two-factor authentication (TOTP, RFC 6238) over HTTP, on SQLite and PostgreSQL.

The service runs on an injected wall clock; every code is computed by pyotp in the test,
for the moment the test chooses, never by the service's own code.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.database import Database
from app.main import create_app
from tests.support import PASSWORD, RegisteredUser, UserFactory, assert_error, running_app
from tests.support.mfa import (
    STEP,
    WallClock,
    bearer,
    enable_mfa,
    password_step,
    second_step,
    totp_code,
    unverified_claims,
)

RECOVERY_CODE = re.compile(
    r"^[23456789abcdefghjkmnpqrstuvwxyz]{5}-[23456789abcdefghjkmnpqrstuvwxyz]{5}$"
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
    # Many tests sign in more often than the production per-account budget allows;
    # test_wrong_codes_count_toward_the_account_throttle runs with the real default.
    return {"rate_limit_login_account": "1000/minute"}


async def _mfa_user(
    client: httpx.AsyncClient, user_factory: UserFactory, clock: WallClock
) -> tuple[RegisteredUser, str, list[str]]:
    """A user with two-factor on; the clock is moved past the confirming code's step."""
    user = await user_factory()
    enabled = await enable_mfa(client, user.access_token, clock.now)
    clock.advance(STEP)
    return user, enabled.secret, enabled.recovery_codes


# --- enrolment ---------------------------------------------------------------------------


async def test_enrolment_returns_the_key_an_otpauth_uri_and_an_inline_svg_qr_code(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post("/users/me/mfa/totp", headers=user.auth)

    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])  # 160 bits in base32
    assert len(base64.b32decode(body["secret"])) == 20
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/authsvc:{user.email}"
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["authsvc"]
    # SHA-1, 6 digits, 30 s: the defaults of Key Uri Format, stated or left out.
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    svg = body["qr_svg"]
    assert svg.startswith("<svg ")
    assert svg.endswith("</svg>")
    assert "<?xml" not in svg
    assert "<script" not in svg.lower()
    assert user.email not in svg
    me = await client.get("/users/me", headers=user.auth)
    assert me.json()["mfa_enabled"] is False  # not before a code is confirmed


async def test_confirming_turns_two_factor_on_and_returns_ten_recovery_codes(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    secret = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()["secret"]
    response = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret, wall_clock.now)},
        headers=user.auth,
    )

    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    codes = response.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.match(code) for code in codes), codes
    me = await client.get("/users/me", headers=user.auth)
    assert me.json()["mfa_enabled"] is True


async def test_confirming_with_a_wrong_code_is_400_and_leaves_two_factor_off(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    secret = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()["secret"]
    right = totp_code(secret, wall_clock.now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    for code in (wrong, "12345", "abcdef"):
        response = await client.post(
            "/users/me/mfa/totp/confirm", json={"code": code}, headers=user.auth
        )
        assert_error(response, 400, "INVALID_MFA_CODE")
    assert (await client.get("/users/me", headers=user.auth)).json()["mfa_enabled"] is False


async def test_confirming_without_an_enrolment_is_400(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=user.auth
    )
    assert_error(response, 400, "INVALID_MFA_CODE")


async def test_enrolling_or_confirming_while_two_factor_is_on_is_409(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)

    again = await client.post("/users/me/mfa/totp", headers=user.auth)
    confirm = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret, wall_clock.now)},
        headers=user.auth,
    )

    assert_error(again, 409, "MFA_ALREADY_ENABLED")
    assert_error(confirm, 409, "MFA_ALREADY_ENABLED")


async def test_a_new_enrolment_replaces_an_unconfirmed_one(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    first = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()["secret"]
    second = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()["secret"]
    assert first != second

    stale = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(first, wall_clock.now)},
        headers=user.auth,
    )
    current = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(second, wall_clock.now)},
        headers=user.auth,
    )

    assert_error(stale, 400, "INVALID_MFA_CODE")
    assert current.status_code == 200, current.text


async def test_the_confirming_code_cannot_sign_in(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    enabled = await enable_mfa(client, user.access_token, wall_clock.now)

    mfa_token = await password_step(client, user.username)
    replay = await second_step(client, mfa_token, totp_code(enabled.secret, wall_clock.now))

    assert_error(replay, 401, "INVALID_MFA_CODE")


# --- sign-in -----------------------------------------------------------------------------


async def test_sign_in_with_two_factor_on_takes_the_password_then_a_code(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)

    first = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert first.status_code == 202, first.text
    assert first.headers["Cache-Control"] == "no-store"
    challenge = first.json()
    assert set(challenge) == {"mfa_required", "mfa_token", "expires_in", "methods"}
    assert challenge["mfa_required"] is True
    assert challenge["expires_in"] == 300
    assert challenge["methods"] == ["totp", "recovery_code"]
    assert len(challenge["mfa_token"]) >= 32

    code = totp_code(secret, wall_clock.now)
    # Typed as the app shows it, in two groups.
    second = await second_step(client, challenge["mfa_token"], f"{code[:3]} {code[3:]}")

    assert second.status_code == 200, second.text
    tokens = second.json()
    assert tokens["user"]["id"] == user.id
    assert tokens["user"]["mfa_enabled"] is True
    assert tokens["user"]["last_login"] is not None
    assert unverified_claims(tokens["access_token"])["amr"] == ["pwd", "otp"]
    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    signed_in = unverified_claims(tokens["access_token"])
    renewed = unverified_claims(refreshed.json()["access_token"])
    assert renewed["amr"] == ["pwd", "otp"]
    # The session began at the second step, and a refresh keeps that (its absolute end).
    assert signed_in["auth_time"] == int(wall_clock.now.timestamp())
    assert renewed["auth_time"] == signed_in["auth_time"]


async def test_a_password_only_session_carries_amr_pwd(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )

    assert login.status_code == 200
    assert unverified_claims(login.json()["access_token"])["amr"] == ["pwd"]
    assert unverified_claims(user.access_token)["amr"] == ["pwd"]
    refreshed = await client.post(
        "/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert unverified_claims(refreshed.json()["access_token"])["amr"] == ["pwd"]


async def test_a_wrong_password_with_two_factor_on_is_still_invalid_credentials(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, _, _ = await _mfa_user(client, user_factory, wall_clock)
    response = await client.post(
        "/auth/login", json={"username": user.username, "password": "not " + PASSWORD}
    )
    assert_error(response, 401, "INVALID_CREDENTIALS")
    assert "mfa_token" not in response.text


async def test_a_wrong_code_at_sign_in_is_401_invalid_mfa_code(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    right = totp_code(secret, wall_clock.now)

    for code in (f"{(int(right) + 1) % 1_000_000:06d}", "abcde-fghij", "0000000", "x"):
        response = await second_step(client, mfa_token, code)
        assert_error(response, 401, "INVALID_MFA_CODE")
        assert "access_token" not in response.text
    assert (await second_step(client, mfa_token, right)).status_code == 200


async def test_a_code_signs_in_once(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    code = totp_code(secret, wall_clock.now)

    first = await second_step(client, await password_step(client, user.username), code)
    replay = await second_step(client, await password_step(client, user.username), code)

    assert first.status_code == 200, first.text
    assert_error(replay, 401, "INVALID_MFA_CODE")
    wall_clock.advance(STEP)  # the next code is fine
    later = await second_step(
        client, await password_step(client, user.username), totp_code(secret, wall_clock.now)
    )
    assert later.status_code == 200, later.text


async def test_one_code_sent_twice_at_once_signs_in_once(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    code = totp_code(secret, wall_clock.now)
    tokens = [await password_step(client, user.username) for _ in range(2)]

    responses = await asyncio.gather(*(second_step(client, token, code) for token in tokens))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 401)
    assert_error(loser, 401, "INVALID_MFA_CODE")


async def test_one_mfa_token_finished_twice_at_once_signs_in_once(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, recovery = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)

    # Two different valid codes on one mfa_token: one session, never two.
    responses = await asyncio.gather(
        second_step(client, mfa_token, totp_code(secret, wall_clock.now)),
        second_step(client, mfa_token, recovery[0]),
    )

    assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]


async def test_a_code_one_step_early_or_late_is_accepted(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    wall_clock.advance(5 * STEP)

    # In rising order of time step: an accepted step refuses every earlier one.
    for offset in (-STEP, 0, STEP):
        code = totp_code(secret, wall_clock.now + timedelta(seconds=offset))
        response = await second_step(client, await password_step(client, user.username), code)
        assert response.status_code == 200, (offset, response.text)


async def test_a_code_two_steps_early_or_late_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    wall_clock.advance(10 * STEP)
    mfa_token = await password_step(client, user.username)

    # Both steps are later than any used one: only the window refuses them.
    for offset in (-2 * STEP, 2 * STEP):
        code = totp_code(secret, wall_clock.now + timedelta(seconds=offset))
        assert_error(await second_step(client, mfa_token, code), 401, "INVALID_MFA_CODE")
    assert (await second_step(client, mfa_token, totp_code(secret, wall_clock.now))).is_success


async def test_a_recovery_code_signs_in_once_however_it_is_typed(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, _, recovery = await _mfa_user(client, user_factory, wall_clock)
    typed = recovery[3].upper().replace("-", " ")

    first = await second_step(client, await password_step(client, user.username), typed)
    again = await second_step(client, await password_step(client, user.username), recovery[3])
    other = await second_step(client, await password_step(client, user.username), recovery[4])

    assert first.status_code == 200, first.text
    assert unverified_claims(first.json()["access_token"])["amr"] == ["pwd", "otp"]
    assert_error(again, 401, "INVALID_MFA_CODE")
    assert other.status_code == 200, other.text


async def test_five_wrong_codes_end_the_mfa_token(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, recovery = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    right = totp_code(secret, wall_clock.now)
    wrong = f"{(int(right) + 7) % 1_000_000:06d}"

    for _ in range(5):
        assert_error(await second_step(client, mfa_token, wrong), 401, "INVALID_MFA_CODE")
    for code in (right, recovery[0]):
        assert_error(await second_step(client, mfa_token, code), 401, "INVALID_TOKEN")
    # The account is fine: a new sign-in gets five fresh attempts.
    fresh = await password_step(client, user.username)
    assert (await second_step(client, fresh, right)).status_code == 200


async def test_five_wrong_codes_at_once_leave_no_sixth_attempt(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    right = totp_code(secret, wall_clock.now)
    wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 9)]

    responses = await asyncio.gather(*(second_step(client, mfa_token, c) for c in wrong))

    codes = sorted(r.json()["error_code"] for r in responses)
    assert codes == ["INVALID_MFA_CODE"] * 5 + ["INVALID_TOKEN"] * 3
    assert_error(await second_step(client, mfa_token, right), 401, "INVALID_TOKEN")


async def test_attempts_on_an_mfa_token_count_across_instances(
    settings: Settings, user_factory: UserFactory, client: httpx.AsyncClient, wall_clock: WallClock
) -> None:
    """Two application instances on one database, each with its own process memory."""
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    right = totp_code(secret, wall_clock.now)
    wrong = f"{(int(right) + 3) % 1_000_000:06d}"

    async with running_app(settings) as (_, other):
        for n in range(5):
            at = client if n % 2 else other
            assert_error(await second_step(at, mfa_token, wrong), 401, "INVALID_MFA_CODE")
        assert_error(await second_step(other, mfa_token, right), 401, "INVALID_TOKEN")


async def test_an_mfa_token_expires(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)

    wall_clock.advance(301)

    expired = await second_step(client, mfa_token, totp_code(secret, wall_clock.now))
    assert_error(expired, 401, "INVALID_TOKEN")


async def test_an_mfa_token_signs_in_once(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    assert (await second_step(client, mfa_token, totp_code(secret, wall_clock.now))).is_success

    wall_clock.advance(STEP)
    again = await second_step(client, mfa_token, totp_code(secret, wall_clock.now))

    assert_error(again, 401, "INVALID_TOKEN")


async def test_an_mfa_token_is_no_bearer_token_and_no_refresh_token(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)

    me = await client.get("/users/me", headers=bearer(mfa_token))
    refresh = await client.post("/auth/refresh", json={"refresh_token": mfa_token})
    grant = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": mfa_token}
    )

    assert_error(me, 401, "INVALID_TOKEN")
    assert me.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(refresh, 401, "INVALID_TOKEN")
    assert grant.status_code == 400
    assert grant.json()["error"] == "invalid_grant"
    # Still good for what it is for.
    assert (await second_step(client, mfa_token, totp_code(secret, wall_clock.now))).is_success


async def test_the_password_grant_with_two_factor_on_answers_mfa_required(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)

    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user.email, "password": user.password},
    )

    assert response.status_code == 400, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description", "mfa_token", "request_id"}
    assert body["error"] == "mfa_required"
    assert "access_token" not in body
    finished = await second_step(client, body["mfa_token"], totp_code(secret, wall_clock.now))
    assert finished.status_code == 200, finished.text
    wrong = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user.email, "password": "no " + PASSWORD},
    )
    assert wrong.json()["error"] == "invalid_grant"
    assert "mfa_token" not in wrong.json()


@pytest.mark.parametrize("settings_overrides", [{}])  # the production per-account limits
async def test_wrong_codes_count_toward_the_account_throttle(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)  # 1 of the 5 allowed
    right = totp_code(secret, wall_clock.now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    for _ in range(4):
        assert_error(await second_step(client, mfa_token, wrong), 401, "INVALID_MFA_CODE")
    throttled = await second_step(client, mfa_token, right)
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )

    assert_error(throttled, 429, "RATE_LIMITED")
    assert int(throttled.headers["Retry-After"]) >= 1
    assert_error(login, 429, "RATE_LIMITED")


# --- management --------------------------------------------------------------------------


async def test_turning_two_factor_off_takes_the_current_password(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, _, _ = await _mfa_user(client, user_factory, wall_clock)

    wrong = await client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"current_password": "not " + PASSWORD},
        headers=user.auth,
    )
    assert_error(wrong, 400, "INVALID_CURRENT_PASSWORD")
    assert (await client.get("/users/me", headers=user.auth)).json()["mfa_enabled"] is True
    assert (
        await client.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        )
    ).status_code == 202

    right = await client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=user.auth
    )

    assert right.status_code == 204, right.text
    assert (await client.get("/users/me", headers=user.auth)).json()["mfa_enabled"] is False
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert login.status_code == 200
    assert unverified_claims(login.json()["access_token"])["amr"] == ["pwd"]
    assert (await client.post("/users/me/mfa/totp", headers=user.auth)).status_code == 201


async def test_a_pending_sign_in_ends_when_two_factor_is_turned_off(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    off = await client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=user.auth
    )
    assert off.status_code == 204

    late = await second_step(client, mfa_token, totp_code(secret, wall_clock.now))

    assert_error(late, 401, "INVALID_TOKEN")


async def test_new_recovery_codes_replace_the_old_ones(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, old = await _mfa_user(client, user_factory, wall_clock)
    code = totp_code(secret, wall_clock.now)

    response = await client.post(
        "/users/me/mfa/recovery-codes", json={"code": code}, headers=user.auth
    )
    replay = await client.post(
        "/users/me/mfa/recovery-codes", json={"code": code}, headers=user.auth
    )

    assert response.status_code == 200, response.text
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    assert_error(replay, 400, "INVALID_MFA_CODE")
    stale = await second_step(client, await password_step(client, user.username), old[0])
    assert_error(stale, 401, "INVALID_MFA_CODE")
    fresh = await second_step(client, await password_step(client, user.username), new[0])
    assert fresh.status_code == 200, fresh.text


async def test_new_recovery_codes_need_a_right_code_and_two_factor_on(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, recovery = await _mfa_user(client, user_factory, wall_clock)
    stranger = await user_factory()
    right = totp_code(secret, wall_clock.now)

    for code in (f"{(int(right) + 1) % 1_000_000:06d}", recovery[0]):
        response = await client.post(
            "/users/me/mfa/recovery-codes", json={"code": code}, headers=user.auth
        )
        assert_error(response, 400, "INVALID_MFA_CODE")
    off = await client.post(
        "/users/me/mfa/recovery-codes", json={"code": right}, headers=stranger.auth
    )
    assert_error(off, 400, "INVALID_MFA_CODE")


async def test_mfa_routes_need_a_bearer_token_and_refuse_unknown_fields(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    assert_error(await client.post("/users/me/mfa/totp"), 401, "NOT_AUTHENTICATED")
    extra = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": "123456", "enabled": True}, headers=user.auth
    )
    assert_error(extra, 400, "VALIDATION_ERROR")
    missing = await client.post("/auth/login/mfa", json={"code": "123456"})
    assert_error(missing, 400, "VALIDATION_ERROR")


# --- at rest -----------------------------------------------------------------------------


async def _database_copy(settings: Settings, database: Database) -> bytes:
    """What a stolen copy of the database holds: the SQLite files, or every row as text."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        path = Path(url.database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    async with database.engine.connect() as connection:
        tables = (
            await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ).scalars()
        rows: list[str] = []
        for table in list(tables):
            result = await connection.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
            rows += result.scalars()
    return "\n".join(rows).encode()


async def test_the_totp_secret_and_recovery_codes_are_not_stored_in_plain(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    settings: Settings,
    database: Database,
) -> None:
    user, secret, recovery = await _mfa_user(client, user_factory, wall_clock)
    # Signed in once with each factor, so every row has been written.
    await second_step(client, await password_step(client, user.username), recovery[0])
    await second_step(
        client, await password_step(client, user.username), totp_code(secret, wall_clock.now)
    )

    copy = await _database_copy(settings, database)

    assert b"secret_encrypted" in copy
    assert b"code_hash" in copy
    raw = base64.b32decode(secret)
    forms = [secret.encode(), secret.lower().encode(), raw, raw.hex().encode()]
    forms += [raw.hex().upper().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw)]
    for code in recovery:
        forms += [code.encode(), code.replace("-", "").encode(), code.upper().encode()]
    for form in forms:
        assert form not in copy, form


async def test_a_user_deactivated_between_the_two_steps_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock, database: Database
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    mfa_token = await password_step(client, user.username)
    async with database.session() as session:
        await session.execute(
            text("UPDATE users SET is_active = false WHERE id = :id"), {"id": user.id}
        )

    response = await second_step(client, mfa_token, totp_code(secret, wall_clock.now))

    assert_error(response, 401, "USER_INACTIVE")


async def test_after_a_secret_key_change_recovery_codes_still_sign_in(
    settings: Settings, client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, secret, recovery = await _mfa_user(client, user_factory, wall_clock)
    rotated = settings.model_copy(update={"secret_key": SecretStr("another-" + "k" * 40)})

    async with running_app(rotated, wall_clock=wall_clock) as (_, other):
        totp = await second_step(
            other, await password_step(other, user.username), totp_code(secret, wall_clock.now)
        )
        backup = await second_step(other, await password_step(other, user.username), recovery[0])

    # The stored key no longer decrypts (a new SECRET_KEY derives another key) ...
    assert_error(totp, 401, "INVALID_MFA_CODE")
    # ... while recovery codes, hashed without a key, still let the user in.
    assert backup.status_code == 200, backup.text


async def test_an_unverified_address_is_refused_before_the_second_step(
    settings: Settings, client: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user, _, _ = await _mfa_user(client, user_factory, wall_clock)  # its address unverified
    strict = settings.model_copy(update={"email_verification_required": True})

    async with running_app(strict, wall_clock=wall_clock) as (_, other):
        login = await other.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        )
        wrong = await other.post(
            "/auth/login", json={"username": user.username, "password": "not the password"}
        )

    # No mfa_token: the password step is not finished while the address is unproven.
    assert_error(login, 403, "EMAIL_NOT_VERIFIED")
    assert "mfa_token" not in login.json()
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
