"""Tokens signed with EdDSA, ES256 and RS256 verify with independent libraries against the
published JWKS, fetched over real HTTP from a running server, and every forgery fails both
there and at the service itself (RFC 8725 §2-3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from app.core.signing_keys import generate_private_key
from tests.support import CliInvoker, UserFactory, assert_error

# joserfc follows RFC 9864, which prefers "Ed25519" to the older "EdDSA" of the contract.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ALGORITHMS = ["EdDSA", "ES256", "RS256"]
PUBLIC_MEMBERS = {
    "OKP": {"kty", "crv", "x", "kid", "alg", "use"},
    "EC": {"kty", "crv", "x", "y", "kid", "alg", "use"},
    "RSA": {"kty", "n", "e", "kid", "alg", "use"},
}


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


# JWT_ISSUER is left to its default: PUBLIC_URL.
ISSUER = "https://auth.example.com"


@pytest.fixture
def settings_overrides(algorithm: str) -> dict[str, Any]:
    # ID tokens share the access keys (same algorithm): the JWKS holds only those.
    return {"jwt_algorithm": algorithm, "id_token_algorithm": algorithm, "public_url": ISSUER}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return header, claims


def _hand_signed(header: dict[str, Any], claims: dict[str, Any], mac_key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def _register(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            "/auth/register",
            json={"email": "kim@example.com", "username": "kim", "password": "x7-Quartz-Lagoon"},
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_token_verifies_with_pyjwkclient_against_the_jwks_over_http(
    live_server: str, algorithm: str
) -> None:
    token = (await _register(live_server))["access_token"]
    header, _ = _parts(token)
    assert header["alg"] == algorithm
    assert header["kid"]

    keys = jwt.PyJWKClient(f"{live_server}/.well-known/jwks.json")
    signing_key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, signing_key.key, algorithms=[algorithm], audience="authsvc", issuer=ISSUER
    )

    assert claims["type"] == "access"
    assert signing_key.key_id == header["kid"]


async def test_a_token_verifies_with_joserfc_against_the_jwks(
    live_server: str, algorithm: str
) -> None:
    registered = await _register(live_server)
    async with httpx.AsyncClient(base_url=live_server) as http:
        jwks = (await http.get("/.well-known/jwks.json")).json()

    key_set = KeySet.import_key_set(jwks)
    token = jose_jwt.decode(registered["access_token"], key_set, algorithms=[algorithm])
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "authsvc"},
        sub={"essential": True, "value": str(registered["user"]["id"])},
    ).validate(token.claims)

    assert token.header["kid"] == jwks["keys"][0]["kid"]


async def test_the_jwks_holds_only_public_members_and_may_be_cached(
    client: httpx.AsyncClient, user_factory: UserFactory, algorithm: str
) -> None:
    await user_factory()
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert set(key) == PUBLIC_MEMBERS[key["kty"]]
    assert (key["alg"], key["use"]) == (algorithm, "sig")


@pytest.fixture
def forged(algorithm: str) -> Any:
    return generate_private_key(algorithm)


async def test_a_token_signed_by_another_key_under_the_real_kid_fails_everywhere(
    live_server: str, algorithm: str, forged: Any
) -> None:
    header, claims = _parts((await _register(live_server))["access_token"])
    token = jwt.encode(claims, forged, algorithm=algorithm, headers={"kid": header["kid"]})

    signing_key = jwt.PyJWKClient(f"{live_server}/.well-known/jwks.json").get_signing_key_from_jwt(
        token
    )
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, signing_key.key, algorithms=[algorithm], audience="authsvc")
    async with httpx.AsyncClient(base_url=live_server) as http:
        jwks = (await http.get("/.well-known/jwks.json")).json()
        me = await http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(JoseError):
        jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[algorithm])
    assert_error(me, 401, "INVALID_TOKEN")


async def test_a_token_whose_kid_is_swapped_to_another_published_key_fails(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    run_cli: CliInvoker,
    algorithm: str,
) -> None:
    user = await user_factory()
    old_kid = _parts(user.access_token)[0]["kid"]
    rotated = await run_cli("keys", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.output
    new_kid = json.loads(rotated.stdout)["kid"]
    await app.state.keyring.reload()
    header_b64, payload_b64, signature = user.access_token.split(".")
    header = {**json.loads(base64.urlsafe_b64decode(header_b64 + "==")), "kid": new_kid}
    swapped = f"{_b64(json.dumps(header).encode())}.{payload_b64}.{signature}"

    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    with pytest.raises(JoseError):
        jose_jwt.decode(swapped, KeySet.import_key_set(jwks), algorithms=[algorithm])
    assert_error(
        await client.get("/users/me", headers={"Authorization": f"Bearer {swapped}"}),
        401,
        "INVALID_TOKEN",
    )
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200


@pytest.mark.parametrize("form", ["pem", "der", "jwk-json", "jwk-x"])
async def test_the_public_key_used_as_an_hmac_secret_fails(
    client: httpx.AsyncClient, user_factory: UserFactory, algorithm: str, form: str
) -> None:
    """Algorithm confusion: a verifier that took `alg` from the token would check an HS256
    signature with the published public key as its secret."""
    user = await user_factory()
    header, claims = _parts(user.access_token)
    (jwk,) = (await client.get("/.well-known/jwks.json")).json()["keys"]
    public = jwt.PyJWK(jwk).key
    secrets = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-x": (jwk.get("x") or jwk["n"]).encode(),
    }
    token = _hand_signed({**header, "alg": "HS256"}, claims, secrets[form])

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "INVALID_TOKEN")
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, public, algorithms=[algorithm], audience="authsvc")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_an_unsigned_token_fails(
    client: httpx.AsyncClient, user_factory: UserFactory, alg: str
) -> None:
    user = await user_factory()
    header, claims = _parts(user.access_token)
    token = (
        f"{_b64(json.dumps({**header, 'alg': alg}).encode())}.{_b64(json.dumps(claims).encode())}."
    )

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "INVALID_TOKEN")


def _sign_by_hand(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return (
        f"{signing_input}.{_b64(jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), key))}"
    )


HEADER_DEFECTS: dict[str, Any] = {
    "baseline (nothing wrong)": lambda h: h,
    "no kid": lambda h: {k: v for k, v in h.items() if k != "kid"},
    "kid not a string": lambda h: {**h, "kid": 7},
    "unknown kid": lambda h: {**h, "kid": "not-a-key-of-ours"},
    "jku header": lambda h: {**h, "jku": "https://evil.example/jwks.json"},
    "jwk header": lambda h: {**h, "jwk": {"kty": "oct", "k": "a2V5"}},
}


@pytest.mark.parametrize("defect", list(HEADER_DEFECTS))
async def test_a_missing_or_odd_kid_or_a_key_url_header_fails(
    app: FastAPI, client: httpx.AsyncClient, user_factory: UserFactory, algorithm: str, defect: str
) -> None:
    """Signed with the real private key: only the header differs from a real token."""
    user = await user_factory()
    header, claims = _parts(user.access_token)
    _, _, private_key = app.state.keyring.signing_key()
    token = _sign_by_hand(HEADER_DEFECTS[defect](header), claims, private_key, algorithm)

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    if defect.startswith("baseline"):
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 401, "INVALID_TOKEN")


async def test_the_metadata_names_absolute_endpoints_from_public_url(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200
    body = response.json()
    base = "https://auth.example.com"
    assert body["issuer"] == base
    assert body["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert body["token_endpoint"] == f"{base}/auth/token"
    assert body["revocation_endpoint"] == f"{base}/auth/revoke"
    assert body["introspection_endpoint"] == f"{base}/auth/introspect"
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token", "password"]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert body["response_types_supported"] == ["code"]
    assert body["authorization_endpoint"] == f"{base}/oauth2/authorize"
