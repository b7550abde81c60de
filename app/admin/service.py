"""What an administrator does to accounts: find, change, sign out, delete; knows no HTTP.

Also the home of the two changes that self-service shares with administration (deleting an
account, ending sessions), so that both paths keep the same rules: the last active admin
remains, and every change leaves its audit event in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import AuditLog, Event
from app.core.errors import AccountInactiveException, ForbiddenException, NotFoundException
from app.core.jwt import Clock, utc_now
from app.mail.outbox import Outbox
from app.models.mail import MailKind, OutboxMail
from app.models.role import ADMIN_ROLE, UserRole
from app.models.user import User, normalize_email, normalize_username
from app.recovery.one_time_tokens import OneTimeTokens
from app.sessions.service import SessionService
from app.transaction import Transaction
from app.users.roles import RoleService, check_roles
from app.users.service import UserService
from app.utils.pagination import Page

# The `users.id` column is a 32-bit integer on every backend; larger ids name nobody.
_MAX_USER_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class UserFilter:
    """`GET /admin/users` filters: part of the email or username, state, role."""

    q: str | None = None
    is_active: bool | None = None
    role: str | None = None


@dataclass(slots=True)
class UserChanges:
    """The fields of an admin's PATCH; None leaves a field as it is."""

    is_active: bool | None = None
    roles: Sequence[str] | None = None
    email_verified: bool | None = None
    # Relative changes (the command line), applied to the roles as they are under the lock.
    add_roles: Sequence[str] = ()
    remove_roles: Sequence[str] = ()
    extra: dict[str, object] = field(default_factory=dict)


