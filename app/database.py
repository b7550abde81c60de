"""The async engine, the session factory and the one place database work is guarded.

Everything here is created in the application's lifespan, never at import. Every session
goes through the circuit breaker: infrastructure failures (connection refused or lost,
timeouts, pool exhaustion) become `DatabaseException` (503) and count towards opening it;
business outcomes (a unique-index violation, a wrong password) do not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.core.errors import DatabaseException
from app.migrate import SchemaStatus, schema_state
from app.utils.circuit_breaker import BreakerState, CircuitBreaker
from app.utils.logger import get_logger

log = get_logger(__name__)

SCHEMA_BEHIND = "Database schema is behind this version: run `authsvc migrate`"

_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    exc.OperationalError,  # connection refused/lost, SQLite cannot open or write the file
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,  # pool exhausted: every connection busy for longer than pool_timeout
    TimeoutError,  # asyncpg's connect and command timeouts
    ConnectionError,
    OSError,
)

# PostgreSQL SQLSTATE classes (PostgreSQL manual, Appendix A) that describe the server, not
# the query: 08 connection exception, 53 insufficient resources (too many connections, disk
# full), 57 operator intervention (statement_timeout, admin shutdown, "the database system is
# starting up"), 58 system error. asyncpg reports these as plain `PostgresError`s, which
# SQLAlchemy wraps as a bare DBAPIError, so the class alone does not tell.
_PG_INFRASTRUCTURE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
# undefined_table, undefined_column: the schema is behind the code (DB_AUTO_MIGRATE=false and
# no `authsvc migrate` yet). Every request would fail alike, so it is a 503 like an outage,
# as SQLite's "no such table" (an OperationalError) already is, not a 500 per request.
_PG_SCHEMA_BEHIND_SQLSTATES = frozenset({"42P01", "42703"})

# SQLite primary result codes (https://sqlite.org/rescode.html) that mean the file, not the
# statement, is the problem. sqlite3 raises NOTADB and CORRUPT as a bare DatabaseError.
_SQLITE_INFRASTRUCTURE_CODES = frozenset(
    {
        3,  # SQLITE_PERM
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        26,  # SQLITE_NOTADB
    }
)


def is_infrastructure_error(error: BaseException) -> bool:
    """True for failures of the database itself, as opposed to a query's business outcome."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    driver_error = error.orig if isinstance(error, exc.DBAPIError) else error
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate[:2] in _PG_INFRASTRUCTURE_SQLSTATE_CLASSES
        or sqlstate in _PG_SCHEMA_BEHIND_SQLSTATES
    ):
        return True
    sqlite_code = getattr(driver_error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int) and (sqlite_code & 0xFF) in _SQLITE_INFRASTRUCTURE_CODES:
        return True
    if isinstance(error, exc.IntegrityError | exc.ProgrammingError | exc.DataError):
        return False
    return isinstance(error, _INFRASTRUCTURE_ERRORS)


# Connections per process (pool size, overflow) when DB_POOL_SIZE / DB_MAX_OVERFLOW are
# unset. SQLite has one writer at a time, and a writer that finds the lock taken sleeps
# in SQLite's busy handler (1, 2, 5 ... 100 ms), which favours newcomers: with 20
# connections, writers queued behind one another for seconds under load (make bench's
# mixed scenario: p99 2-3 s, and an occasional 503 after SQLITE_BUSY_TIMEOUT_MS). With 5,
# requests wait in the pool's queue instead, first come first served (p99 ~0.25 s, the
# same throughput, ~5 MB less memory per worker).
SQLITE_POOL = (5, 0)
SERVER_POOL = (10, 10)
# What a request reads beside its own transaction (the signing keys before it signs, the
# application a page's form leads back to) comes from a pool of its own. A request that
# holds a connection must never wait for a second one from the same pool: with every
# connection held by such requests, none would come back until the pool's timeout (a burst
# of code exchanges answered 503 and opened the breaker). Those reads hold nothing else.
ASIDE_POOL = (2, 0)


def build_engine(settings: Settings, *, pool: tuple[int, int] | None = None) -> AsyncEngine:
    """An engine tuned per backend: SQLite in WAL mode, PostgreSQL with bounded waits.

    Every wait a request can meet has a bound, so an outage ends in a 503 instead of a hang:
    a pooled connection (`DB_POOL_TIMEOUT`, on both backends), a new connection
    (`DB_CONNECT_TIMEOUT`), a statement (`DB_STATEMENT_TIMEOUT_MS` on the server, twice that
    on the client in case the server stops answering altogether) and SQLite's write lock
    (`SQLITE_BUSY_TIMEOUT_MS`).

    `hide_parameters`: a database error's message (logged with its traceback) then shows the
    SQL but not the bound values: no email, no password hash in the log.

    `pool`: (size, overflow) instead of the settings' (the pool of reads aside).
    """
    url = make_url(settings.database_url)
    default_size, default_overflow = (
        SQLITE_POOL if url.get_backend_name() == "sqlite" else SERVER_POOL
    )
    size = settings.db_pool_size or default_size
    overflow = default_overflow if settings.db_max_overflow is None else settings.db_max_overflow
    if pool is not None:
        size, overflow = pool
    pool_args: dict[str, Any] = {
        "pool_size": size,
        "max_overflow": overflow,
        "pool_timeout": settings.db_pool_timeout,
    }
    if url.get_backend_name() == "sqlite":
        in_memory = url.database in (None, "", ":memory:")  # one shared connection, no queue
        engine = create_async_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_pre_ping=False,
            **({} if in_memory else pool_args),
            hide_parameters=True,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        statement_timeout = settings.db_statement_timeout_ms / 1000
        connect_args = {
            "timeout": settings.db_connect_timeout,
            # 0 disables the statement timeout, and with it the client-side bound.
            "command_timeout": statement_timeout * 2 if statement_timeout else None,
            "server_settings": {
                "application_name": "authsvc",
                "statement_timeout": str(settings.db_statement_timeout_ms),
            },
        }
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
        **pool_args,
        hide_parameters=True,
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; busy_timeout makes a writer wait for
        # the lock instead of failing with "database is locked"; SQLite leaves FKs off.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


