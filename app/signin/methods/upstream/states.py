"""The sign-ins in progress at a provider (`upstream_states`), on the database every
worker shares.

A state is 256 random bits sent to the provider and back; the row is keyed by its SHA-256
and belongs to the browser that started it (the SHA-256 of the browser's id, a random
HttpOnly cookie). Taking a state deletes its row in the same statement that finds it, for
that browser and that provider only, before it expires: a forged, replayed, expired or
foreign-browser callback finds nothing, and of two concurrent callbacks only one does.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.upstream import UpstreamState
from app.transaction import rowcount
from app.utils.clock import Clock


class Purpose:
    SIGNIN = "signin"
    LINK = "link"
    PENDING_LINK = "pending_link"


def digest(value: str) -> str:
    # Random values of 256 bits: a plain SHA-256 suffices, and a copy of the table holds
    # no usable state.
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Started:
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True, slots=True)
class Taken:
    provider: str
    purpose: str
    user_id: int | None
    nonce: str
    verifier: str
    return_to: str | None


@dataclass(frozen=True, slots=True)
class PendingLink:
    provider: str
    subject: str
    email: str | None


class StateStore:
    """Flushes or executes, never commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock, ttl: timedelta) -> None:
        self.session = session
        self.clock = clock
        self.ttl = ttl

    async def start(
        self,
        *,
        provider: str,
        browser_id: str,
        purpose: str,
        user_id: int | None = None,
        return_to: str | None = None,
    ) -> Started:
        started = Started(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            # RFC 7636 §4.1: 43 to 128 characters; 32 random bytes give 43.
            verifier=secrets.token_urlsafe(48),
        )
        now = self.clock()
        self.session.add(
            UpstreamState(
                id=digest(started.state),
                provider=provider,
                browser=digest(browser_id),
                purpose=purpose,
                user_id=user_id,
                nonce=started.nonce,
                code_verifier=started.verifier,
                return_to=return_to,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        await self.session.flush()
        return started

    async def take(self, *, state: str, provider: str, browser_id: str | None) -> Taken | None:
        """The state's row, deleted: None when it is unknown, used, expired, of another
        provider (mix-up) or of another browser."""
        if browser_id is None or not state or len(state) > 128:
            return None
        stmt = (
            delete(UpstreamState)
            .where(
                UpstreamState.id == digest(state),
                UpstreamState.provider == provider,
                UpstreamState.browser == digest(browser_id),
                UpstreamState.purpose.in_((Purpose.SIGNIN, Purpose.LINK)),
                UpstreamState.expires_at > self.clock(),
            )
            .returning(
                UpstreamState.purpose,
                UpstreamState.user_id,
                UpstreamState.nonce,
                UpstreamState.code_verifier,
                UpstreamState.return_to,
            )
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None or row.nonce is None or row.code_verifier is None:
            return None
        return Taken(
            provider, row.purpose, row.user_id, row.nonce, row.code_verifier, row.return_to
        )

    async def offer_link(
        self, *, provider: str, browser_id: str, user_id: int, subject: str, email: str | None
    ) -> None:
        """Remember a proven identity for this browser until it signs in to `user_id`."""
        now = self.clock()
        await self.session.execute(
            delete(UpstreamState)
            .where(
                UpstreamState.browser == digest(browser_id),
                UpstreamState.purpose == Purpose.PENDING_LINK,
            )
            .execution_options(synchronize_session=False)
        )
        self.session.add(
            UpstreamState(
                id=digest(secrets.token_urlsafe(32)),
                provider=provider,
                browser=digest(browser_id),
                purpose=Purpose.PENDING_LINK,
                user_id=user_id,
                subject=subject,
                email=email,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        await self.session.flush()

    async def take_pending_link(
        self, *, browser_id: str | None, user_id: int
    ) -> PendingLink | None:
        """The identity this browser proved before signing in to `user_id`, used up; None
        when there is none, it expired, or the sign-in was to another account."""
        if browser_id is None:
            return None
        stmt = (
            delete(UpstreamState)
            .where(
                UpstreamState.browser == digest(browser_id),
                UpstreamState.purpose == Purpose.PENDING_LINK,
                UpstreamState.user_id == user_id,
                UpstreamState.expires_at > self.clock(),
            )
            .returning(UpstreamState.provider, UpstreamState.subject, UpstreamState.email)
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None or row.subject is None:
            return None
        return PendingLink(row.provider, row.subject, row.email)


async def purge_expired_states(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        delete(UpstreamState)
        .where(UpstreamState.expires_at < now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
