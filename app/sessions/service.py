"""Sessions in the database: start, look up with their user, rotate, revoke, purge."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    CursorResult,
    Delete,
    Insert,
    Integer,
    String,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement, FromClause

from app.models.base import UTCDateTime
from app.models.session import AuthSession
from app.models.user import User
from app.transaction import execute_core, rowcount
from app.utils.request_context import clean_user_agent

# Session ids are uuid4 hex; anything else names no session (and never reaches the driver).
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


# Executed on the connection (Core), so the ORM's bulk-update bookkeeping stays out of it.
_TOUCH = (
    update(AuthSession)
    .where(AuthSession.id == bindparam("b_sid"), AuthSession.user_id == bindparam("b_user"))
    .values(last_used_at=bindparam("b_now"))
)


def _new_session_columns() -> dict[str, Any]:
    """The columns every new session sets, as bound parameters (`_new_session_params`);
    `user_id` comes from the user's row."""
    return {
        "id": bindparam("b_sid", type_=String),
        "user_id": User.id,
        "refresh_jti": bindparam("b_jti", type_=String),
        "created_at": bindparam("b_now", type_=UTCDateTime),
        "expires_at": bindparam("b_expires", type_=UTCDateTime),
        "last_used_at": bindparam("b_now", type_=UTCDateTime),
    }


def _new_session_params(
    sid: str, user_id: int, refresh_jti: str, now: datetime, expires_at: datetime
) -> dict[str, Any]:
    return {
        "b_sid": sid,
        "b_user": user_id,
        "b_jti": refresh_jti,
        "b_now": now,
        "b_expires": expires_at,
    }


def _insert_while_active(
    values: dict[str, Any],
    *conditions: ColumnElement[bool],
    join: tuple[FromClause, ColumnElement[bool]] | None = None,
) -> Insert:
    """One INSERT ... SELECT of `values` (column: expression) from the row of the user
    `b_user`, written only while the user is active, under a share lock on that row."""
    rows = select(*values.values())
    if join is not None:
        rows = rows.join(*join)
    user = User.id == bindparam("b_user", type_=Integer)
    rows = rows.where(User.is_active.is_(True), user, *conditions).with_for_update(read=True)
    return insert(AuthSession).from_select(list(values), rows)


# Built once, with every value a bound parameter (run by `execute_core`).
_START = _insert_while_active(
    {
        **_new_session_columns(),
        "ip": bindparam("b_ip", type_=String),
        "user_agent": bindparam("b_agent", type_=String),
        "browser_key": bindparam("b_browser_key", type_=String),
        "auth_time": bindparam("b_auth_time", type_=UTCDateTime),
        "amr": bindparam("b_amr", type_=JSON),
    }
)
_PARENT = AuthSession.__table__.alias("parent")
_START_CHILD = _insert_while_active(
    {
        **_new_session_columns(),
        "ip": _PARENT.c.ip,
        "user_agent": _PARENT.c.user_agent,
        "parent_id": _PARENT.c.id,
        "client_id": bindparam("b_client", type_=String),
    },
    _PARENT.c.id == bindparam("b_parent", type_=String),
    join=(_PARENT, _PARENT.c.user_id == User.id),
)


