"""UserService against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.core.errors import UserAlreadyExistsException
from app.database import Database
from app.users.service import UserService


async def _create(database: Database, email: str, username: str) -> int:
    async with database.session() as session:
        user = await UserService(session).create(
            email=email, username=username, hashed_password="$argon2id$stub"
        )
        return user.id


async def test_create_stores_the_user_normalised(database: Database) -> None:
    user_id = await _create(database, "Alice@Example.COM", "Alice")
    async with database.session() as session:
        user = await UserService(session).get_by_id(user_id)
    assert user is not None
    assert (user.email, user.username, user.username_normalized) == (
        "alice@example.com",
        "Alice",
        "alice",
    )
    assert user.is_active
    assert user.last_login is None
    assert user.created_at.tzinfo is not None


async def test_get_by_id_of_unknown_user_is_none(database: Database) -> None:
    async with database.session() as session:
        assert await UserService(session).get_by_id(999) is None


async def test_get_by_email_ignores_case(database: Database) -> None:
    user_id = await _create(database, "bob@example.com", "bob")
    async with database.session() as session:
        user = await UserService(session).get_by_email("BOB@Example.com")
    assert user is not None
    assert user.id == user_id


async def test_get_by_username_ignores_case(database: Database) -> None:
    user_id = await _create(database, "carol@example.com", "Carol")
    async with database.session() as session:
        users = UserService(session)
        assert (await users.get_by_username("CAROL")).id == user_id  # type: ignore[union-attr]
        assert (await users.get_by_identifier("carol@EXAMPLE.com")).id == user_id  # type: ignore[union-attr]
        assert await users.get_by_identifier("nobody") is None


@pytest.mark.parametrize(
    ("email", "username"),
    [("dave@example.com", "other"), ("DAVE@example.com", "other"), ("x@example.com", "DAVE")],
)
async def test_duplicate_email_or_username_raises(
    database: Database, email: str, username: str
) -> None:
    await _create(database, "dave@example.com", "dave")
    with pytest.raises(UserAlreadyExistsException):
        await _create(database, email, username)


async def test_concurrent_creates_of_one_name_leave_exactly_one(database: Database) -> None:
    results = await asyncio.gather(
        *(_create(database, f"race{i}@example.com", "racer") for i in range(10)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, int)]
    assert len(created) == 1
    assert all(isinstance(r, UserAlreadyExistsException) for r in results if r not in created)


async def test_record_login_sets_last_login_and_upgraded_hash(database: Database) -> None:
    user_id = await _create(database, "erin@example.com", "erin")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with database.session() as session:
        users = UserService(session)
        user = await users.get_by_id(user_id)
        assert user is not None
        users.record_login(user, when, "$argon2id$new")
    async with database.session() as session:
        user = await UserService(session).get_by_id(user_id)
    assert user is not None
    assert user.last_login == when
    assert user.hashed_password == "$argon2id$new"


async def test_deactivate_and_list_inactive(database: Database) -> None:
    keep = await _create(database, "f1@example.com", "f1")
    gone = await _create(database, "f2@example.com", "f2")
    async with database.session() as session:
        users = UserService(session)
        user = await users.get_by_id(gone)
        assert user is not None
        await users.set_active(user, False)
    async with database.session() as session:
        users = UserService(session)
        assert [u.id for u in await users.list_users(inactive_only=True)] == [gone]
        assert [u.id for u in await users.list_users()] == [keep, gone]


@pytest.mark.parametrize("identifier", ["ali\x00ce", "alice\x00@example.com"])
async def test_lookup_of_identifier_with_nul_finds_nobody(
    database: Database, identifier: str
) -> None:
    await _create(database, "alice@example.com", "alice")
    async with database.session() as session:
        assert await UserService(session).get_by_identifier(identifier) is None
