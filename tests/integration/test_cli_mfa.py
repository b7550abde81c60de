"""`authsvc users show` tells whether two-factor is on; `users mfa-reset` turns it off."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from tests.support import CliInvoker, UserFactory
from tests.support.mfa import enable_mfa, password_step


async def test_show_says_whether_two_factor_is_on(
    run_cli: CliInvoker, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    before = json.loads((await run_cli("users", "show", user.username, "--json")).stdout)
    await enable_mfa(client, user.access_token, datetime.now(UTC))

    as_json = await run_cli("users", "show", user.username, "--json")
    as_table = await run_cli("users", "show", user.email)

    assert before["mfa_enabled"] is False
    assert json.loads(as_json.stdout)["mfa_enabled"] is True
    assert any(line.split() == ["mfa_enabled", "yes"] for line in as_table.stdout.splitlines()), (
        as_table.stdout
    )


async def test_mfa_reset_turns_two_factor_off_and_the_password_signs_in_again(
    run_cli: CliInvoker, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await enable_mfa(client, user.access_token, datetime.now(UTC))
    pending = await password_step(client, user.username)

    reset = await run_cli("users", "mfa-reset", user.email)

    assert reset.exit_code == 0, reset.output
    assert f"two-factor authentication of {user.username} (id {user.id}) is now off" in (
        reset.stdout
    )
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert login.status_code == 200, login.text
    assert login.json()["user"]["mfa_enabled"] is False
    # The sign-in that was waiting for its second factor died with the key.
    late = await client.post("/auth/login/mfa", json={"mfa_token": pending, "code": "123456"})
    assert late.json()["error_code"] == "INVALID_TOKEN"
    # The user can enrol again.
    again = await client.post(
        "/users/me/mfa/totp", headers={"Authorization": f"Bearer {user.access_token}"}
    )
    assert again.status_code == 201


async def test_mfa_reset_of_an_account_without_two_factor_says_so(
    run_cli: CliInvoker, user_factory: UserFactory
) -> None:
    user = await user_factory()

    result = await run_cli("users", "mfa-reset", user.username, "--json")

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["id"] == user.id
    assert record["mfa_enabled"] is False
    text = await run_cli("users", "mfa-reset", user.username)
    assert "was already off" in text.stdout


async def test_mfa_reset_of_an_unknown_user_fails(run_cli: CliInvoker) -> None:
    result = await run_cli("users", "mfa-reset", "nobody@example.com")

    assert result.exit_code == 1
    assert "no user with email or username 'nobody@example.com'" in result.stderr
