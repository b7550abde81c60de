"""The signing keys in the database: one key however many workers start at once, a new
key when JWT_ALGORITHM changes, and a refusal to start under another SECRET_KEY."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.config import Settings
from app.core.jwt import utc_now
from app.core.signing_keys import KeyCipher, KeyDecryptionError
from app.database import Database
from app.keys.store import install_key
from app.main import create_app
from app.models import SigningKey
from tests.support import TEST_SECRET, build_settings


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Settings:
    return build_settings(database_url, tmp_path, jwt_algorithm="EdDSA")


async def _rows(database: Database) -> list[SigningKey]:
    async with database.session() as session:
        return list((await session.scalars(select(SigningKey))).all())


async def test_workers_creating_the_first_key_at_once_make_one(store: Settings) -> None:
    databases = [Database(store) for _ in range(4)]
    try:
        cipher = KeyCipher(TEST_SECRET)
        results = await asyncio.gather(
            *(install_key(db, "EdDSA", cipher, utc_now, only_if_missing=True) for db in databases)
        )
        rows = await _rows(databases[0])
    finally:
        for db in databases:
            await db.dispose()

    assert len(rows) == 1
    assert {key.kid for key, _ in results} == {rows[0].kid}
    assert sum(created for _, created in results) == 1


async def test_concurrent_rotations_leave_exactly_one_current_key(store: Settings) -> None:
    database = Database(store)
    try:
        cipher = KeyCipher(TEST_SECRET)
        await install_key(database, "EdDSA", cipher, utc_now, only_if_missing=True)
        await asyncio.gather(
            *(install_key(database, "EdDSA", cipher, utc_now, only_if_missing=False) for _ in "ab")
        )
        rows = await _rows(database)
    finally:
        await database.dispose()

    assert len(rows) == 3
    assert [row.current for row in rows].count(True) == 1
    assert all(row.retired_at is not None for row in rows if not row.current)


async def test_a_new_algorithm_makes_a_new_current_key_and_keeps_the_old_published(
    store: Settings,
) -> None:
    first = create_app(store)
    async with first.router.lifespan_context(first):
        old_kid = first.state.keyring.current_kid
    second = create_app(store.model_copy(update={"jwt_algorithm": "ES256"}))
    async with second.router.lifespan_context(second):
        keyring = second.state.keyring
        assert keyring.current_kid != old_kid
        assert keyring.signing_key()[1] == "ES256"
        assert {k["kid"]: k["alg"] for k in keyring.jwks()["keys"]} == {
            keyring.current_kid: "ES256",
            old_kid: "EdDSA",
        }


async def test_another_secret_key_refuses_to_start_rather_than_sign_with_nothing(
    store: Settings,
) -> None:
    first = create_app(store)
    async with first.router.lifespan_context(first):
        pass
    other = create_app(store.model_copy(update={"secret_key": SecretStr("another-" + "k" * 40)}))
    with pytest.raises(KeyDecryptionError, match="keys rotate"):
        async with other.router.lifespan_context(other):
            pass


async def test_after_a_secret_key_change_a_rotation_lets_the_service_start_again(
    store: Settings,
) -> None:
    first = create_app(store)
    async with first.router.lifespan_context(first):
        old_kid = first.state.keyring.current_kid
    changed = store.model_copy(update={"secret_key": SecretStr("rotated-" + "k" * 40)})
    database = Database(changed)
    try:
        cipher = KeyCipher(changed.secret_key.get_secret_value())  # type: ignore[union-attr]
        await install_key(database, "EdDSA", cipher, utc_now, only_if_missing=False)
    finally:
        await database.dispose()

    restarted = create_app(changed)
    async with restarted.router.lifespan_context(restarted):
        keyring = restarted.state.keyring
        assert keyring.current_kid != old_kid
        assert old_kid in {k["kid"] for k in keyring.jwks()["keys"]}  # old tokens still verify
