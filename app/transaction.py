"""The request's transaction as services see it: the early commits, each named for its reason.

The session dependency owns the transaction (it commits before the response, or rolls
back on an error); a service ends it early only for one of the reasons below.
"""

from __future__ import annotations

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
