"""With an HS algorithm (the default) the shared secret is never published and access
tokens carry no `kid`; only the ID tokens' key pair is in the JWKS."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.support import CliInvoker, UserFactory


async def test_with_a_shared_secret_the_jwks_has_only_the_id_token_key(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert [key["alg"] for key in response.json()["keys"]] == ["RS256"]
    assert "kid" not in jwt.get_unverified_header(user.access_token)


@pytest.mark.parametrize("command", [["rotate"], ["revoke", "some-kid"]])
async def test_rotating_or_revoking_keys_with_a_shared_secret_is_refused(
    run_cli: CliInvoker, command: list[str]
) -> None:
    result = await run_cli("keys", *command)

    assert result.exit_code == 1
    assert "JWT_ALGORITHM is HS256" in result.stderr


async def test_the_metadata_and_the_tokens_default_to_the_local_public_url(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    body = (await client.get("/.well-known/oauth-authorization-server")).json()

    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    assert claims["iss"] == body["issuer"]

    assert body["jwks_uri"] == "http://localhost:8000/.well-known/jwks.json"
    assert body["issuer"] == "http://localhost:8000"
