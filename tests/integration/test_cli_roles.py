"""`authsvc users create --role`, `authsvc users roles` and `authsvc audit`, checked over HTTP."""

from __future__ import annotations

import json

import httpx

from tests.support import PASSWORD, CliInvoker, UserFactory
from tests.support.admin import sign_in


async def test_create_with_role_admin_opens_the_admin_routes(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "ops@example.com", "--username", "ops",
        "--role", "admin", "--role", "billing", "--password-stdin", "--json",
        input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["roles"] == ["admin", "billing"]
    assert created["username"] == "ops"
    token = (await sign_in(client, "ops"))["access_token"]
    listing = await client.get("/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert listing.status_code == 200


async def test_create_with_a_bad_role_is_a_usage_error_and_creates_nothing(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "x@example.com", "--username", "xavier",
        "--role", "Not A Role", "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--role" in result.output
    login = await client.post("/auth/login", json={"username": "xavier", "password": PASSWORD})
    assert login.status_code == 401


async def test_roles_adds_and_removes_and_prints_the_user(
    run_cli: CliInvoker, user_factory: UserFactory, client: httpx.AsyncClient
) -> None:
    user = await user_factory()

    added = await run_cli("users", "roles", user.email, "--add", "admin", "--add", "ops", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["roles"] == ["admin", "ops"]
    assert (await client.get("/admin/users", headers=user.auth)).status_code == 200  # at once

    shown = await run_cli("users", "roles", user.username.upper())
    assert shown.exit_code == 0
    assert "admin, ops" in shown.stdout

    await user_factory()  # so that removing admin from the first user is allowed
    second = await run_cli("users", "roles", "user2", "--add", "admin")
    assert second.exit_code == 0, second.output
    removed = await run_cli("users", "roles", user.email, "--remove", "admin", "--json")
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["roles"] == ["ops"]
    assert (await client.get("/admin/users", headers=user.auth)).status_code == 403


async def test_roles_refuses_to_remove_the_last_active_admin(
    run_cli: CliInvoker, user_factory: UserFactory, client: httpx.AsyncClient
) -> None:
    user = await user_factory()
    assert (await run_cli("users", "roles", user.username, "--add", "admin")).exit_code == 0

    removed = await run_cli("users", "roles", user.username, "--remove", "admin")
    deactivated = await run_cli("users", "deactivate", user.username)

    for result in (removed, deactivated):
        assert result.exit_code == 1
        assert "last active admin" in result.stderr
    assert (await client.get("/admin/users", headers=user.auth)).status_code == 200


async def test_roles_of_an_unknown_user_or_a_bad_role_fail(run_cli: CliInvoker) -> None:
    unknown = await run_cli("users", "roles", "nobody@example.com", "--add", "ops")
    assert unknown.exit_code == 1
    assert "no user" in unknown.stderr
    bad = await run_cli("users", "roles", "nobody@example.com", "--add", "UPPER")
    assert bad.exit_code == 2


async def test_audit_prints_the_trail_filtered_as_json_and_as_a_table(
    run_cli: CliInvoker, user_factory: UserFactory, client: httpx.AsyncClient
) -> None:
    alice, bob = await user_factory(), await user_factory()
    await client.post("/auth/login", json={"username": alice.username, "password": "wrong one"})
    await run_cli("users", "deactivate", bob.username)

    everything = await run_cli("audit", "--json")
    assert everything.exit_code == 0, everything.output
    events = json.loads(everything.stdout)
    assert [e["event"] for e in events] == [
        "user.updated", "login.failed", "user.registered", "user.registered"
    ]  # fmt: skip
    assert events[0]["actor_id"] is None
    assert events[0]["details"]["via"] == "cli"

    failed = json.loads((await run_cli("audit", "--event", "login.failed", "--json")).stdout)
    assert [(e["user_id"], e["details"]) for e in failed] == [
        (alice.id, {"reason": "wrong_password"})
    ]
    by_name = json.loads((await run_cli("audit", "--user", bob.email, "--json")).stdout)
    by_id = json.loads((await run_cli("audit", "--user", str(bob.id), "--json")).stdout)
    assert by_name == by_id
    assert [e["event"] for e in by_id] == ["user.updated", "user.registered"]
    recent = json.loads((await run_cli("audit", "--since", "1h", "--json")).stdout)
    assert len(recent) == 4
    future = json.loads((await run_cli("audit", "--since", "2999-01-01", "--json")).stdout)
    assert future == []
    limited = json.loads((await run_cli("audit", "--limit", "1", "--json")).stdout)
    assert [e["id"] for e in limited] == [events[0]["id"]]

    table = await run_cli("audit")
    assert table.exit_code == 0
    assert "login.failed" in table.stdout
    assert "reason=wrong_password" in table.stdout
    assert "4 event(s)" in table.stderr


async def test_audit_with_bad_filters_fails(run_cli: CliInvoker) -> None:
    assert (await run_cli("audit", "--since", "last tuesday")).exit_code == 2
    assert (await run_cli("audit", "--event", "DROP TABLE")).exit_code == 2
    unknown = await run_cli("audit", "--user", "nobody@example.com")
    assert unknown.exit_code == 1
