"""The sign-in flow's state between requests: one `signin_flows` row per sign-in that
needs another step (today: a second factor after the password).

Every decision that must hold once is a conditional statement checked by its row count,
so it holds with any number of workers on one database: an attempt raises the counter
(`... WHERE attempts < 5`), finishing deletes the row.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.signin_flow import SignInFlow
from app.models.user import User
from app.signin.methods.base import Step
from app.transaction import rowcount
from app.utils.clock import Clock

MAX_ATTEMPTS = 5
_TOKEN_BYTES = 32


class ContinueWith:
    """Where a completed sign-in goes: the JSON answer of the request that completes it, or
    a browser session of the hosted pages (`continue_ref`: the page's `return_to`). A flow
    is completed only by the kind of request that started it."""

    JSON = "json"
    PAGE = "page"


def token_id(token: str) -> str:
    # The token is 256 random bits: a plain SHA-256 suffices (no guessing to slow down), and
    # a copy of the database holds no usable token.
    return hashlib.sha256(token.encode()).hexdigest()


def credential_stamp(user: User) -> str:
    """A digest of the credentials a first factor is checked against. A flow completes
    only while it is unchanged: after a password change or reset, a second step begun with
    the old password fails (as does one begun before a hash upgrade, rarely and harmlessly:
    the person signs in again)."""
    return hashlib.sha256((user.hashed_password or "").encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingFlow:
    """A sign-in waiting for its next step: the token to continue it with."""

    user: User
    token: str
    expires_in: int
    next_step: Step
    offered: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FlowAttempt:
    """One counted attempt on a live flow."""

    user_id: int
    throttle_key: str
    methods_done: tuple[str, ...]
    amr: tuple[str, ...]
    next_step: Step
    offered: tuple[str, ...]
    continue_with: str
    continue_ref: str | None
    credential_stamp: str
    attempts_left: int
    provider: str | None = None


def _attempt_of(row: Any) -> FlowAttempt:
    """A flow's row (or the columns of it a statement returned) as the attempt it allows."""
    return FlowAttempt(
        user_id=row.user_id,
        throttle_key=row.throttle_key,
        methods_done=tuple(row.methods_done),
        amr=tuple(row.amr),
        next_step=Step(row.next_step),
        offered=tuple(row.offered),
        continue_with=row.continue_with,
        continue_ref=row.continue_ref,
        credential_stamp=row.credential_stamp,
        attempts_left=MAX_ATTEMPTS - row.attempts,
        provider=row.provider,
    )


class FlowStore:
    """The `signin_flows` rows; flushes, never commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock, ttl: timedelta) -> None:
        self.session = session
        self.clock = clock
        self.ttl = ttl

    async def start(
        self,
        user: User,
        *,
        throttle_key: str,
        methods_done: Sequence[str],
        amr: Sequence[str],
        next_step: Step,
        offered: Sequence[str],
        continue_with: str = ContinueWith.JSON,
        continue_ref: str | None = None,
        provider: str | None = None,
    ) -> PendingFlow:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = self.clock()
        self.session.add(
            SignInFlow(
                id=token_id(token),
                user_id=user.id,
                throttle_key=throttle_key,
                methods_done=list(methods_done),
                amr=list(amr),
                next_step=next_step.value,
                offered=list(offered),
                continue_with=continue_with,
                continue_ref=continue_ref,
                credential_stamp=credential_stamp(user),
                attempts=0,
                provider=provider,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        await self.session.flush()
        return PendingFlow(user, token, int(self.ttl.total_seconds()), next_step, tuple(offered))

    async def reserve_attempt(self, token: str) -> FlowAttempt | None:
        """Count one attempt on a live flow, before its submission is checked; None when
        the token is unknown, expired, finished or out of attempts.

        Counting first is what makes the limit exact: of any number of concurrent guesses
        only MAX_ATTEMPTS get a row back. The caller commits the count before checking.
        """
        stmt = (
            update(SignInFlow)
            .where(
                SignInFlow.id == token_id(token),
                SignInFlow.attempts < MAX_ATTEMPTS,
                SignInFlow.expires_at > self.clock(),
            )
            .values(attempts=SignInFlow.attempts + 1)
            .returning(
                SignInFlow.user_id,
                SignInFlow.throttle_key,
                SignInFlow.methods_done,
                SignInFlow.amr,
                SignInFlow.next_step,
                SignInFlow.offered,
                SignInFlow.continue_with,
                SignInFlow.continue_ref,
                SignInFlow.credential_stamp,
                SignInFlow.attempts,
                SignInFlow.provider,
            )
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        return _attempt_of(row)

    async def live(self, token: str) -> FlowAttempt | None:
        """The flow of a token, unexpired and with attempts left, without counting one
        (for what a step needs before its attempt: a passkey's challenge)."""
        row = await self.session.scalar(
            select(SignInFlow).where(
                SignInFlow.id == token_id(token),
                SignInFlow.attempts < MAX_ATTEMPTS,
                SignInFlow.expires_at > self.clock(),
            )
        )
        if row is None:
            return None
        return _attempt_of(row)

    async def finish(self, token: str) -> bool:
        """Delete the flow: its token completes a sign-in once. False when it was gone."""
        result = await self.session.execute(
            delete(SignInFlow)
            .where(SignInFlow.id == token_id(token))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    async def end_all(self, user_id: int) -> None:
        """End the user's pending sign-ins (two-factor turned off, account changes)."""
        await self.session.execute(
            delete(SignInFlow)
            .where(SignInFlow.user_id == user_id)
            .execution_options(synchronize_session=False)
        )


async def purge_expired_flows(session: AsyncSession, now: datetime) -> int:
    """Delete the flows of sign-ins abandoned before their last step."""
    result = await session.execute(
        delete(SignInFlow)
        .where(SignInFlow.expires_at < now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
