"""Helpers of the two-factor tests: a settable wall clock, codes computed by pyotp itself
(independently of the service's code), and the enrolment and password steps as a client
performs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pyotp

from tests.support.accounts import PASSWORD

STEP = 30  # seconds per TOTP code


class WallClock:
    """A UTC clock that moves only when told to; starts 10 s into a 30 s time step."""

    def __init__(self) -> None:
        now = int(datetime.now(UTC).timestamp())
        self.now = datetime.fromtimestamp(now - now % STEP + 10, UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def totp_code(secret: str, when: datetime) -> str:
    """The code an authenticator app shows at `when` (pyotp: SHA-1, 6 digits, 30 s)."""
    return pyotp.TOTP(secret).at(when)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@dataclass
class Enabled:
    secret: str
    recovery_codes: list[str]


async def enable_mfa(client: httpx.AsyncClient, access_token: str, when: datetime) -> Enabled:
    """Enrol and confirm with the code of `when`, as a user with an authenticator app does."""
    enrolment = await client.post("/users/me/mfa/totp", headers=bearer(access_token))
    assert enrolment.status_code == 201, enrolment.text
    secret = enrolment.json()["secret"]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret, when)},
        headers=bearer(access_token),
    )
    assert confirmed.status_code == 200, confirmed.text
    return Enabled(secret, confirmed.json()["recovery_codes"])


async def password_step(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """The mfa_token of a right password for an account with two-factor on."""
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 202, response.text
    token: str = response.json()["mfa_token"]
    return token


async def second_step(client: httpx.AsyncClient, mfa_token: str, code: str) -> httpx.Response:
    return await client.post("/auth/login/mfa", json={"mfa_token": mfa_token, "code": code})
