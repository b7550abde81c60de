"""`authsvc users create|deactivate|activate|show|list` on real databases, checked over HTTP."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.user import User
from tests.support import PASSWORD, CliInvoker, UserFactory


async def _login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


async def test_created_user_logs_in_over_http(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "Alice@Example.com", "--username", "Alice",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "created user Alice <alice@example.com>" in result.stdout
    response = await _login(client, "alice")
    assert response.status_code == 200
    assert response.json()["user"]["email"] == "alice@example.com"


async def test_create_prompts_for_the_password_twice(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "bob@example.com", "--username", "bob",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert (await _login(client, "bob")).status_code == 200


async def test_create_with_mismatched_confirmation_creates_nothing(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "bob@example.com", "--username", "bob",
        input=f"{PASSWORD}\nsomething else entirely\n",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "do not match" in result.output
    assert (await _login(client, "bob")).status_code == 401


async def test_create_takes_no_password_argument(run_cli: CliInvoker) -> None:
    result = await run_cli(
        "users", "create", "--email", "a@example.com", "--username", "abc", "--password", PASSWORD
    )

    assert result.exit_code == 2
    assert "No such option" in result.output


async def test_create_applies_the_registration_password_policy(
    run_cli: CliInvoker, db_session: AsyncSession
) -> None:
    result = await run_cli(
        "users", "create", "--email", "carol@example.com", "--username", "carol",
        "--password-stdin", input="password123\n",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "too common" in result.stderr
    assert (await db_session.execute(select(User))).first() is None


async def test_create_with_a_malformed_email_is_a_usage_error(run_cli: CliInvoker) -> None:
    result = await run_cli(
        "users", "create", "--email", "not-an-email", "--username", "dave",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--email" in result.output


async def test_create_with_an_empty_stdin_is_a_usage_error(run_cli: CliInvoker) -> None:
    result = await run_cli(
        "users", "create", "--email", "e@example.com", "--username", "erin",
        "--password-stdin", input="",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "no password" in result.output


async def test_create_refuses_a_taken_username_whatever_its_case(
    run_cli: CliInvoker, user_factory: UserFactory
) -> None:
    await user_factory(username="frank", email="frank@example.com")

    result = await run_cli(
        "users", "create", "--email", "other@example.com", "--username", "FRANK",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "already exists" in result.stderr


async def test_deactivated_user_cannot_log_in_and_its_tokens_stop_working(
    run_cli: CliInvoker, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory(username="grace", email="grace@example.com")
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200

    result = await run_cli("users", "deactivate", "Grace@example.com")

    assert result.exit_code == 0, result.output
    assert "now inactive" in result.stdout
    login = await _login(client, "grace")
    assert (login.status_code, login.json()["error_code"]) == (401, "USER_INACTIVE")
    me = await client.get("/users/me", headers=user.auth)
    assert (me.status_code, me.json()["error_code"]) == (401, "USER_INACTIVE")
    refresh = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert (refresh.status_code, refresh.json()["error_code"]) == (401, "USER_INACTIVE")


async def test_activate_lets_a_deactivated_user_log_in_again(
    run_cli: CliInvoker, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    await user_factory(username="heidi")
    await run_cli("users", "deactivate", "heidi")

    result = await run_cli("users", "activate", "heidi")

    assert result.exit_code == 0, result.output
    assert (await _login(client, "heidi")).status_code == 200


async def test_deactivating_twice_says_so_and_succeeds(
    run_cli: CliInvoker, user_factory: UserFactory
) -> None:
    await user_factory(username="ivan")
    await run_cli("users", "deactivate", "ivan")

    result = await run_cli("users", "deactivate", "ivan")

    assert result.exit_code == 0
    assert "already inactive" in result.stdout


async def test_commands_on_an_unknown_user_fail(run_cli: CliInvoker) -> None:
    for command in ("deactivate", "activate", "show"):
        result = await run_cli("users", command, "nobody@example.com")
        assert result.exit_code == 1, command
        assert "no user" in result.stderr


async def test_values_are_printed_verbatim_never_as_markup(run_cli: CliInvoker) -> None:
    result = await run_cli("users", "show", "[red]ghost[/red] :smile:")

    assert result.exit_code == 1
    assert "'[red]ghost[/red] :smile:'" in result.stderr


async def test_show_prints_the_account_and_its_hash_scheme_never_the_hash(
    run_cli: CliInvoker, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    user = await user_factory(username="judy", email="judy@example.com")
    stored = (await db_session.execute(select(User.hashed_password))).scalar_one()
    assert stored is not None

    as_json = await run_cli("users", "show", "judy", "--json")
    as_table = await run_cli("users", "show", "judy@example.com")

    assert as_json.exit_code == 0
    record = json.loads(as_json.stdout)
    assert record["id"] == user.id
    assert record["is_active"] is True
    assert record["password_scheme"] == "argon2id"
    assert record["mfa_enabled"] is False
    assert set(record) == {
        "id",
        "email",
        "username",
        "is_active",
        "email_verified",
        "created_at",
        "last_login",
        "roles",
        "mfa_enabled",
        "has_password",
        "password_scheme",
    }  # fmt: skip
    assert as_table.exit_code == 0
    assert "judy@example.com" in as_table.stdout
    for output in (as_json.output, as_table.output):
        assert stored not in output


async def test_list_filters_inactive_users_and_honours_the_limit(
    run_cli: CliInvoker, user_factory: UserFactory
) -> None:
    for name in ("kim", "lee", "max"):
        await user_factory(username=name)
    await run_cli("users", "deactivate", "lee")

    everyone = await run_cli("users", "list", "--json")
    inactive = await run_cli("users", "list", "--inactive", "--json")
    first_two = await run_cli("users", "list", "--limit", "2", "--json")
    table = await run_cli("users", "list")

    assert [u["username"] for u in json.loads(everyone.stdout)] == ["kim", "lee", "max"]
    assert [u["username"] for u in json.loads(inactive.stdout)] == ["lee"]
    assert [u["username"] for u in json.loads(first_two.stdout)] == ["kim", "lee"]
    assert table.exit_code == 0
    assert all(name in table.stdout for name in ("kim", "lee", "max"))


async def test_list_with_a_limit_of_zero_is_a_usage_error(run_cli: CliInvoker) -> None:
    result = await run_cli("users", "list", "--limit", "0")

    assert result.exit_code == 2
