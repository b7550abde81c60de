"""Start-up: bring the database to this code's schema before the service answers.

With `DB_AUTO_MIGRATE=true` (the default) the lifespan migrates before the server accepts
a request, so `uvicorn app.main:app` on a new database just works. Replicas starting
together migrate once (`migrate_exclusively` holds the database's migration lock). A
database that cannot be reached at start-up does not stop the service: it starts, answers
503 as in any outage, and a background task migrates as soon as the database answers.
With `DB_AUTO_MIGRATE=false` nothing is changed; a schema that is behind is logged at
start-up and reported by `/health`, both naming `authsvc migrate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.database import Database, is_infrastructure_error
from app.migrate import SchemaState, SchemaStatus, migrate_exclusively, schema_state
from app.utils.logger import get_logger

log = get_logger(__name__)

RETRY_FIRST_DELAY_S = 1.0
RETRY_MAX_DELAY_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


async def start_schema(
    database: Database, *, auto_migrate: bool
) -> asyncio.Task[SchemaState | None] | None:
    """The start-up step: migrate or check now; if the database is unreachable and
    `auto_migrate` is on, the task that migrates once it answers (the caller cancels it).

    Raises what `prepare_schema` raises, after disposing of the engine.
    """
    try:
        state = await prepare_schema(database, auto_migrate=auto_migrate)
    except BaseException:
        await database.dispose()
        raise
    if state is None and auto_migrate:
        return asyncio.create_task(migrate_when_reachable(database), name="start-up migration")
    return None


async def prepare_schema(database: Database, *, auto_migrate: bool) -> SchemaState | None:
    """Migrate (or, with `auto_migrate` off, check) the schema; None if unreachable.

    Raises whatever a migration raises other than the database being unreachable: a
    migration that fails on a reachable database must stop the start-up, loudly.
    """
    try:
        async with _migration_engine(database) as engine, engine.connect() as connection:
            if auto_migrate:
                state = await connection.run_sync(migrate_exclusively)
            else:
                state = await connection.run_sync(schema_state)
    except Exception as error:
        if not is_infrastructure_error(error):
            raise
        log.warning(
            "database unreachable at start-up",
            error_type=type(error).__name__,
            auto_migrate=auto_migrate,
        )
        return None
    _report(state, auto_migrate=auto_migrate)
    return state


async def migrate_when_reachable(
    database: Database,
    *,
    sleep: Sleep = asyncio.sleep,
    first_delay: float = RETRY_FIRST_DELAY_S,
    max_delay: float = RETRY_MAX_DELAY_S,
) -> SchemaState | None:
    """Retry the start-up migration with exponential back-off until the database answers.

    Returns None when the migration itself fails (logged; `/health` keeps reporting the
    schema as behind, naming `authsvc migrate`).
    """
    delay = first_delay
    while True:
        await sleep(delay)
        try:
            state = await prepare_schema(database, auto_migrate=True)
        except Exception as error:
            log.error("start-up migration failed", error_type=type(error).__name__, exc_info=error)
            return None
        if state is not None:
            return state
        delay = min(delay * 2, max_delay)


@asynccontextmanager
async def _migration_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """SQLite: the service's engine (its busy timeout bounds the wait for the write lock).

    PostgreSQL: a one-connection engine of its own, without the service's statement and
    command timeouts, which would cancel a replica's wait for the migration lock (or a
    long migration) after seconds; the connect timeout still bounds an unreachable server.
    """
    if database.engine.dialect.name != "postgresql":
        yield database.engine
        return
    settings = database.settings
    engine = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args={
            "timeout": settings.db_connect_timeout,
            "server_settings": {"application_name": "authsvc-migrate"},
        },
        hide_parameters=True,
    )
    try:
        yield engine
    finally:
        await engine.dispose()


def _report(state: SchemaState, *, auto_migrate: bool) -> None:
    fields = {"current": list(state.current), "head": list(state.head)}
    if state.status is SchemaStatus.AHEAD:
        log.warning("database schema is newer than this version", **fields)
    elif state.status is SchemaStatus.BEHIND and auto_migrate:
        log.info("database migrated", from_revision=list(state.current), to_revision=fields["head"])
    elif state.status is SchemaStatus.BEHIND:
        log.error("database schema is behind: run `authsvc migrate`", **fields)
    else:
        log.info("database schema is current", **fields)
