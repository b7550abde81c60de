"""The test databases: which backends run, and a schema made by the migrations themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
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
    """Empty every table, keeping the schema."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))
    await engine.dispose()


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
