"""The browser session of the hosted pages: a cookie that names one row of `auth_sessions`.

Signing in on `/login` starts one; it is a session like the JSON API's (listed by
`GET /users/me/sessions`, ended by `DELETE /users/me/sessions/{id}`, a password change or
reset, deactivation, the session cap), so everything that ends sessions ends it too.

- The cookie's value is 256 random bits; the row keeps its SHA-256 (`browser_key`), never
  the value, and the value is not the row's id (which the sessions list shows): neither a
  copy of the database nor a session list gives anybody a cookie.
- Every read asks the database (one statement joining the user): a session ended on one
  worker is ended on all of them, and a deactivated user's cookie names nobody.
- The row remembers when the person signed in (`auth_time`) and how (`amr`, RFC 8176),
  for the OpenID provider's `max_age`, `prompt=login` and ID token.

Use from other packages (the OpenID provider, passkeys, other providers):

- `BrowserSessions.current(request)` → `BrowserSession | None` (`user`, `session_id`,
  `auth_time`, `amr`; `principal()` for the services that take a `Principal`). In a route:
  the `CurrentBrowserSession` dependency of app.dependencies.
- `BrowserSessions.start(user, amr)` → `StartedBrowserSession | None` (None: the user was
  deactivated meanwhile), then `cookie.set(response, started)`. A completed sign-in flow
  does both through `SignIn.sign_in(..., start=browser.start)`, see app.pages.routes.
- `BrowserSessions.end(request)` → the ended session's id or None; then
  `cookie.clear(response)`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from app.audit.log import AuditLog, Event
from app.models.session import AuthSession
from app.models.user import User
from app.sessions.service import SessionService
from app.sessions.tokens import Principal
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

_VALUE_BYTES = 32
# What `secrets.token_urlsafe(32)` gives; anything else names no session and is not looked up.
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _key_of(value: str) -> str:
    # 256 random bits: a plain SHA-256 suffices (nothing to guess), no key needed.
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """The signed-in person of a browser: who, which session, when and how they signed in."""

    user: User
    session_id: str
    auth_time: datetime
    amr: tuple[str, ...]

    def principal(self) -> Principal:
        """The session as the account services take it (the bearer routes' principal)."""
        return Principal(self.user, self.session_id, self.auth_time)


@dataclass(frozen=True, slots=True)
class StartedBrowserSession:
    """A session just started: its cookie is still to be set on the response."""

    user: User
    session_id: str
    cookie_value: str
    auth_time: datetime
    amr: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class BrowserCookie:
    """The cookie's name and attributes.

    `HttpOnly` (no script reads it), `SameSite=Lax` (sent on a top-level navigation from
    another site, as an application's redirect to `/oauth2/authorize` is, never on its
    POSTs), `Path=/`. With an https `PUBLIC_URL` it is `Secure` and carries the `__Host-`
    prefix, which the browser accepts only from a secure origin, without `Domain`, for
    `Path=/`: a sibling subdomain cannot plant or overwrite it.
    """

    secure: bool
    base_name: str = "authsvc_session"

    @property
    def name(self) -> str:
        return f"__Host-{self.base_name}" if self.secure else self.base_name

    def read(self, request: Request) -> str | None:
        value = request.cookies.get(self.name)
        return value if value is not None and _COOKIE_VALUE.match(value) else None

    def set(self, response: Response, started: StartedBrowserSession, *, now: datetime) -> None:
        # Max-Age matches the row's end: the browser drops the cookie when the server would.
        max_age = max(0, int((started.expires_at - now).total_seconds()))
        self.set_value(response, started.cookie_value, max_age=max_age)

    def set_value(self, response: Response, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(
            self.name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )


class BrowserSessions:
    """Browser sessions in the database; flushes or executes, never commits."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        cookie: BrowserCookie,
        lifetime: timedelta,
        sessions: SessionService | None = None,
        clock: Clock = utc_now,
        client_ip: str | None = None,
        user_agent: str | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.session = session
        self.cookie = cookie
        self.lifetime = lifetime
        self.sessions = sessions or SessionService(session)
        self.clock = clock
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.audit = audit or AuditLog(session, clock=clock)

    async def current(self, request: Request) -> BrowserSession | None:
        """The browser's live session: None without a cookie, or when its session ended,
        expired, or its user is inactive (one statement, on the database every worker
        shares)."""
        return await self.by_cookie(self.cookie.read(request))

    async def by_cookie(self, value: str | None) -> BrowserSession | None:
        if value is None:
            return None
        stmt = (
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.browser_key == _key_of(value),
                AuthSession.expires_at > self.clock(),
                User.is_active.is_(True),
            )
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        found, user = row
        return BrowserSession(
            user=user,
            session_id=found.id,
            auth_time=found.auth_time or found.created_at,
            amr=tuple(found.amr or ()),
        )

    async def start(self, user: User, amr: Sequence[str]) -> StartedBrowserSession | None:
        """A new browser session of `user`, signed in now with `amr`; None when the user is
        no longer active (the insert re-reads it, see SessionService.start). Ends the
        user's least recently used sessions beyond SESSIONS_PER_USER_MAX."""
        value = secrets.token_urlsafe(_VALUE_BYTES)
        sid = uuid.uuid4().hex
        now = self.clock()
        expires_at = now + self.lifetime
        started = await self.sessions.start(
            sid=sid,
            user_id=user.id,
            # No refresh token belongs to a browser session: a jti that was never issued.
            refresh_jti=uuid.uuid4().hex,
            now=now,
            expires_at=expires_at,
            ip=self.client_ip,
            user_agent=self.user_agent,
            browser_key=_key_of(value),
            amr=amr,
        )
        if not started:
            return None
        ended = await self.sessions.trim(user_id=user.id, keep_sid=sid, now=now)
        if ended:
            self.audit.record(
                Event.SESSION_REVOKED, user_id=user.id, details={"scope": "cap", "count": ended}
            )
        return StartedBrowserSession(user, sid, value, now, tuple(amr), expires_at)

    async def end(self, request: Request) -> str | None:
        """End the browser's session (signing out): the id of the session ended, None when
        there was none. The caller clears the cookie either way."""
        current = await self.current(request)
        if current is None:
            return None
        if not await self.sessions.revoke(sid=current.session_id, user_id=current.user.id):
            return None
        self.audit.record(
            Event.LOGOUT,
            user_id=current.user.id,
            actor_id=current.user.id,
            details={"session_id": current.session_id},
        )
        log.info("logged out", user_id=current.user.id)
        return current.session_id
