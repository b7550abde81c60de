"""Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the ID-token keys in the JWKS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.config import Settings

REQUIRED = {
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "end_session_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "claims_supported",
    "prompt_values_supported",
    "authorization_response_iss_parameter_supported",
}


async def test_openid_configuration_names_every_field_of_the_contract(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    assert doc.keys() >= REQUIRED
    base = settings.public_url
    assert doc["issuer"] == settings.jwt_issuer
    assert doc["authorization_endpoint"] == f"{base}/oauth2/authorize"
    assert doc["token_endpoint"] == f"{base}/auth/token"
    assert doc["userinfo_endpoint"] == f"{base}/oauth2/userinfo"
    assert doc["end_session_endpoint"] == f"{base}/oauth2/logout"
    assert doc["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert {"openid", "profile", "email"} <= set(doc["scopes_supported"])
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query"]
    assert {"authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])
    assert doc["subject_types_supported"] == ["public"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"none", "login", "consent"} <= set(doc["prompt_values_supported"])
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "password" in doc["grant_types_supported"]  # OAUTH2_PASSWORD_GRANT defaults on


async def test_the_rfc_8414_document_is_the_same(client: httpx.AsyncClient) -> None:
    oidc = (await client.get("/.well-known/openid-configuration")).json()
    rfc8414 = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert rfc8414 == oidc


async def test_with_hs256_access_tokens_the_jwks_still_publishes_an_rsa_id_token_key(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.jwt_algorithm.startswith("HS")
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
    assert not {"d", "p", "q"} & keys[0].keys()


class TestPasswordGrantOff:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"oauth2_password_grant": False}

    async def test_the_password_grant_is_neither_listed_nor_served(
        self, client: httpx.AsyncClient
    ) -> None:
        doc = (await client.get("/.well-known/openid-configuration")).json()
        assert "password" not in doc["grant_types_supported"]
        answer = await client.post(
            "/auth/token", data={"grant_type": "password", "username": "a", "password": "b"}
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "unsupported_grant_type"


class TestAsymmetricAccessTokens:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"jwt_algorithm": "EdDSA"}

    async def test_the_jwks_has_the_access_key_and_the_id_token_key(
        self, client: httpx.AsyncClient
    ) -> None:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert sorted(k["alg"] for k in keys) == ["EdDSA", "RS256"]