@lru_cache(maxsize=8)
def _trim_statement(max_per_user: int) -> Delete:
    """The DELETE of `trim` for a cap, with the user, the kept session and the time bound."""
    # Applications' sessions belong to their browser session and end with it.
    others = (
        (AuthSession.user_id == bindparam("b_user"))
        & (AuthSession.id != bindparam("b_keep"))
        & AuthSession.parent_id.is_(None)
    )
    kept = (
        select(AuthSession.id)
        .where(others, AuthSession.expires_at > bindparam("b_now"))
        .order_by(
            AuthSession.last_used_at.desc(),
            AuthSession.created_at.desc(),
            AuthSession.id.desc(),
        )
        .limit(max_per_user - 1)
    )
    return (
        delete(AuthSession)
        .where(others, AuthSession.id.not_in(kept.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


# Built once: a statement made per call costs its construction and its cache key again.
_USER_OF_SESSION = (
    select(User)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(User.id == bindparam("b_user"), AuthSession.id == bindparam("b_sid"))
)
_USER_OF_REFRESH = _USER_OF_SESSION.where(AuthSession.refresh_jti == bindparam("b_jti"))


class SessionService:
    """Data access for `auth_sessions`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession, *, max_per_user: int | None = None) -> None:
        self.session = session
        # SESSIONS_PER_USER_MAX; None: no cap (a session service that starts none).
        self.max_per_user = max_per_user

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
        browser_key: str | None = None,
        amr: Sequence[str] | None = None,
    ) -> bool:
        """Insert the session only while its user is active; False when the user is not.
        A browser session (app.sessions.browser) also has its cookie's hash and its `amr`;
        its `auth_time` is `now`.

        A login checks `is_active` before hashing, and a deactivation may commit while the
        hash runs; it deletes the user's sessions, but not one inserted after it. So the
        INSERT ... SELECT re-reads `is_active` in the statement that writes the row, under
        a share lock on the user row (PostgreSQL; SQLite has one writer at a time): a
        deactivation either commits first and no row is written, or waits for this
        transaction and then deletes the new row with the others.
        """
        params = {
            **_new_session_params(sid, user_id, refresh_jti, now, expires_at),
            "b_ip": ip,
            "b_agent": clean_user_agent(user_agent),
            "b_browser_key": browser_key,
            "b_auth_time": now if browser_key is not None else None,
            "b_amr": list(amr) if amr is not None else None,
        }
        return rowcount(await execute_core(self.session, _START, params)) == 1

    async def start_child(
        self,
        *,
        sid: str,
        parent_id: str,
        client_id: str,
        user_id: int,
        refresh_jti: str,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Insert an application's session under the browser session `parent_id`, only
        while that session lives and its user is active (one INSERT ... SELECT, as in
        `start`); False otherwise. Its row goes when the parent's does (ON DELETE CASCADE)."""
        params = {
            **_new_session_params(sid, user_id, refresh_jti, now, expires_at),
            "b_parent": parent_id,
            "b_client": client_id,
        }
        return rowcount(await execute_core(self.session, _START_CHILD, params)) == 1

    async def touch(self, *, sid: str, user_id: int, now: datetime) -> None:
        """Record a refresh as the session's last use (the refresh path's one write): a Core
        UPDATE on the transaction's connection, without the ORM's bulk-update bookkeeping
        (no loaded object can hold the column: nothing to synchronise)."""
        await execute_core(self.session, _TOUCH, {"b_sid": sid, "b_user": user_id, "b_now": now})

    async def trim(self, *, user_id: int, keep_sid: str, now: datetime) -> int:
        """End the user's least recently used sessions beyond `max_per_user`, never
        `keep_sid` (the one just started); returns how many ended.

        Least recently used rather than oldest sign-in: a device in daily use for months
        keeps its session, one abandoned last week goes first. Two sign-ins that race may
        each not see the other's row and leave one session over the cap; the next sign-in
        trims it.
        """
        if self.max_per_user is None:
            return 0
        params = {"b_user": user_id, "b_keep": keep_sid, "b_now": now}
        statement = _trim_statement(self.max_per_user)
        return rowcount(await execute_core(self.session, statement, params))

    async def live_of(
        self, user_id: int, now: datetime, *, limit: int | None = None, offset: int = 0
    ) -> Sequence[AuthSession]:
        """The user's sessions whose refresh token has not expired, newest first; a slice
        of them with `limit` and `offset`."""
        stmt = (
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.expires_at > now,
                AuthSession.parent_id.is_(None),
            )
            .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def revoke_others(self, *, user_id: int, keep_sid: str) -> int:
        """End every session of a user but one (sign out everywhere else); returns how many.
        The applications' sessions of the one kept stay; the others' end with them."""
        stmt = (
            delete(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.id != keep_sid,
                AuthSession.parent_id.is_(None),
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def user_of(
        self, *, sid: str, user_id: int, refresh_jti: str | None = None
    ) -> User | None:
        """The user of a live session, or None when the session is gone (revoked or purged).

        This is the per-request cost of revocation: the session is joined into the user
        look-up every bearer request already made, so it is still one round trip, on two
        primary keys. `refresh_jti`, when given, must also be the session's current one.
        """
        params = {"b_user": user_id, "b_sid": sid}
        stmt = _USER_OF_SESSION
        if refresh_jti is not None:
            stmt, params["b_jti"] = _USER_OF_REFRESH, refresh_jti
        return (await self.session.execute(stmt, params)).scalar_one_or_none()

    async def rotate(
        self,
        *,
        sid: str,
        user_id: int,
        old_jti: str,
        new_jti: str,
        expires_at: datetime,
        started_after: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Swap the session's refresh token if `old_jti` is still the current one.

        One conditional UPDATE checked by its row count: of several concurrent refreshes
        with the same token exactly one matches the row, on SQLite and PostgreSQL alike
        (the row lock, or SQLite's single writer, serialises them; the later ones re-check
        the WHERE clause and find the new jti). With `started_after`, a session that began
        at or before it (past its absolute lifetime) is not rotated either.
        """
        conditions = [
            AuthSession.id == sid,
            AuthSession.user_id == user_id,
            AuthSession.refresh_jti == old_jti,
        ]
        if started_after is not None:
            conditions.append(AuthSession.created_at > started_after)
        stmt = (
            update(AuthSession)
            .where(*conditions)
            .values(
                refresh_jti=new_jti,
                expires_at=expires_at,
                **({"last_used_at": now} if now is not None else {}),
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def revoke(self, *, sid: str, user_id: int) -> bool:
        """End a session and with it every token it issued; False when it was already gone."""
        if not _SESSION_ID.match(sid):
            return False
        stmt = (
            delete(AuthSession)
            .where(AuthSession.id == sid, AuthSession.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount > 0

    async def revoke_all(self, user_id: int) -> int:
        """End every session of a user (deactivation); returns how many there were."""
        stmt = (
            delete(AuthSession)
            .where(AuthSession.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def purge_expired(self, before: datetime) -> int:
        """Delete sessions whose refresh token expired before `before`; returns the count."""
        stmt = (
            delete(AuthSession)
            .where(AuthSession.expires_at < before)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)
