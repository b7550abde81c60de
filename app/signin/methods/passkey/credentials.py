"""The passkeys table's queries: registration, listing, the signature counter, removal,
and the opaque handle each user is known by to their authenticators."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.passkey import Passkey, PasskeyUserHandle
from app.transaction import execute_core, rowcount

HANDLE_BYTES = 32  # WebAuthn's user.id: at most 64 bytes, random (§14.6.1)
_MAX_ID = 2**31 - 1  # the id column's range: a larger id in a URL names no passkey


# A sign-in's one write to its passkey, built once (bound parameters, run as Core).
_RECORD_USE = (
    update(Passkey)
    .where(Passkey.id == bindparam("b_id"), Passkey.sign_count == bindparam("b_seen"))
    .values(
        sign_count=bindparam("b_count"),
        backed_up=bindparam("b_backed_up"),
        last_used_at=bindparam("b_now"),
    )
)


class PasskeyStore:
    """Flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def handle_of(self, user_id: int) -> bytes:
        """The user's handle, made on first need. Two first needs at once insert one."""
        handle = await self.session.scalar(
            select(PasskeyUserHandle.handle).where(PasskeyUserHandle.user_id == user_id)
        )
        if handle is not None:
            return handle
        values = {"user_id": user_id, "handle": secrets.token_bytes(HANDLE_BYTES)}
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self.session.execute(
            insert(PasskeyUserHandle).values(**values).on_conflict_do_nothing()
        )
        stored = await self.session.scalar(
            select(PasskeyUserHandle.handle).where(PasskeyUserHandle.user_id == user_id)
        )
        assert stored is not None
        return stored

    async def handle_belongs_to(self, handle: bytes, user_id: int) -> bool:
        owner = await self.session.scalar(
            select(PasskeyUserHandle.user_id).where(PasskeyUserHandle.handle == handle)
        )
        return owner == user_id

    async def of_user(self, user_id: int) -> Sequence[Passkey]:
        result = await self.session.scalars(
            select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
        )
        return result.all()

    async def count(self, user_id: int) -> int:
        found = await self.session.scalar(
            select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
        )
        return int(found or 0)

    async def get(self, user_id: int, passkey_id: int) -> Passkey | None:
        if not 0 < passkey_id <= _MAX_ID:
            return None
        return await self.session.scalar(
            select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        )

    async def by_credential_id(self, credential_id: bytes) -> Passkey | None:
        return await self.session.scalar(
            select(Passkey).where(Passkey.credential_id == credential_id)
        )

    async def exists(self, credential_id: bytes) -> bool:
        found = await self.session.scalar(
            select(Passkey.id).where(Passkey.credential_id == credential_id)
        )
        return found is not None

    async def add(self, passkey: Passkey) -> Passkey:
        self.session.add(passkey)
        await self.session.flush()
        return passkey

    async def record_use(
        self, passkey_id: int, *, seen: int, new_count: int, backed_up: bool, now: datetime
    ) -> bool:
        """Move the counter on from the value the check saw: of two assertions checked
        against one counter value, one wins (False for the other)."""
        params = {
            "b_id": passkey_id,
            "b_seen": seen,
            "b_count": max(seen, new_count),
            "b_backed_up": backed_up,
            "b_now": now,
        }
        return rowcount(await execute_core(self.session, _RECORD_USE, params)) == 1

    async def remove(self, user_id: int, passkey_id: int) -> bool:
        result = await self.session.execute(
            delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        )
        return rowcount(result) == 1

    async def forget(self, user_id: int) -> None:
        await self.session.execute(delete(Passkey).where(Passkey.user_id == user_id))
