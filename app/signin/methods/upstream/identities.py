"""The identities linked to accounts (`upstream_identities`): (provider, subject) pairs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.upstream import UpstreamIdentity
from app.transaction import rowcount
from app.utils.clock import Clock


class IdentityStore:
    """Flushes or executes, never commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def find(self, provider: str, subject: str) -> UpstreamIdentity | None:
        stmt = select(UpstreamIdentity).where(
            UpstreamIdentity.provider == provider, UpstreamIdentity.subject == subject
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_user(self, user_id: int) -> Sequence[UpstreamIdentity]:
        stmt = (
            select(UpstreamIdentity)
            .where(UpstreamIdentity.user_id == user_id)
            .order_by(UpstreamIdentity.created_at, UpstreamIdentity.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self, user_id: int) -> int:
        stmt = select(func.count()).where(UpstreamIdentity.user_id == user_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def link(
        self, *, user_id: int, provider: str, subject: str, email: str | None
    ) -> UpstreamIdentity | None:
        """The new link; None when the identity is linked already (to anyone) or the
        account has one of this provider: the unique constraints decide, so two racing
        callbacks cannot both link."""
        identity = UpstreamIdentity(
            id=uuid.uuid4().hex,
            user_id=user_id,
            provider=provider,
            subject=subject,
            email=email,
            created_at=self.clock(),
        )
        try:
            async with self.session.begin_nested():
                self.session.add(identity)
                await self.session.flush()
        except IntegrityError:
            return None
        return identity

    async def unlink(self, *, user_id: int, identity_id: str) -> UpstreamIdentity | None:
        identity = await self.session.get(UpstreamIdentity, identity_id)
        if identity is None or identity.user_id != user_id:
            return None
        result = await self.session.execute(
            delete(UpstreamIdentity)
            .where(UpstreamIdentity.id == identity_id, UpstreamIdentity.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        return identity if rowcount(result) == 1 else None
