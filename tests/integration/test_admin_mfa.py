"""Two-factor authentication seen from the admin API and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.database import Database
from tests.support import RegisteredUser, UserFactory
from tests.support.admin import audit_events, bearer
from tests.support.mfa import enable_mfa, password_step, second_step, totp_code


async def test_an_admin_turns_a_users_two_factor_off_and_the_trail_names_both(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    admin: RegisteredUser,
    database: Database,
) -> None:
    user = await user_factory()
    await enable_mfa(client, user.access_token, datetime.now(UTC))
    await password_step(client, user.username)  # asserts the 202 of a second step due

    reset = await client.delete(f"/admin/users/{user.id}/mfa", headers=bearer(admin.access_token))
    login = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )

    assert reset.status_code == 204
    assert login.status_code == 200, login.text
    assert login.json()["user"]["mfa_enabled"] is False
    [enabled] = await audit_events(database, "mfa.enabled")
    [disabled] = await audit_events(database, "mfa.disabled")
    assert (enabled.user_id, enabled.actor_id) == (user.id, user.id)
    assert (disabled.user_id, disabled.actor_id) == (user.id, admin.id)
    assert disabled.details == {"via": "admin"}


async def test_turning_two_factor_off_for_an_unknown_user_is_404(
    client: httpx.AsyncClient, admin: RegisteredUser
) -> None:
    response = await client.delete("/admin/users/999999/mfa", headers=bearer(admin.access_token))

    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_a_wrong_second_factor_is_audited_and_a_finished_sign_in_names_its_methods(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    enabled = await enable_mfa(client, user.access_token, datetime.now(UTC))

    now = datetime.now(UTC)
    window = {totp_code(enabled.secret, now + timedelta(seconds=30 * k)) for k in (-1, 0, 1, 2)}
    wrong_code = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in window)
    wrong = await second_step(client, await password_step(client, user.username), wrong_code)
    # One step ahead: later than the confirming code's step, inside the ±1 window.
    right_code = totp_code(enabled.secret, datetime.now(UTC) + timedelta(seconds=30))
    right = await second_step(client, await password_step(client, user.username), right_code)

    assert wrong.status_code == 401
    assert wrong.json()["error_code"] == "INVALID_MFA_CODE"
    assert right.status_code == 200, right.text
    [failed] = await audit_events(database, "mfa.failed")
    assert (failed.user_id, failed.details) == (user.id, {"reason": "wrong_mfa_code"})
    login_failed = await audit_events(database, "login.failed")
    assert [e.details for e in login_failed] == [{"reason": "wrong_mfa_code"}]
    succeeded = await audit_events(database, "login.succeeded")
    assert succeeded[-1].details == {"methods": ["password", "totp"]}
