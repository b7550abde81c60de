"""Which failures count as the database being down, and what a breaker transition logs."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc

from app.core.errors import DatabaseException
from app.database import Database, is_infrastructure_error
from app.utils.circuit_breaker import BreakerState
from app.utils.logger import setup_logging
from tests.support import FakeClock, build_settings


def wrapped(orig: BaseException, kind: type[exc.DBAPIError] = exc.DBAPIError) -> exc.DBAPIError:
    """The error as SQLAlchemy hands it to the application."""
    return kind("SELECT 1", None, orig)


@pytest.mark.parametrize(
    "orig",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),  # 57P03
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
        asyncpg.DiskFullError("could not extend file"),  # 53100
        asyncpg.ConnectionFailureError("connection failure"),  # 08006
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgres_server_failures_are_infrastructure(orig: BaseException) -> None:
    # asyncpg reports them as plain PostgresErrors; SQLAlchemy wraps those as a bare DBAPIError.
    assert is_infrastructure_error(wrapped(orig))
    assert is_infrastructure_error(orig)


@pytest.mark.parametrize(
    "orig",
    [
        asyncpg.UndefinedTableError('relation "users" does not exist'),  # 42P01
        asyncpg.UndefinedColumnError('column "roles" does not exist'),  # 42703
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_schema_behind_the_code_is_infrastructure(orig: BaseException) -> None:
    # Every request fails alike until `authsvc migrate`: a 503, as SQLite's "no such table".
    assert is_infrastructure_error(wrapped(orig, exc.ProgrammingError))


@pytest.mark.parametrize(
    ("orig", "kind"),
    [
        (asyncpg.UniqueViolationError("duplicate key"), exc.IntegrityError),
        (asyncpg.StringDataRightTruncationError("value too long"), exc.DataError),
        (asyncpg.SerializationError("could not serialize access"), exc.DBAPIError),
    ],
    ids=lambda e: type(e).__name__,
)
def test_query_outcomes_are_not_infrastructure(
    orig: BaseException, kind: type[exc.DBAPIError]
) -> None:
    assert not is_infrastructure_error(wrapped(orig, kind))


def test_sqlite_file_that_is_not_a_database_is_infrastructure(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    path.write_bytes(b"not a database\n" * 500)
    connection = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError) as caught:
            connection.execute("SELECT * FROM sqlite_master")
    finally:
        connection.close()
    assert type(caught.value) is sqlite3.DatabaseError  # not an OperationalError
    assert is_infrastructure_error(wrapped(caught.value, exc.DatabaseError))


def test_sqlite_unique_violation_is_not_infrastructure() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (x UNIQUE)")
    connection.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as caught:
        connection.execute("INSERT INTO t VALUES (1)")
    connection.close()
    assert not is_infrastructure_error(wrapped(caught.value, exc.IntegrityError))


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError(111, "refused"), TimeoutError(), exc.TimeoutError("pool")],
    ids=["refused", "connect-timeout", "pool-timeout"],
)
def test_network_and_pool_failures_are_infrastructure(error: BaseException) -> None:
    assert is_infrastructure_error(error)


def test_application_errors_are_not_infrastructure() -> None:
    assert not is_infrastructure_error(ValueError("bad input"))
    assert not is_infrastructure_error(KeyError("missing"))


async def test_every_breaker_transition_is_logged_with_the_failure_count(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    clock = FakeClock()
    settings = build_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'auth.db'}",
        tmp_path,
        circuit_breaker_threshold=2,
        circuit_breaker_timeout=10,
    )
    database = Database(settings, clock=clock)
    try:
        for _ in range(2):
            with pytest.raises(DatabaseException):
                async with database.session() as session:
                    await session.connection()
        clock.advance(10)
        assert database.breaker.state is BreakerState.HALF_OPEN
        database.breaker.reset()
    finally:
        await database.dispose()
        setup_logging()  # back to stdout for the tests that follow
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    changes = [
        (e["level"], e["from_state"], e["to_state"], e["failure_count"])
        for e in lines
        if e["message"] == "circuit breaker state changed" and e["breaker"] == "database"
    ]
    assert changes == [
        ("WARNING", "closed", "open", 2),
        ("INFO", "open", "half_open", 2),
        ("INFO", "half_open", "closed", 0),
    ]


@pytest.mark.parametrize(
    ("url", "overrides", "expected"),
    [
        ("sqlite+aiosqlite:///{tmp}/auth.db", {}, (5, 0)),
        ("postgresql+asyncpg://u@127.0.0.1/db", {}, (10, 10)),
        ("sqlite+aiosqlite:///{tmp}/auth.db", {"db_pool_size": 8, "db_max_overflow": 2}, (8, 2)),
        ("postgresql+asyncpg://u@127.0.0.1/db", {"db_max_overflow": 0}, (10, 0)),
    ],
    ids=["sqlite-default", "postgresql-default", "sqlite-set", "postgresql-overflow-0"],
)
async def test_the_pool_size_follows_the_backend_unless_set(
    url: str, overrides: dict[str, int], expected: tuple[int, int], tmp_path: Path
) -> None:
    # SQLite has one writer at a time: a small pool queues writers fairly (SQLITE_POOL).
    database = Database(build_settings(url.format(tmp=tmp_path), tmp_path, **overrides))
    try:
        pool = database.engine.pool
        assert (pool.size(), pool._max_overflow) == expected  # type: ignore[attr-defined]
    finally:
        await database.dispose()
