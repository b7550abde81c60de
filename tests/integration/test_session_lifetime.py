"""A session has an absolute end: its sign-in plus SESSION_MAX_LIFETIME_DAYS (by default
REFRESH_TOKEN_EXPIRE_DAYS), however often it is refreshed, with rotation on or off.

Time is an injected clock shared by the token codec and the service; the sessions are real
rows on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidTokenException, TokenExpiredException
from app.core.jwt import TokenCodec, TokenType
from app.database import Database
from app.models import AuthSession
from app.sessions.service import SessionService
from app.signin.service import AuthResult, AuthService
from app.users.service import UserService
from tests.support import PASSWORD, TEST_SECRET, UserFactory

SIGN_IN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REFRESH_TTL = timedelta(days=7)


@dataclass
class Clock:
    now: datetime = SIGN_IN

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    app: FastAPI
    database: Database
    clock: Clock
    codec: TokenCodec
    username: str

    def service(
        self, session: AsyncSession, *, rotate: bool, max_lifetime: timedelta | None
    ) -> AuthService:
        return AuthService(
            UserService(session),
            hasher=self.app.state.hasher,
            codec=self.codec,
            sessions=SessionService(session),
            rotate_refresh_tokens=rotate,
            clock=self.clock,
            session_max_lifetime=max_lifetime,
        )

    async def login(self, *, rotate: bool, max_lifetime: timedelta | None = None) -> AuthResult:
        async with self.database.session() as session:
            auth = self.service(session, rotate=rotate, max_lifetime=max_lifetime)
            result = await auth.login(self.username, PASSWORD)
        assert isinstance(result, AuthResult)  # no second factor on this account
        return result

    async def refresh(
        self, token: str, *, rotate: bool, max_lifetime: timedelta | None = None
    ) -> AuthResult:
        async with self.database.session() as session:
            auth = self.service(session, rotate=rotate, max_lifetime=max_lifetime)
            return await auth.refresh(token)


@pytest.fixture
async def world(app: FastAPI, database: Database, user_factory: UserFactory) -> World:
    clock = Clock()
    codec = TokenCodec(
        key=TEST_SECRET,
        issuer=app.state.settings.jwt_issuer,
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=REFRESH_TTL,
        clock=clock,
    )
    user = await user_factory()
    return World(app, database, clock, codec, user.username)


async def _row_expiry(database: Database, token: str) -> datetime:
    sid = jwt.decode(token, options={"verify_signature": False})["sid"]
    async with database.session() as session:
        stmt = select(AuthSession.expires_at).where(AuthSession.id == sid)
        return (await session.execute(stmt)).scalar_one()


async def test_with_rotation_refreshes_never_push_the_session_past_its_first_sign_in(
    world: World,
) -> None:
    signed_in = await world.login(rotate=True)
    session_end = SIGN_IN + REFRESH_TTL
    token = signed_in.tokens.refresh.token

    for day in range(1, 7):  # a refresh every day, each within the refresh token's life
        world.clock.now = SIGN_IN + timedelta(days=day)
        refreshed = await world.refresh(token, rotate=True)
        token = refreshed.tokens.refresh.token
        assert refreshed.tokens.refresh.expires_at == session_end
        assert refreshed.tokens.access.expires_at <= session_end
        assert await _row_expiry(world.database, token) == session_end

    # The last access token of the session ends with it, not 30 minutes later.
    world.clock.now = session_end - timedelta(minutes=10)
    last = await world.refresh(token, rotate=True)
    assert last.tokens.access.expires_at == session_end
    assert last.tokens.expires_in == 600  # what the client is told (RFC 6749 §5.1) too

    world.clock.now = session_end + timedelta(seconds=1)
    with pytest.raises(TokenExpiredException):
        await world.refresh(last.tokens.refresh.token, rotate=True)


async def test_without_rotation_the_access_tokens_of_a_refresh_end_with_the_session(
    world: World,
) -> None:
    signed_in = await world.login(rotate=False)
    session_end = SIGN_IN + REFRESH_TTL

    world.clock.now = session_end - timedelta(minutes=5)
    refreshed = await world.refresh(signed_in.tokens.refresh.token, rotate=False)

    assert refreshed.tokens.access.expires_at == session_end


@pytest.mark.parametrize("rotate", [True, False])
async def test_a_shorter_max_lifetime_caps_the_tokens_of_the_sign_in_too(
    world: World, rotate: bool
) -> None:
    two_days = timedelta(days=2)
    signed_in = await world.login(rotate=rotate, max_lifetime=two_days)
    assert signed_in.tokens.refresh.expires_at == SIGN_IN + two_days

    world.clock.now = SIGN_IN + timedelta(days=1)
    refreshed = await world.refresh(
        signed_in.tokens.refresh.token, rotate=rotate, max_lifetime=two_days
    )
    assert refreshed.tokens.refresh.expires_at == SIGN_IN + two_days

    world.clock.now = SIGN_IN + two_days + timedelta(seconds=1)
    with pytest.raises(TokenExpiredException):
        await world.refresh(refreshed.tokens.refresh.token, rotate=rotate, max_lifetime=two_days)


async def test_a_refresh_token_without_auth_time_is_capped_by_the_sessions_row(
    world: World,
) -> None:
    """Tokens issued before `auth_time` existed: the session row's start still decides."""
    signed_in = await world.login(rotate=True)
    sid = jwt.decode(signed_in.tokens.refresh.token, options={"verify_signature": False})["sid"]
    # As an earlier version would have rotated it on day 6: a week from then, no auth_time.
    world.clock.now = SIGN_IN + timedelta(days=6)
    legacy = world.codec.issue(str(signed_in.user.id), TokenType.REFRESH, extra={"sid": sid})
    async with world.database.session() as session:
        await session.execute(
            update(AuthSession).where(AuthSession.id == sid).values(refresh_jti=legacy.jti)
        )

    world.clock.now = SIGN_IN + REFRESH_TTL + timedelta(hours=1)
    with pytest.raises(InvalidTokenException):
        await world.refresh(legacy.token, rotate=True)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"refresh_token_rotation": True, "session_max_lifetime_days": 1}],
)
async def test_over_http_every_token_of_a_session_ends_by_its_max_lifetime(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    token = user.refresh_token
    for _ in range(3):
        response = await client.post("/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 200, response.text
        body = response.json()
        token = body["refresh_token"]
        for issued in (body["access_token"], token):
            claims = jwt.decode(issued, options={"verify_signature": False})
            assert claims["exp"] <= claims["auth_time"] + 24 * 3600
        refresh_claims = jwt.decode(token, options={"verify_signature": False})
        assert refresh_claims["exp"] == refresh_claims["auth_time"] + 24 * 3600
