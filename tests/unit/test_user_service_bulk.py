"""UserService's bulk operations for imports, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.core.errors import UserAlreadyExistsException
from app.database import Database
from app.models.user import User
from app.users.service import NewUser, UserService

HASH = "$2b$04$" + "a" * 53


def _new(n: int, *, email: str | None = None, username: str | None = None) -> NewUser:
    return NewUser(email or f"user{n}@example.com", username or f"user{n}", HASH)


async def _count(database: Database) -> int:
    async with database.session() as session:
        return (await session.execute(select(func.count()).select_from(User))).scalar_one()


async def test_create_many_inserts_active_normalised_users(database: Database) -> None:
    async with database.session() as session:
        inserted = await UserService(session).create_many(
            [_new(1, email="Ann@Example.COM", username="Ann"), _new(2)], skip_existing=False
        )
    async with database.session() as session:
        ann = await UserService(session).get_by_username("ANN")

    assert inserted == 2
    assert ann is not None
    assert (ann.email, ann.username, ann.is_active) == ("ann@example.com", "Ann", True)
    assert ann.created_at.tzinfo is not None


async def test_create_many_of_nothing_inserts_nothing(database: Database) -> None:
    async with database.session() as session:
        assert await UserService(session).create_many([], skip_existing=False) == 0


async def test_create_many_with_a_taken_name_raises_and_keeps_nothing(database: Database) -> None:
    async with database.session() as session:
        await UserService(session).create_many([_new(1)], skip_existing=False)

    with pytest.raises(UserAlreadyExistsException):
        async with database.session() as session:
            await UserService(session).create_many(
                [_new(2), _new(3, username="USER1")], skip_existing=False
            )

    assert await _count(database) == 1


async def test_create_many_skipping_existing_counts_only_new_rows(database: Database) -> None:
    async with database.session() as session:
        await UserService(session).create_many([_new(1)], skip_existing=False)

    async with database.session() as session:
        inserted = await UserService(session).create_many(
            [_new(2), _new(3, email="USER1@example.com"), _new(4, username="User1")],
            skip_existing=True,
        )

    assert inserted == 1
    assert await _count(database) == 2


async def test_existing_keys_finds_taken_emails_and_usernames_in_any_case(
    database: Database,
) -> None:
    async with database.session() as session:
        await UserService(session).create_many([_new(n) for n in range(1200)], skip_existing=False)

    async with database.session() as session:
        emails, names = await UserService(session).existing_keys(
            ["USER5@example.com", "free@example.com", "user1100@example.com"],
            ["User7", "free", *(f"user{n}" for n in range(600, 1300))],
        )

    assert emails == {"user5@example.com", "user1100@example.com"}
    assert names == {"user7", *(f"user{n}" for n in range(600, 1200))}
