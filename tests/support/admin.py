"""Helpers for the sessions, roles, administration and audit tests."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from sqlalchemy import select

from app.database import Database
from app.models import AuditEvent
from app.users.roles import RoleService
from app.users.service import UserService
from tests.support import PASSWORD


async def grant(database: Database, user_id: int, *roles: str) -> None:
    """Give a user roles directly in the database (as `authsvc users roles --add` does)."""
    async with database.session() as session:
        user = await UserService(session).get_by_id(user_id)
        assert user is not None
        await RoleService(session).set_roles(user, {*user.roles, *roles})


async def sign_in(
    client: httpx.AsyncClient,
    username: str,
    *,
    user_agent: str = "pytest",
    password: str = PASSWORD,
) -> dict[str, Any]:
    """A new session of the account (the TokenResponse body)."""
    response = await client.post(
        "/auth/login",
        json={"username": username, "password": password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without checking it (the tests check the service, not PyJWT)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def audit_events(database: Database, event: str | None = None) -> list[AuditEvent]:
    """Every audit event (or every one of a name), oldest first."""
    async with database.session() as session:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if event is not None:
            stmt = stmt.where(AuditEvent.event == event)
        return list((await session.execute(stmt)).scalars())
