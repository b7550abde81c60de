"""The ways into an account that do not need another: a password, a passkey, a linked
provider. Removing one of them must leave at least one (a second factor alone does not
sign anybody in)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import LastSignInMethodException
from app.models.passkey import Passkey
from app.models.upstream import UpstreamIdentity
from app.models.user import User


async def keep_a_way_in(
    session: AsyncSession,
    user: User,
    *,
    removing_passkeys: int = 0,
    removing_identities: int = 0,
) -> None:
    """Raise LastSignInMethodException when the removal would leave the account no way in.

    The account's row is locked first, so that two removals at once (its last passkey and
    its last provider, say) are decided one after the other (PostgreSQL; SQLite has one
    writer)."""
    await session.execute(select(User.id).where(User.id == user.id).with_for_update())
    if user.has_password:
        return
    passkeys = await session.scalar(
        select(func.count()).select_from(Passkey).where(Passkey.user_id == user.id)
    )
    identities = await session.scalar(
        select(func.count())
        .select_from(UpstreamIdentity)
        .where(UpstreamIdentity.user_id == user.id)
    )
    left = int(passkeys or 0) - removing_passkeys + int(identities or 0) - removing_identities
    if left < 1:
        raise LastSignInMethodException()