class Database:
    """Engine, session factory and circuit breaker of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` (monotonic seconds) times the breaker's recovery; tests pass a fake one."""
        self.settings = settings
        self.engine = build_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # An in-memory SQLite database is one shared connection: a second engine would be
        # another, empty database (and one connection cannot be waited for twice).
        url = make_url(settings.database_url)
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        self.aside_engine = self.engine if in_memory else build_engine(settings, pool=ASIDE_POOL)
        self._aside_sessionmaker = async_sessionmaker(self.aside_engine, expire_on_commit=False)
        self.breaker = breaker or CircuitBreaker(
            "database",
            failure_threshold=settings.circuit_breaker_threshold,
            recovery_timeout=settings.circuit_breaker_timeout,
            initial_timeout=settings.circuit_breaker_initial_timeout,
            half_open_max_calls=settings.circuit_breaker_half_open_max_calls,
            is_failure=lambda error: isinstance(error, DatabaseException),
            clock=clock,
        )
        self.breaker.add_listener(_log_transition)

    @asynccontextmanager
    async def session(self, *, aside: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the body succeeds, else rolls back;
        `aside`: from the pool of reads beside a request's own transaction (ASIDE_POOL).

        Raises CircuitBreakerOpenException while the breaker sheds load and DatabaseException
        when the database fails underneath; everything else passes through unchanged.
        """
        async with self.breaker.guard() as trial:
            try:
                maker = self._aside_sessionmaker if aside else self.sessionmaker
                async with maker() as session:
                    try:
                        if trial:
                            # A trial's verdict must come from the database itself, also
                            # when the request ends before its first query (a bad token).
                            await session.connection()
                        yield session
                        await session.commit()
                    except BaseException:
                        await _rollback_quietly(session)
                        raise
            except Exception as error:
                self._raise_for_infrastructure(error)
                raise

    @asynccontextmanager
    async def connection(self, *, aside: bool = False) -> AsyncIterator[AsyncConnection]:
        """A bare connection for a read: no ORM session and no COMMIT (the pool rolls the
        read transaction back on return). `aside`, errors and the breaker as for `session`."""
        async with self.breaker.guard():
            try:
                engine = self.aside_engine if aside else self.engine
                async with engine.connect() as connection:
                    yield connection
            except Exception as error:
                self._raise_for_infrastructure(error)
                raise

    def _raise_for_infrastructure(self, error: Exception) -> None:
        if is_infrastructure_error(error):
            log.error("database error", error_type=type(error).__name__, exc_info=error)
            raise DatabaseException(retry_after=self._retry_after()) from error

    async def ping(self) -> float:
        """Read the schema's revision outside the breaker, within the health timeout.

        Returns milliseconds. Raises DatabaseException when the database cannot be reached,
        and also when its schema is behind this code's (never migrated, or an older
        revision): every request would fail there, so a load balancer must not route to
        this instance either, and the reason names the fix.
        """
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.db_health_timeout):
                async with self.engine.connect() as connection:
                    state = await connection.run_sync(schema_state)
        except Exception as error:
            if is_infrastructure_error(error):
                raise DatabaseException(retry_after=self._retry_after()) from error
            raise
        if state.status is SchemaStatus.BEHIND:
            # A newer schema (AHEAD) is fine: in a rolling deploy the new version migrates
            # while this one still serves.
            raise DatabaseException(SCHEMA_BEHIND, retry_after=self._retry_after())
        return (time.perf_counter() - started) * 1000

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.aside_engine is not self.engine:
            await self.aside_engine.dispose()

    def _retry_after(self) -> int:
        return max(1, int(min(self.settings.circuit_breaker_timeout, 5)))


async def _rollback_quietly(session: AsyncSession) -> None:
    try:
        await session.rollback()
    except Exception as error:  # the connection may be gone; the original error matters
        log.warning("rollback failed", error_type=type(error).__name__)


def _log_transition(breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
    level = log.warning if new is BreakerState.OPEN else log.info
    level(
        "circuit breaker state changed",
        breaker=breaker.name,
        from_state=old.value,
        to_state=new.value,
        failure_count=breaker.failure_count,
    )


def describe_database_error(error: BaseException) -> str:
    """A one-line reason without SQL or bound parameters (they may hold password hashes)."""
    cause: BaseException = error
    if isinstance(error, DatabaseException) and error.__cause__ is not None:
        cause = error.__cause__
    if isinstance(cause, exc.DBAPIError) and cause.orig is not None:
        cause = cause.orig
    text = " ".join(str(cause).split()) or type(cause).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        text += " (run `authsvc migrate` first)"
    return text
