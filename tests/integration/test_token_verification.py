"""Strict JWT verification seen from outside: every malformed or forged token is a 401 in
the contract's body (never a 500), on a bearer route and on the refresh endpoint alike.

Each forged token starts from the claims of a real, live session, so the only thing wrong
with it is the defect under test (RFC 8725 §2-3).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.support import TEST_SECRET, UserFactory, assert_error
from tests.support.backends import backend_independent

# The HS512 forgery uses the (shorter) service key on purpose; PyJWT warns about that.
pytestmark = [pytest.mark.filterwarnings("ignore:The HMAC key is"), backend_independent]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _signed(header: dict[str, Any], claims: dict[str, Any], alg: str = "HS256") -> str:
    return jwt.encode(claims, TEST_SECRET, algorithm=alg, headers=header)


FORGERIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "alg none": lambda c: _unsigned({"alg": "none", "typ": "JWT"}, c),
    "alg None": lambda c: _unsigned({"alg": "None", "typ": "JWT"}, c),
    "alg NONE": lambda c: _unsigned({"alg": "NONE", "typ": "JWT"}, c),
    "alg nOnE": lambda c: _unsigned({"alg": "nOnE", "typ": "JWT"}, c),
    "HS384 with the right key": lambda c: _signed({}, c, "HS384"),
    "HS512 with the right key": lambda c: _signed({}, c, "HS512"),
    "kid header": lambda c: _signed({"kid": "../../dev/null"}, c),
    "jku header": lambda c: _signed({"jku": "https://evil.example/jwks.json"}, c),
    "x5u header": lambda c: _signed({"x5u": "https://evil.example/cert.pem"}, c),
    "jwk header": lambda c: _signed({"jwk": {"kty": "oct", "k": _b64(b"k")}}, c),
    "JWE (5 segments)": lambda c: "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn",
    "bad base64": lambda c: "%%%not-base64%%%.@@@.!!!",
    "bad JSON header": lambda c: f"{_b64(b'{not json')}.{_b64(b'{}')}.{_b64(b'sig')}",
    "huge header": lambda c: _signed({"pad": "x" * 5000}, c),
    "no iss": lambda c: _signed({}, {k: v for k, v in c.items() if k != "iss"}),
    "no aud": lambda c: _signed({}, {k: v for k, v in c.items() if k != "aud"}),
    "no exp": lambda c: _signed({}, {k: v for k, v in c.items() if k != "exp"}),
    "no iat": lambda c: _signed({}, {k: v for k, v in c.items() if k != "iat"}),
    "no jti": lambda c: _signed({}, {k: v for k, v in c.items() if k != "jti"}),
    "no type": lambda c: _signed({}, {k: v for k, v in c.items() if k != "type"}),
    "wrong iss": lambda c: _signed({}, {**c, "iss": "someone-else"}),
    "wrong aud": lambda c: _signed({}, {**c, "aud": "another-service"}),
    "iat in the future": lambda c: _signed({}, {**c, "iat": c["iat"] + 3600}),
    "sub not a string": lambda c: _signed({}, {**c, "sub": int(c["sub"])}),
    "signature stripped": lambda c: _signed({}, c).rsplit(".", 1)[0] + ".",
    # Far past what a datetime holds (year 33658), and past a 64-bit time_t: once a 500.
    "exp in the year 33658": lambda c: _signed({}, {**c, "exp": 10**12}),
    "exp beyond time_t": lambda c: _signed({}, {**c, "exp": 10**20}),
    "exp of 400 digits": lambda c: _signed({}, {**c, "exp": 10**400}),
    "nbf infinite": lambda c: _signed({}, {**c, "nbf": float("inf")}),
}


def _claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_the_untampered_baseline_is_accepted(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    """The forgeries below differ from this token by their defect only."""
    user = await user_factory()
    token = _signed({}, _claims_of(user.access_token))
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("defect", list(FORGERIES))
async def test_forged_access_token_is_401_invalid_token(
    client: httpx.AsyncClient, user_factory: UserFactory, defect: str
) -> None:
    user = await user_factory()
    token = FORGERIES[defect](_claims_of(user.access_token))
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "INVALID_TOKEN")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("defect", list(FORGERIES))
async def test_forged_refresh_token_is_401_invalid_token(
    client: httpx.AsyncClient, user_factory: UserFactory, defect: str
) -> None:
    user = await user_factory()
    token = FORGERIES[defect](_claims_of(user.refresh_token))
    response = await client.post("/auth/refresh", json={"refresh_token": token})
    assert_error(response, 401, "INVALID_TOKEN")
