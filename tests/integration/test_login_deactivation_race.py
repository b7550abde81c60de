"""A login in flight while its account is deactivated creates no session (SQLite, PostgreSQL).

The login reads the user and checks the password with no transaction open; a deactivation
can commit in that window. The races are staged exactly, without sleeps: a SessionService
whose `start` first runs (or begins) the deactivation on another connection, then does
the real insert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import UserInactiveException
from app.database import Database
from app.models import AuthSession
from app.models.user import User
from app.sessions.service import SessionService
from app.signin.service import AuthService
from app.users.service import UserService
from tests.support import PASSWORD, UserFactory

Hook = Callable[[int], Awaitable[None]]


class SessionsWithAHook(SessionService):
    """The real SessionService, with `before_start` run between the password check and the
    session insert: exactly where a concurrent deactivation lands in production."""

    def __init__(self, session: AsyncSession, before_start: Hook) -> None:
        super().__init__(session)
        self.before_start = before_start

    async def start(
        self,
        *,
        sid: str,
        user_id: int,
        refresh_jti: str,
        now: datetime,
        expires_at: datetime,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> bool:
        await self.before_start(user_id)
        return await super().start(
            sid=sid,
            user_id=user_id,
            refresh_jti=refresh_jti,
            now=now,
            expires_at=expires_at,
            ip=ip,
            user_agent=user_agent,
        )


async def _session_count(database: Database, user_id: int) -> int:
    async with database.session() as session:
        stmt = select(func.count(AuthSession.id)).where(AuthSession.user_id == user_id)
        return int((await session.execute(stmt)).scalar_one())


async def _set_active(database: Database, user_id: int, active: bool) -> None:
    async with database.session() as session:
        users = UserService(session)
        user = await users.get_by_id(user_id)
        assert user is not None
        await users.set_active(user, active)


async def _login(app: FastAPI, database: Database, username: str, hook: Hook) -> None:
    async with database.session() as session:
        auth = AuthService(
            UserService(session),
            hasher=app.state.hasher,
            codec=app.state.codec,
            sessions=SessionsWithAHook(session, hook),
        )
        await auth.login(username, PASSWORD)


async def test_a_deactivation_committed_during_the_login_leaves_no_session(
    app: FastAPI, database: Database, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    async def deactivate(user_id: int) -> None:
        await _set_active(database, user_id, False)

    with pytest.raises(UserInactiveException):
        await _login(app, database, user.username, deactivate)

    await _set_active(database, user.id, True)
    # The deactivation ended the registration's session, and the login started none.
    assert await _session_count(database, user.id) == 0
    # Reactivated, the account signs in afresh; nothing from the refused login comes back.
    response = await client.post(
        "/auth/login", json={"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert await _session_count(database, user.id) == 1


async def _wait_for_a_lock_wait(database: Database) -> None:
    """Until some backend waits for a row lock (PostgreSQL), with a generous deadline."""
    deadline = time.monotonic() + 10
    async with database.engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = await probe.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
            await probe.commit()
            if waiting:
                return
            await asyncio.sleep(0)  # yield to the login task; not a timed wait
    raise AssertionError("the login never waited for the deactivation's row lock")


async def test_a_login_racing_an_uncommitted_deactivation_leaves_no_session(
    app: FastAPI, database: Database, user_factory: UserFactory
) -> None:
    """The login read the user as active; the deactivation has updated the row but not
    committed when the login inserts its session.

    On PostgreSQL the login's statement waits for the row lock, then sees the committed
    deactivation (checked: it really waited). SQLite lets one writer in at a time: the
    login's insert runs either before the deactivation takes the lock or after it commits,
    and both orders must end with no session.
    """
    user = await user_factory()
    deactivation_open = asyncio.Event()
    may_commit = asyncio.Event()
    postgresql = database.engine.dialect.name == "postgresql"

    async def deactivation() -> None:
        async with database.session() as session:
            await session.execute(update(User).where(User.id == user.id).values(is_active=False))
            deactivation_open.set()
            await may_commit.wait()
            await session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))

    deactivating: asyncio.Task[None] | None = None

    async def deactivate_without_committing(user_id: int) -> None:
        nonlocal deactivating
        deactivating = asyncio.create_task(deactivation())
        await deactivation_open.wait()
        if not postgresql:
            may_commit.set()

    logging_in = asyncio.create_task(
        _login(app, database, user.username, deactivate_without_committing)
    )
    if postgresql:
        await _wait_for_a_lock_wait(database)
        may_commit.set()
    outcome = await asyncio.gather(logging_in, return_exceptions=True)
    assert deactivating is not None
    await deactivating

    assert [type(result) for result in outcome] == [UserInactiveException]
    await _set_active(database, user.id, True)
    assert await _session_count(database, user.id) == 0
