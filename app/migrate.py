"""Bring a database schema to a revision with Alembic, from code (CLI, start-up, tests)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"

# The key of the PostgreSQL advisory lock that serialises start-up migrations across every
# process of every host on one database. Any 64-bit constant works, as long as nothing else
# on that database takes the same one; this is the first 8 bytes of sha256(b"authsvc.migrate").
MIGRATION_LOCK_KEY = 0x2333_6D9F_6337_BB9D


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head", *, sql: bool = False) -> None:
    """Apply migrations up to `revision` (`sql=True` prints the SQL instead)."""
    command.upgrade(alembic_config(database_url), revision, sql=sql)


def upgrade_on_connection(connection: Connection, revision: str = "head") -> None:
    """Apply migrations on an open (sync-facing) connection, e.g. from `run_sync`."""
    url = connection.engine.url.render_as_string(hide_password=False)
    command.upgrade(alembic_config(url, connection), revision)


def downgrade_on_connection(connection: Connection, revision: str = "base") -> None:
    url = connection.engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url, connection), revision)


class SchemaStatus(enum.Enum):
    CURRENT = "current"  # at this code's head
    BEHIND = "behind"  # empty, or an older revision of this code: `authsvc migrate` applies
    AHEAD = "ahead"  # a revision this code does not know: a newer version migrated it


@dataclass(frozen=True, slots=True)
class SchemaState:
    status: SchemaStatus
    current: tuple[str, ...]  # the database's revisions (empty: never migrated)
    head: tuple[str, ...]  # this code's


@dataclass(frozen=True, slots=True)
class Revisions:
    """The revisions this code ships: what counts as current and what as behind."""

    heads: frozenset[str]
    known: frozenset[str]

    def classify(self, current: tuple[str, ...]) -> SchemaState:
        head = tuple(sorted(self.heads))
        if set(current) == self.heads:
            return SchemaState(SchemaStatus.CURRENT, current, head)
        if any(revision not in self.known for revision in current):
            # During a rolling deploy the new version migrates first; the old instances
            # still serve (migrations are additive) and must not report themselves broken.
            return SchemaState(SchemaStatus.AHEAD, current, head)
        return SchemaState(SchemaStatus.BEHIND, current, head)


@lru_cache(maxsize=1)
def shipped_revisions() -> Revisions:
    """Read the migration scripts once per process (they import each revision's module)."""
    script = ScriptDirectory(str(MIGRATIONS))
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return Revisions(heads=frozenset(script.get_heads()), known=known)


def schema_state(connection: Connection) -> SchemaState:
    """Where the database's schema stands against this code's migrations (read only).

    Reads Alembic's version table directly rather than through a MigrationContext, which
    logs two lines each time: this runs on every `/health` probe.
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return shipped_revisions().classify(())
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return shipped_revisions().classify(tuple(sorted(rows)))


def migrate_exclusively(connection: Connection) -> SchemaState:
    """Upgrade to head unless another process did, holding the database's migration lock.

    Run on a connection without an open transaction (through `run_sync`); it begins one,
    takes the lock inside it, re-reads the schema's revision under the lock and commits.
    PostgreSQL: a transaction-level advisory lock, so replicas that start together migrate
    once and the others wait, then find the schema current; it is released by the commit
    or, if the process dies, with its connection. SQLite: `BEGIN IMMEDIATE` takes the
    file's write lock for the same purpose (the others wait up to SQLITE_BUSY_TIMEOUT_MS).
    Both run the DDL inside that one transaction, so a failed upgrade leaves nothing half.
    Returns the state before the upgrade (AHEAD and CURRENT are left alone).
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        # Waiting for the lock, and a long migration, are not a request's statement (a
        # role's or database's statement_timeout would otherwise cut them off).
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    state = schema_state(connection)
    if state.status is SchemaStatus.BEHIND:
        upgrade_on_connection(connection)
    connection.commit()
    return state
