"""WebAuthn challenges: each works once, for five minutes, on any worker or host.

A challenge is 32 random bytes handed to the browser; the table keeps its SHA-256 with
what it is for. The request that uses it deletes its row with a conditional DELETE
(purpose, account, not expired) and goes on only if it deleted one: of two requests
presenting one challenge, on any workers, exactly one does.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.passkey import WebauthnChallenge
from app.transaction import execute_core, rowcount
from app.utils.clock import Clock

CHALLENGE_TTL = timedelta(minutes=5)


class Purpose(StrEnum):
    REGISTRATION = "registration"
    SIGNIN = "signin"
    SECOND_FACTOR = "second_factor"


def _digest(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


# Taking a challenge, built once (bound parameters, run as Core): a sign-in by the passkey
# alone names no account, the other ceremonies name theirs.
_TAKE = delete(WebauthnChallenge).where(
    WebauthnChallenge.id == bindparam("b_id"),
    WebauthnChallenge.purpose == bindparam("b_purpose"),
    WebauthnChallenge.expires_at > bindparam("b_now"),
)
_TAKE_ANONYMOUS = _TAKE.where(WebauthnChallenge.user_id.is_(None))
_TAKE_OF_USER = _TAKE.where(WebauthnChallenge.user_id == bindparam("b_user"))


class Challenges:
    """Adds and deletes rows of the request's transaction; never commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def issue(self, purpose: Purpose, *, user_id: int | None) -> bytes:
        # Expired rows are left to the periodic purge (`purge_expired_challenges`): asking
        # for options costs one INSERT, not a DELETE beside it every time.
        now = self.clock()
        challenge = secrets.token_bytes(32)
        self.session.add(
            WebauthnChallenge(
                id=_digest(challenge),
                purpose=purpose.value,
                user_id=user_id,
                expires_at=now + CHALLENGE_TTL,
            )
        )
        await self.session.flush()
        return challenge

    async def take(self, challenge: bytes, purpose: Purpose, *, user_id: int | None) -> bool:
        """Use the challenge up: True only for the first request presenting it, for the
        purpose and account it was issued for, before it expires."""
        params: dict[str, object] = {
            "b_id": _digest(challenge),
            "b_purpose": purpose.value,
            "b_now": self.clock(),
        }
        statement = _TAKE_ANONYMOUS
        if user_id is not None:
            statement, params["b_user"] = _TAKE_OF_USER, user_id
        return rowcount(await execute_core(self.session, statement, params)) == 1


async def purge_expired_challenges(session: AsyncSession, now: datetime) -> int:
    """Delete the challenges past their five minutes (the periodic purge's share); an
    expired one is refused by `take` whether or not its row is still there."""
    result = await session.execute(
        delete(WebauthnChallenge)
        .where(WebauthnChallenge.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
