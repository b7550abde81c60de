"""The request's transaction as services see it: the early commits, each named for its reason.

The session dependency owns the transaction (it commits before the response, or rolls
back on an error); a service ends it early only for one of the reasons below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncSession


class Transaction:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def end_read(self) -> None:
        """End the read transaction before slow CPU work (a password hash): held open across
        it, it would block SQLite writers and pin a pool connection."""
        await self._session.commit()

    async def commit_before_raising(self) -> None:
        """Keep what was written although the request then fails (the dependency would roll
        it back): a security decision such as revoking a session must stand."""
        await self._session.commit()

    async def end_read_before_writing(self) -> None:
        """End the read transaction (the token check's) before one whose first statement
        must be a write: on SQLite that write takes the single writer's lock before any
        read, which makes the checks after it race-free (see RoleService.lock_admins)."""
        await self._session.commit()


def rowcount(result: object) -> int:
    """The rows a conditional UPDATE or DELETE matched: how its one winner is told apart."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def execute_core(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> CursorResult[Any]:
    """Run a statement built once (module level, bound parameters) as Core on the
    transaction's connection, after the ORM's pending changes.

    Built once, a statement skips its construction and its cache key on every call; as
    Core, it skips the ORM's bulk bookkeeping (and the ORM would take a parameter dict to
    an INSERT for a bulk insert of objects). The flush keeps the statements in the order
    the code wrote them, as the session's autoflush would: a share lock on a user row taken
    before the request's own pending UPDATE of that row deadlocks two such requests.
    """
    await session.flush()
    connection = await session.connection()
    return await connection.execute(statement, params)
