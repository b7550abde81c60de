"""The signed-in user's own account: their sessions, their activity, deleting it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.service import AdminService
from app.audit.log import AuditLog, Event
from app.core.errors import InvalidCurrentPasswordException, NotFoundException
from app.core.jwt import Clock, utc_now
from app.core.passwords import PasswordHasher
from app.models.audit import AuditEvent
from app.recovery.one_time_tokens import OneTimeTokens
from app.sessions.service import SessionService
from app.signin.service import Principal
from app.throttle import Throttle
from app.transaction import Transaction
from app.utils.pagination import Page


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SelfService:
    """Self-service on one's own account; flushes, and commits only where it says why."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        hasher: PasswordHasher,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.session = session
        self.hasher = hasher
        self.throttle = throttle
        self.client_ip = client_ip
        self.clock = clock
        self.sessions = SessionService(session)
        self.audit = AuditLog(session, clock=clock)

    async def list_sessions(
        self, me: Principal, *, limit: int, offset: int = 0
    ) -> Page[SessionView]:
        """A page of the caller's live sessions, newest first, the one of this token marked
        current. The page's `next_after` is the offset of the next page: sessions have no
        ordered id to continue after, and a list capped at SESSIONS_PER_USER_MAX is short."""
        rows = await self.sessions.live_of(me.user.id, self.clock(), limit=limit + 1, offset=offset)
        views = [
            SessionView(
                id=row.id,
                created_at=row.created_at,
                last_used_at=row.last_used_at or row.created_at,
                expires_at=row.expires_at,
                ip=row.ip,
                user_agent=row.user_agent,
                current=row.id == me.session_id,
            )
            for row in rows[:limit]
        ]
        return Page(views, offset + limit if len(rows) > limit else None)

    async def end_session(self, me: Principal, session_id: str) -> None:
        """End one of the caller's sessions (the current one too, if named).

        Raises NotFoundException when it is not the caller's, or unknown: the same answer,
        so another user's session ids cannot be probed.
        """
        if not await self.sessions.revoke(sid=session_id, user_id=me.user.id):
            raise NotFoundException("Session not found")
        self.audit.record(
            Event.SESSION_REVOKED,
            user_id=me.user.id,
            actor_id=me.user.id,
            details={"scope": "one", "session_id": session_id, "count": 1},
        )

    async def end_other_sessions(self, me: Principal) -> int:
        """Sign out everywhere else: every session of the caller but this one."""
        count = await self.sessions.revoke_others(user_id=me.user.id, keep_sid=me.session_id)
        # Also the way to cancel an email change one did not ask for (the notice says so):
        # every pending link of the account dies with the other sessions.
        await OneTimeTokens(self.session).void_all(me.user, now=self.clock())
        self.audit.record(
            Event.SESSION_REVOKED,
            user_id=me.user.id,
            actor_id=me.user.id,
            details={"scope": "others", "count": count},
        )
        return count

    async def delete_account(self, me: Principal, current_password: str) -> None:
        """Delete the caller's account after checking their password again.

        Raises RateLimitedException (wrong passwords count toward the account's login
        throttle), InvalidCurrentPasswordException or LastAdminException.
        """
        user = me.user
        if self.throttle is not None:
            await self.throttle.login_attempt(user.email, self.client_ip)
        await Transaction(self.session).end_read()
        valid, _ = await self.hasher.verify(current_password, user.hashed_password)
        if not valid:
            raise InvalidCurrentPasswordException()
        await AdminService(self.session, clock=self.clock).delete_user(
            user.id, actor_id=user.id, by_admin=False
        )

    async def activity(self, me: Principal, *, limit: int, after: int | None) -> Page[AuditEvent]:
        """The caller's own audit events, newest first."""
        return await self.audit.page(user_id=me.user.id, limit=limit, after=after)