class AdminService:
    """Account administration. Flushes and executes; the caller's transaction commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock = utc_now) -> None:
        self.session = session
        self.clock = clock
        self.users = UserService(session)
        self.roles = RoleService(session)
        self.sessions = SessionService(session)
        self.audit = AuditLog(session, clock=clock)
        self.transaction = Transaction(session)

    async def page_of_users(
        self, filters: UserFilter, *, limit: int, after: int | None = None
    ) -> Page[User]:
        """Users by id, `limit` of them, after the id `after`."""
        stmt = select(User).order_by(User.id).limit(limit + 1)
        if filters.q:
            # Both columns are stored normalised, so a LIKE on them is case-insensitive on
            # SQLite and PostgreSQL alike; autoescape keeps % and _ literal.
            stmt = stmt.where(
                User.email.contains(normalize_email(filters.q), autoescape=True)
                | User.username_normalized.contains(normalize_username(filters.q), autoescape=True)
            )
        if filters.is_active is not None:
            stmt = stmt.where(User.is_active.is_(filters.is_active))
        if filters.role is not None:
            holders = select(UserRole.user_id).where(UserRole.role == filters.role)
            stmt = stmt.where(User.id.in_(holders))
        if after is not None:
            stmt = stmt.where(User.id > min(after, _MAX_USER_ID))
        rows = (await self.session.execute(stmt)).scalars().all()
        items = rows[:limit]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def get_user(self, user_id: int) -> User:
        """Raises NotFoundException for an unknown id."""
        user = await self._fresh(user_id)
        if user is None:
            raise NotFoundException("User not found")
        return user

    async def update_user(
        self, user_id: int, changes: UserChanges, *, actor_id: int | None
    ) -> User:
        """Apply an admin's changes. Deactivation ends every session of the user.

        Raises NotFoundException, ValidationException (roles), LastAdminException, or
        ForbiddenException when the actor lost the admin role while the request waited.
        """
        if changes.roles is not None:
            check_roles(changes.roles)
        user = await self._locked(user_id, actor_id)
        roles = check_roles(changes.roles) if changes.roles is not None else None
        if changes.add_roles or changes.remove_roles:
            base = set(roles if roles is not None else user.roles)
            roles = check_roles((base | set(changes.add_roles)) - set(changes.remove_roles))
        was_admin = ADMIN_ROLE in user.roles and user.is_active
        stays_admin = (
            changes.is_active if changes.is_active is not None else user.is_active
        ) and ADMIN_ROLE in (roles if roles is not None else user.roles)
        if was_admin and not stays_admin:
            await self.roles.ensure_not_last_admin(user.id)
        details: dict[str, object] = {}
        if changes.is_active is not None and changes.is_active != user.is_active:
            details["is_active"] = {"from": user.is_active, "to": changes.is_active}
            await self.users.set_active(user, changes.is_active, now=self.clock())
        if changes.email_verified is not None and changes.email_verified != user.email_verified:
            details["email_verified"] = {"from": user.email_verified, "to": changes.email_verified}
            user.email_verified = changes.email_verified
        if roles is not None:
            added, removed = await self.roles.set_roles(user, roles)
            if added or removed:
                details["roles"] = {"added": added, "removed": removed}
        user.updated_at = self.clock()
        if details:
            self.audit.record(
                Event.USER_UPDATED,
                user_id=user.id,
                actor_id=actor_id,
                details={"fields": sorted(details), **details, **changes.extra},
            )
        await self.session.flush()
        return user

    async def delete_user(
        self, user_id: int, *, actor_id: int | None, by_admin: bool = True
    ) -> None:
        """Delete the account and, through the foreign keys, everything tied to it; its
        audit events stay (they name the user by id only). `by_admin=False`: the user
        deletes their own account (no admin role needed).

        Raises NotFoundException, LastAdminException or ForbiddenException (see above).
        """
        user = await self._locked(user_id, actor_id if by_admin else None)
        await self.roles.ensure_not_last_admin(user.id)
        await self.session.execute(delete(User).where(User.id == user.id))
        # One-time tokens go by their cascading key. Mail jobs have none (a reset request
        # names an address, maybe of nobody): those to the account's address or about the
        # account go too, so no notice reaches a deleted account and no copy of its
        # address stays behind in the outbox.
        await self.session.execute(
            delete(OutboxMail)
            .where(
                (OutboxMail.recipient == user.email)
                | (OutboxMail.data["user_id"].as_integer() == user.id)
            )
            .execution_options(synchronize_session=False)
        )
        self.session.expunge(user)
        # The one mail that names the address after this: its owner learns of the deletion
        # (not woken: the senders' next poll takes it). It holds no user id, so nothing
        # ties it to the account; the purge drops it as soon as it is sent.
        await Outbox(self.session, clock=self.clock).enqueue(
            MailKind.ACCOUNT_DELETED, user.email, wake=False
        )
        self.audit.record(Event.USER_DELETED, user_id=user.id, actor_id=actor_id)
        await self.session.flush()

    async def request_password_reset(
        self, user_id: int, *, actor_id: int | None, outbox: Outbox
    ) -> None:
        """Mail the account a password-reset link, as if its owner had asked: the sender
        issues the one-time token when it writes the mail, so the link is never seen here.

        Raises NotFoundException, or AccountInactiveException for a deactivated account
        (its reset link would be refused, so no mail is sent).
        """
        user = await self.get_user(user_id)
        if not user.is_active:
            raise AccountInactiveException()
        # `audited`: the event is recorded here, with the admin and their request, so the
        # sender does not record it again when it writes the mail.
        await outbox.enqueue(
            MailKind.PASSWORD_RESET, user.email, {"user_id": user.id, "audited": True}
        )
        self.audit.record(
            Event.PASSWORD_RESET_REQUESTED,
            user_id=user.id,
            actor_id=actor_id,
            details={"via": "admin"},
        )
        await self.session.flush()

    async def end_sessions(self, user_id: int, *, actor_id: int | None) -> int:
        """Sign the user out everywhere; returns how many sessions ended.

        Raises NotFoundException.
        """
        user = await self.get_user(user_id)
        count = await self.sessions.revoke_all(user.id)
        # Signing out everywhere is how an account is taken back: the links a holder of a
        # session may have asked for (an email change above all) go with the sessions.
        await OneTimeTokens(self.session).void_all(user, now=self.clock())
        self.audit.record(
            Event.SESSION_REVOKED,
            user_id=user.id,
            actor_id=actor_id,
            details={"scope": "all", "count": count},
        )
        await self.session.flush()
        return count

    async def _fresh(self, user_id: int) -> User | None:
        if not 0 < user_id <= _MAX_USER_ID:
            return None
        stmt = select(User).where(User.id == user_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def _locked(self, user_id: int, admin_id: int | None) -> User:
        """The target, re-read under the admins lock (see RoleService.lock_admins); with
        `admin_id`, that account must still be an active admin."""
        if not 0 < user_id <= _MAX_USER_ID:
            raise NotFoundException("User not found")
        await self.transaction.end_read_before_writing()
        await self.roles.lock_admins(user_id, self.clock())
        if admin_id is not None and not await self.roles.is_active_admin(admin_id):
            # Demoted or deactivated by a change that committed while this one waited.
            raise ForbiddenException()
        user = await self._fresh(user_id)
        if user is None:
            raise NotFoundException("User not found")
        return user
