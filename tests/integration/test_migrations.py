"""The Alembic migrations produce exactly the schema the models describe."""

from __future__ import annotations

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.database import Database
from app.migrate import downgrade_on_connection, upgrade_on_connection
from app.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


async def test_sessions_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'round-trip.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            assert "auth_sessions" in await connection.run_sync(_tables)
            await connection.run_sync(downgrade_on_connection, "0001")
            assert await connection.run_sync(_tables) >= {"users"}
            assert "auth_sessions" not in await connection.run_sync(_tables)
            await connection.run_sync(upgrade_on_connection)
            assert "auth_sessions" in await connection.run_sync(_tables)
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_roles_and_audit_migration_downgrades_and_upgrades_again(
    database_url: str, tmp_path: Path
) -> None:
    url = (
        database_url if "postgresql" in database_url else f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    )
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            await connection.run_sync(downgrade_on_connection, "0004")
            tables = await connection.run_sync(_tables)
            assert not {"user_roles", "audit_events"} & tables
            assert "last_used_at" not in await connection.run_sync(_columns, "auth_sessions")
            await connection.run_sync(upgrade_on_connection)
            assert {"user_roles", "audit_events"} <= await connection.run_sync(_tables)
            assert {"last_used_at", "ip", "user_agent"} <= await connection.run_sync(
                _columns, "auth_sessions"
            )
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_two_factor_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'mfa-round-trip.db'}")
    mfa_tables = {"mfa_totp", "mfa_recovery_codes", "signin_flows"}
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            assert mfa_tables <= await connection.run_sync(_tables)
            assert "mfa_enabled" in await connection.run_sync(_columns, "users")
            await connection.run_sync(downgrade_on_connection, "0007-1")
            assert not (mfa_tables | {"mfa_challenges"}) & await connection.run_sync(_tables)
            assert "mfa_enabled" not in await connection.run_sync(_columns, "users")
            assert "email_verified" in await connection.run_sync(_columns, "users")
            await connection.run_sync(upgrade_on_connection)
            assert mfa_tables <= await connection.run_sync(_tables)
    finally:
        await engine.dispose()


async def test_key_revocation_migration_downgrades_and_upgrades_again(
    database_url: str, tmp_path: Path
) -> None:
    url = (
        database_url if "postgresql" in database_url else f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    )
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            assert "revoked_at" in await connection.run_sync(_columns, "signing_keys")
            await connection.run_sync(downgrade_on_connection, "0009")
            assert "revoked_at" not in await connection.run_sync(_columns, "signing_keys")
            await connection.run_sync(upgrade_on_connection)
            assert "revoked_at" in await connection.run_sync(_columns, "signing_keys")
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_mail_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'mail-round-trip.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            assert {"mail_outbox", "one_time_tokens"} <= await connection.run_sync(_tables)
            assert "email_verified" in await connection.run_sync(_columns, "users")
            await connection.run_sync(downgrade_on_connection, "0002")
            assert not {"mail_outbox", "one_time_tokens"} & await connection.run_sync(_tables)
            assert "email_verified" not in await connection.run_sync(_columns, "users")
            await connection.run_sync(upgrade_on_connection)
            assert {"mail_outbox", "one_time_tokens"} <= await connection.run_sync(_tables)
    finally:
        await engine.dispose()


def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}


async def test_signing_keys_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'keys-round-trip.db'}")
    new_tables = {"signing_keys", "oauth_clients"}
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            assert new_tables <= await connection.run_sync(_tables)
            await connection.run_sync(downgrade_on_connection, "0002")
            assert not new_tables & await connection.run_sync(_tables)
            assert "auth_sessions" in await connection.run_sync(_tables)
            await connection.run_sync(upgrade_on_connection)
            assert new_tables <= await connection.run_sync(_tables)
    finally:
        await engine.dispose()


async def test_optional_password_migration_keeps_every_row_and_round_trips(
    tmp_path: Path,
) -> None:
    """0008 drops NOT NULL of users.hashed_password without rebuilding `users` on SQLite:
    a rebuild would DROP the table and, with foreign keys on, cascade into its sessions."""
    database_file = tmp_path / "password-round-trip.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{database_file}")
    now = "2026-12-01 00:00:00"
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        async with engine.begin() as connection:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.run_sync(upgrade_on_connection, "0010")
            await connection.exec_driver_sql(
                "INSERT INTO users (id, username, username_normalized, email, hashed_password,"
                " is_active, created_at, updated_at, email_verified, mfa_enabled)"
                f" VALUES (1, 'a', 'a', 'a@example.com', 'x', 1, '{now}', '{now}', 0, 0)"
            )
            await connection.exec_driver_sql(
                "INSERT INTO auth_sessions (id, user_id, refresh_jti, created_at, expires_at)"
                f" VALUES ('s', 1, 'j', '{now}', '{now}')"
            )
            await connection.run_sync(upgrade_on_connection)
            await connection.exec_driver_sql("UPDATE users SET hashed_password = NULL")
            assert (
                await connection.exec_driver_sql("SELECT count(*) FROM auth_sessions")
            ).scalar() == 1
            await connection.run_sync(downgrade_on_connection, "0010")
            stored = await connection.exec_driver_sql("SELECT hashed_password FROM users")
            assert stored.scalar() == "!"  # no hasher knows it: still no password sign-in
            await connection.run_sync(upgrade_on_connection)
            assert await connection.run_sync(_diff) == []
            check = await connection.exec_driver_sql("PRAGMA integrity_check")
            assert check.scalar() == "ok"
            assert (
                await connection.exec_driver_sql("SELECT count(*) FROM auth_sessions")
            ).scalar() == 1
    finally:
        await engine.dispose()


async def test_openid_provider_migration_keeps_version_2_clients_and_round_trips(
    database_url: str, tmp_path: Path
) -> None:
    url = (
        database_url
        if "postgresql" in database_url
        else f"sqlite+aiosqlite:///{tmp_path / 'oidc.db'}"
    )
    engine = create_async_engine(url)
    insert_client = text(
        "INSERT INTO oauth_clients (client_id, name, secret_hash, created_at) "
        "VALUES ('v2-client', 'billing-api', :hash, CURRENT_TIMESTAMP)"
    )
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_on_connection)
            await connection.run_sync(downgrade_on_connection, "0015")
            assert "redirect_uris" not in await connection.run_sync(_columns, "oauth_clients")
            await connection.execute(text("DELETE FROM oauth_clients"))
            await connection.execute(insert_client, {"hash": "0" * 64})
            await connection.run_sync(upgrade_on_connection)
            row = (
                await connection.execute(
                    text(
                        "SELECT redirect_uris, public, first_party, secret_hash FROM oauth_clients"
                    )
                )
            ).one()
            redirect_uris = json.loads(row[0]) if isinstance(row[0], str) else row[0]
            assert redirect_uris == []  # an introspection client, as it was
            assert not row[1]
            assert not row[2]
            assert row[3] == "0" * 64
            assert "parent_id" in await connection.run_sync(_columns, "auth_sessions")
            assert await connection.run_sync(_diff) == []
            await connection.execute(text("DELETE FROM oauth_clients"))
    finally:
        await engine.dispose()
