"""`authsvc keys revoke KID`: the key leaves the JWKS and its tokens are refused at once, by
every worker on the database (not at their next refresh), and the service keeps signing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from app.database import Database
from tests.support import PASSWORD, CliInvoker, UserFactory, assert_error, running_app
from tests.support.admin import audit_events

# Far longer than any test: whatever a worker notices, it notices without a refresh.
REFRESH_SECONDS = 3600


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # ID tokens share the access keys (same algorithm): the JWKS holds only those.
    return {
        "jwt_algorithm": "EdDSA",
        "id_token_algorithm": "EdDSA",
        "signing_key_refresh_seconds": REFRESH_SECONDS,
    }


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def published(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


async def keys_cli(run_cli: CliInvoker, command: str, *kids: str) -> Any:
    # A key id is a base64url thumbprint and may start with "-": it follows "--".
    result = await run_cli("keys", command, "--json", *(("--", *kids) if kids else ()))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_revoking_the_current_key_refuses_its_tokens_at_another_worker_at_once(
    client: httpx.AsyncClient,
    settings: Settings,
    user_factory: UserFactory,
    run_cli: CliInvoker,
    database: Database,
) -> None:
    async with running_app(settings) as (_, worker_b):
        user = await user_factory()
        kid = kid_of(user.access_token)
        assert (await worker_b.get("/users/me", headers=user.auth)).status_code == 200
        assert kid in await published(worker_b)

        entry = await keys_cli(run_cli, "revoke", kid)

        assert (entry["kid"], entry["status"], entry["already_revoked"]) == (kid, "revoked", False)
        replacement = entry["replaced_by"]
        assert replacement
        assert replacement != kid
        # Before anything else makes them reload: the check is the key's row, every time.
        for worker in (client, worker_b):
            me = await worker.get("/users/me", headers=user.auth)
            assert_error(me, 401, "INVALID_TOKEN")
        refreshed = await worker_b.post("/auth/refresh", json={"refresh_token": user.refresh_token})
        assert_error(refreshed, 401, "INVALID_TOKEN")
        for worker in (client, worker_b):
            assert await published(worker) == {replacement}

        # Both keep signing, with the new key, and its tokens are good everywhere.
        for worker in (worker_b, client):
            login = await worker.post(
                "/auth/login", json={"username": user.username, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            assert kid_of(token) == replacement
            for other in (client, worker_b):
                bearer = {"Authorization": f"Bearer {token}"}
                assert (await other.get("/users/me", headers=bearer)).status_code == 200

    listed = {key["kid"]: key["status"] for key in await keys_cli(run_cli, "list")}
    assert listed == {kid: "revoked", replacement: "current"}
    events = await audit_events(database, "key.revoked")
    assert [e.details for e in events] == [
        {"via": "cli", "kid": kid, "alg": "EdDSA", "replaced_by": replacement}
    ]
    assert events[0].actor_id is None


async def test_revoking_a_retired_key_leaves_the_current_one_signing(
    client: httpx.AsyncClient,
    settings: Settings,
    user_factory: UserFactory,
    run_cli: CliInvoker,
) -> None:
    async with running_app(settings) as (_, worker_b):
        before = await user_factory()
        old_kid = kid_of(before.access_token)
        new_kid = (await keys_cli(run_cli, "rotate"))["kid"]
        assert await published(client) == {old_kid, new_kid}  # the JWKS reloads the keys
        after = await user_factory()
        assert kid_of(after.access_token) == new_kid

        entry = await keys_cli(run_cli, "revoke", old_kid)

        assert entry["replaced_by"] is None
        for worker in (client, worker_b):
            assert_error(await worker.get("/users/me", headers=before.auth), 401, "INVALID_TOKEN")
            assert (await worker.get("/users/me", headers=after.auth)).status_code == 200
            assert await published(worker) == {new_kid}


async def test_revoking_twice_changes_nothing_and_an_unknown_kid_is_an_error(
    user_factory: UserFactory, run_cli: CliInvoker, database: Database
) -> None:
    kid = kid_of((await user_factory()).access_token)
    first = await keys_cli(run_cli, "revoke", kid)

    again = await keys_cli(run_cli, "revoke", kid)
    unknown = await run_cli("keys", "revoke", "--", "-no-such-kid")

    assert again["already_revoked"] is True
    assert again["replaced_by"] is None
    assert len(await keys_cli(run_cli, "list")) == 2  # no second replacement
    assert first["replaced_by"] is not None
    assert unknown.exit_code == 1
    assert "no signing key -no-such-kid" in unknown.stderr
    assert len(await audit_events(database, "key.revoked")) == 1
