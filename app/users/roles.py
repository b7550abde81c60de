"""Roles of users, and the one rule about them the service enforces: an admin remains.

Every change that can take the `admin` role away from an active account (demotion,
deactivation, deletion; over HTTP or from the command line) first calls
`RoleService.lock_admins`, then checks and changes. The lock serialises those changes
across every worker and host: two admins demoting each other at the same moment are run
one after the other, and the second finds itself the last admin (409 LAST_ADMIN).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.core.errors import LastAdminException, ValidationException
from app.models.role import ADMIN_ROLE, MAX_ROLES, ROLE_PATTERN, UserRole
from app.models.user import User

_ROLE = re.compile(ROLE_PATTERN)
# pg_advisory_xact_lock key of "changes to who is an admin" (any fixed 64-bit number).
_ADMINS_LOCK_KEY = 0x61757468_61646D6E  # "auth" "admn"


def check_roles(roles: Iterable[str], *, field: str = "roles") -> list[str]:
    """The roles, sorted and without repeats; raises ValidationException for a bad name
    or more than MAX_ROLES of them."""
    unique = sorted(set(roles))
    bad = [role for role in unique if not _ROLE.match(role)]
    if bad:
        message = f"Role names match {ROLE_PATTERN}"
        raise ValidationException(message, errors=[{"field": field, "message": message}])
    if len(unique) > MAX_ROLES:
        message = f"At most {MAX_ROLES} roles"
        raise ValidationException(message, errors=[{"field": field, "message": message}])
    return unique


class RoleService:
    """Data access for `user_roles`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_admins(self, target_id: int, now: datetime) -> None:
        """Serialise changes to the set of admins until this transaction ends.

        PostgreSQL: a transaction-scoped advisory lock, so the checks that follow (in READ
        COMMITTED, each statement sees what committed before it) run one transaction at a
        time. SQLite: the UPDATE below makes this transaction the database's one writer
        before it reads anything, so the same holds. The UPDATE is also the change's
        `updated_at`. Callers end any read transaction first (SQLite: a snapshot taken
        before the write lock could not be upgraded).
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMINS_LOCK_KEY}
            )
        await self.session.execute(
            update(User)
            .where(User.id == target_id)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def roles_of(self, user_id: int) -> list[str]:
        stmt = select(UserRole.role).where(UserRole.user_id == user_id).order_by(UserRole.role)
        return list((await self.session.execute(stmt)).scalars())

    async def is_active_admin(self, user_id: int) -> bool:
        stmt = (
            select(func.count())
            .select_from(UserRole)
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.user_id == user_id, UserRole.role == ADMIN_ROLE, User.is_active)
        )
        return bool((await self.session.execute(stmt)).scalar_one())

    async def ensure_not_last_admin(self, user_id: int) -> None:
        """Raises LastAdminException when `user_id` is the only active admin. Call it under
        `lock_admins`, before the change that would end that account's admin rights."""
        if not await self.is_active_admin(user_id):
            return
        stmt = (
            select(func.count())
            .select_from(UserRole)
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.role == ADMIN_ROLE, User.is_active, UserRole.user_id != user_id)
        )
        if not (await self.session.execute(stmt)).scalar_one():
            raise LastAdminException()

    async def set_roles(self, user: User, roles: Iterable[str]) -> tuple[list[str], list[str]]:
        """Give the user exactly these (checked) roles; returns (added, removed)."""
        wanted = set(roles)
        current = set(await self.roles_of(user.id))
        added, removed = sorted(wanted - current), sorted(current - wanted)
        if removed:
            await self.session.execute(
                delete(UserRole).where(UserRole.user_id == user.id, UserRole.role.in_(removed))
            )
        if added:
            await self.session.execute(
                insert(UserRole), [{"user_id": user.id, "role": role} for role in added]
            )
        set_committed_value(user, "roles_text", ",".join(sorted(wanted)) or None)
        return added, removed
