"""The test databases: which backends run, and a schema made by the migrations themselves."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.migrate import upgrade_on_connection
from app.models import Base

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
THROTTLE_STORES = ["memory"] + (["redis"] if os.environ.get("TEST_REDIS_URL") else [])

# URLs whose schema this test run has already created: later tests only empty the tables.
prepared: set[str] = set()


async def prepare_schema(url: str) -> None:
    """Drop everything (PostgreSQL: the public schema) and migrate to the latest revision."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(upgrade_on_connection)
    await engine.dispose()


async def truncate(url: str) -> None:
    """Empty every table and restart every id sequence, keeping the schema.

    It runs before most tests, so it takes one connection of the driver itself and one
    round trip: DELETE in dependency order rather than PostgreSQL's TRUNCATE, which rewrites
    every table's files and cost a quarter of a second a test.
    """
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    deletes = "".join(f"DELETE FROM {table};" for table in tables)
    target = make_url(url)
    if target.get_backend_name() == "postgresql":
        conn = await connect_postgres(target)
        try:
            sequences = await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
            )
            restarts = "".join(f'ALTER SEQUENCE "{row[0]}" RESTART;' for row in sequences)
            await conn.execute(f"BEGIN;{deletes}{restarts}COMMIT;")
        finally:
            await conn.close()
    else:
        assert target.database is not None
        with closing(sqlite3.connect(target.database)) as conn:
            conn.executescript(f"BEGIN;{deletes}COMMIT;")


async def connect_postgres(url: URL, *, database: str | None = None) -> asyncpg.Connection:
    """A plain asyncpg connection to the server of a SQLAlchemy URL (to `database` if given)."""
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=database or url.database,
    )


def worker_database_url(url: str, worker: str) -> str:
    """The database of one pytest-xdist worker (`<name>_gw0`, ...) on the server of `url`,
    created when missing: workers never share tables, sequences or schema."""
    server = make_url(url)
    name = f"{server.database}_{worker}"

    async def create() -> None:
        conn = await connect_postgres(server, database="postgres")
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return server.set(database=name).render_as_string(hide_password=False)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block, each named by its first word
    (SELECT, INSERT, ...; BEGIN and COMMIT are not statements)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]).split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
