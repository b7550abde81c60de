"""Clients of the OpenID provider: `authsvc clients create` and /admin/clients, the rules
of redirect URIs, the secret shown once, the audit trail, and version 2's clients."""

from __future__ import annotations

import json

import httpx
import pytest

from app.database import Database
from app.oauth2.clients import ClientService
from tests.support import CliInvoker, RegisteredUser, UserFactory
from tests.support.admin import audit_events, grant, sign_in


@pytest.fixture
async def admin(
    user_factory: UserFactory, database: Database, client: httpx.AsyncClient
) -> RegisteredUser:
    user = await user_factory(username="root", email="root@example.com")
    await grant(database, user.id, "admin")
    user.access_token = (await sign_in(client, user.username))["access_token"]
    return user


async def test_cli_creates_a_confidential_application_and_shows_its_secret_once(
    run_cli: CliInvoker, database: Database
) -> None:
    result = await run_cli(
        "clients", "create", "Shop", "--redirect-uri", "https://shop.example/cb",
        "--post-logout-redirect-uri", "https://shop.example/bye", "--first-party", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["redirect_uris"] == ["https://shop.example/cb"]
    assert created["post_logout_redirect_uris"] == ["https://shop.example/bye"]
    assert created["first_party"] is True
    assert created["public"] is False
    assert len(created["client_secret"]) >= 43
    async with database.session() as session:
        proven = await ClientService(session).authenticate(
            created["client_id"], created["client_secret"]
        )
    assert proven is not None
    listed = json.loads((await run_cli("clients", "list", "--json")).stdout)
    assert "client_secret" not in json.dumps(listed)
    assert [e.event for e in await audit_events(database, "client.created")] == ["client.created"]


async def test_cli_creates_a_public_client_without_a_secret(run_cli: CliInvoker) -> None:
    result = await run_cli(
        "clients", "create", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:5173/cb",
        "--json",
    )  # fmt: skip
    created = json.loads(result.stdout)
    assert created["public"] is True
    assert created["client_secret"] is None


@pytest.mark.parametrize(
    "uri",
    ["https://app.example/cb#x", "http://app.example/cb", "javascript:alert(1)", "myapp:/cb"],
)
async def test_cli_refuses_a_bad_redirect_uri(run_cli: CliInvoker, uri: str) -> None:
    result = await run_cli("clients", "create", "Bad", "--redirect-uri", uri)
    assert result.exit_code != 0
    assert "redirect URI" in result.output


async def test_admin_api_registers_reads_changes_and_deletes_a_client(
    client: httpx.AsyncClient, admin: RegisteredUser, database: Database
) -> None:
    body = {
        "name": "Partner",
        "redirect_uris": ["https://partner.example/cb"],
        "post_logout_redirect_uris": [],
        "public": False,
        "first_party": False,
    }
    created = await client.post("/admin/clients", json=body, headers=admin.auth)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"].startswith("no-store")
    secret = created.json()["client_secret"]
    client_id = created.json()["client_id"]
    assert secret
    read = await client.get(f"/admin/clients/{client_id}", headers=admin.auth)
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    listed = await client.get("/admin/clients", headers=admin.auth)
    assert [c["client_id"] for c in listed.json()] == [client_id]
    changed = await client.patch(
        f"/admin/clients/{client_id}",
        json={"redirect_uris": ["https://partner.example/new"]},
        headers=admin.auth,
    )
    assert changed.json()["redirect_uris"] == ["https://partner.example/new"]
    assert changed.json()["name"] == "Partner"
    deleted = await client.delete(f"/admin/clients/{client_id}", headers=admin.auth)
    assert deleted.status_code == 204
    gone = await client.get(f"/admin/clients/{client_id}", headers=admin.auth)
    assert gone.status_code == 404
    assert gone.json()["error_code"] == "NOT_FOUND"
    events = [e.event for e in await audit_events(database) if e.event.startswith("client.")]
    assert events == ["client.created", "client.updated", "client.deleted"]
    for event in await audit_events(database):
        assert secret not in json.dumps(event.details)


async def test_admin_api_refuses_a_fragment_and_a_public_client_without_redirect_uri(
    client: httpx.AsyncClient, admin: RegisteredUser
) -> None:
    fragment = await client.post(
        "/admin/clients",
        json={"name": "X", "redirect_uris": ["https://x.example/cb#f"]},
        headers=admin.auth,
    )
    assert fragment.status_code == 400
    assert fragment.json()["error_code"] == "VALIDATION_ERROR"
    public = await client.post(
        "/admin/clients", json={"name": "X", "public": True}, headers=admin.auth
    )
    assert public.status_code == 400


async def test_client_routes_are_for_admins_only(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    assert (await client.get("/admin/clients", headers=user.auth)).status_code == 403
    assert (
        await client.post("/admin/clients", json={"name": "x"}, headers=user.auth)
    ).status_code == 403


async def test_an_introspection_client_of_version_2_keeps_working(
    client: httpx.AsyncClient, run_cli: CliInvoker, user_factory: UserFactory
) -> None:
    created = json.loads((await run_cli("clients", "create", "billing-api", "--json")).stdout)
    user = await user_factory()
    answer = await client.post(
        "/auth/introspect",
        data={"token": user.access_token},
        auth=(created["client_id"], created["client_secret"]),
    )
    assert answer.status_code == 200
    assert answer.json()["active"] is True
