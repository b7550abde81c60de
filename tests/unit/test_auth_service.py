"""AuthService use cases against a real database; no HTTP involved."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from limits.aio.storage import MemoryStorage

from app.core.errors import (
    AppException,
    InvalidCredentialsException,
    InvalidTokenException,
    RateLimitedException,
    UserAlreadyExistsException,
    UserInactiveException,
    ValidationException,
)
from app.core.jwt import TokenType
from app.database import Database
from app.signin.service import AuthResult, AuthService
from app.throttle import Throttle, ThrottleRules
from app.users.service import UserService
from app.utils.keyed_hash import KeyedHash

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def auth(app: FastAPI, database: Database) -> AsyncIterator[AuthService]:
    async with database.session() as session:
        yield AuthService(UserService(session), hasher=app.state.hasher, codec=app.state.codec)


async def _register(app: FastAPI, database: Database, email: str, username: str) -> AuthResult:
    async with database.session() as session:
        service = AuthService(UserService(session), hasher=app.state.hasher, codec=app.state.codec)
        return await service.register(email=email, username=username, password=PASSWORD)


async def test_register_returns_user_and_valid_tokens(app: FastAPI, database: Database) -> None:
    result = await _register(app, database, "a@example.com", "alice")
    assert result.user.id > 0
    codec = app.state.codec
    assert codec.decode(result.tokens.access.token, TokenType.ACCESS).subject == str(result.user.id)
    assert codec.decode(result.tokens.refresh.token, TokenType.REFRESH).subject == str(
        result.user.id
    )
    assert result.tokens.expires_in == 1800
    assert result.user.hashed_password.startswith("$argon2id$")


async def test_register_with_duplicate_email_fails(app: FastAPI, database: Database) -> None:
    await _register(app, database, "a@example.com", "alice")
    with pytest.raises(UserAlreadyExistsException):
        await _register(app, database, "A@EXAMPLE.com", "alice2")


async def test_register_with_duplicate_username_fails(app: FastAPI, database: Database) -> None:
    await _register(app, database, "a@example.com", "alice")
    with pytest.raises(UserAlreadyExistsException):
        await _register(app, database, "b@example.com", "ALICE")


async def test_register_with_weak_password_names_the_rule(auth: AuthService) -> None:
    with pytest.raises(ValidationException) as caught:
        await auth.register(email="w@example.com", username="weakling", password="password1")
    assert caught.value.errors[0]["field"] == "password"
    assert "common" in caught.value.detail


async def test_login_with_email(app: FastAPI, database: Database, auth: AuthService) -> None:
    registered = await _register(app, database, "a@example.com", "alice")
    result = await auth.login("A@example.com", PASSWORD)
    assert result.user.id == registered.user.id
    assert result.user.last_login is not None


async def test_login_with_username(app: FastAPI, database: Database, auth: AuthService) -> None:
    registered = await _register(app, database, "a@example.com", "alice")
    assert (await auth.login("Alice", PASSWORD)).user.id == registered.user.id


@pytest.mark.parametrize("identifier", ["a@example.com", "nobody@example.com", "nobody"])
async def test_login_failures_are_indistinguishable(
    app: FastAPI, database: Database, auth: AuthService, identifier: str
) -> None:
    await _register(app, database, "a@example.com", "alice")
    with pytest.raises(InvalidCredentialsException) as caught:
        await auth.login(identifier, "wrong password here")
    assert caught.value.detail == "Invalid credentials"


async def test_login_of_inactive_user_with_right_password(
    app: FastAPI, database: Database, auth: AuthService
) -> None:
    registered = await _register(app, database, "a@example.com", "alice")
    async with database.session() as session:
        users = UserService(session)
        user = await users.get_by_id(registered.user.id)
        assert user is not None
        await users.set_active(user, False)
    with pytest.raises(UserInactiveException):
        await auth.login("alice", PASSWORD)
    with pytest.raises(InvalidCredentialsException):  # a wrong password reveals nothing more
        await auth.login("alice", "wrong password here")


async def test_refresh_issues_a_new_access_token(
    app: FastAPI, database: Database, auth: AuthService
) -> None:
    registered = await _register(app, database, "a@example.com", "alice")
    result = await auth.refresh(registered.tokens.refresh.token)
    assert result.tokens.access.token != registered.tokens.access.token
    assert result.tokens.refresh.token == registered.tokens.refresh.token
    claims = app.state.codec.decode(result.tokens.access.token, TokenType.ACCESS)
    assert (
        claims.extra["sid"]
        == app.state.codec.decode(registered.tokens.access.token, TokenType.ACCESS).extra["sid"]
    )


async def test_refresh_with_invalid_or_access_token_fails(
    app: FastAPI, database: Database, auth: AuthService
) -> None:
    registered = await _register(app, database, "a@example.com", "alice")
    for token in ("garbage", registered.tokens.access.token):
        with pytest.raises(InvalidTokenException):
            await auth.refresh(token)


async def test_token_of_a_deleted_user_is_invalid(app: FastAPI, auth: AuthService) -> None:
    token = app.state.codec.issue("424242", TokenType.ACCESS).token
    with pytest.raises(InvalidTokenException):
        await auth.authenticate(token)


async def test_throttling_is_enforced_by_the_service_itself(
    app: FastAPI, database: Database
) -> None:
    """Any route that signs in through AuthService (JSON login, the OAuth2 token endpoint)
    inherits the throttle: it is not a property of one HTTP handler."""
    await _register(app, database, "a@example.com", "alice")
    rules = ThrottleRules(
        login_account="3/minute",
        login_ip="100/minute",
        register_ip="1/minute",
        refresh_ip="1/minute",
    )
    throttle = Throttle(MemoryStorage(), rules, account_hash=KeyedHash(b"k" * 32))
    async with database.session() as session:
        auth = AuthService(
            UserService(session),
            hasher=app.state.hasher,
            codec=app.state.codec,
            throttle=throttle,
            client_ip="192.0.2.1",
        )
        for _ in range(3):
            with pytest.raises(InvalidCredentialsException):
                await auth.login("ALICE", "wrong password here")
        with pytest.raises(RateLimitedException) as caught:
            await auth.login("alice", PASSWORD)
        assert 1 <= caught.value.retry_after <= 60
        await auth.register(email="b@example.com", username="bobby", password=PASSWORD)
        with pytest.raises(RateLimitedException):
            await auth.register(email="c@example.com", username="carol", password=PASSWORD)
    await throttle.close()


async def test_without_its_mfa_service_an_account_with_two_factor_never_signs_in(
    app: FastAPI, database: Database
) -> None:
    registered = await _register(app, database, "m@example.com", "mallory")
    async with database.session() as session:
        user = await UserService(session).get_by_id(registered.user.id)
        assert user is not None
        user.mfa_enabled = True

    async with database.session() as session:
        auth = AuthService(UserService(session), hasher=app.state.hasher, codec=app.state.codec)
        with pytest.raises(AppException) as raised:
            await auth.login("mallory", PASSWORD)
    assert raised.value.status_code == 500  # fails closed: no tokens on a password alone
