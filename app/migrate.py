"""Bring a database schema to a revision with Alembic, from code (CLI, start-up, tests).

Telling where a schema stands (`schema_state`, on every start-up and `/health` probe) needs
no Alembic: the revision ids are read from the scripts' source. Only what migrates imports
Alembic, so a serving worker whose schema is current never loads it.
"""

from __future__ import annotations

import ast
import enum
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSIONS = MIGRATIONS / "versions"
VERSION_TABLE = "alembic_version"

# The key of the PostgreSQL advisory lock that serialises start-up migrations across every
# process of every host on one database. Any 64-bit constant works, as long as nothing else
# on that database takes the same one; this is the first 8 bytes of sha256(b"authsvc.migrate").
MIGRATION_LOCK_KEY = 0x2333_6D9F_6337_BB9D


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    # Imported here: a serving worker with a current schema never loads alembic (~11 MB).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head", *, sql: bool = False) -> None:
    """Apply migrations up to `revision` (`sql=True` prints the SQL instead)."""
    # Imported here: a serving worker with a current schema never loads alembic (~11 MB).
    from alembic import command

    command.upgrade(alembic_config(database_url), revision, sql=sql)


def upgrade_on_connection(connection: Connection, revision: str = "head") -> None:
    """Apply migrations on an open (sync-facing) connection, e.g. from `run_sync`."""
    # Imported here: a serving worker with a current schema never loads alembic (~11 MB).
    from alembic import command

    url = connection.engine.url.render_as_string(hide_password=False)
    command.upgrade(alembic_config(url, connection), revision)


def downgrade_on_connection(connection: Connection, revision: str = "base") -> None:
    # Imported here: a serving worker with a current schema never loads alembic (~11 MB).
    from alembic import command

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
    """The revisions of this code's migration scripts, read once per process."""
    return read_revisions(VERSIONS)


def read_revisions(versions: Path) -> Revisions:
    """The revisions of the scripts in `versions`, read from their source, not imported
    (Alembic's ScriptDirectory imports every script, and with it Alembic).

    Raises ValueError for a script whose `revision` or `down_revision` is missing or is
    not a literal string, None or tuple of strings.
    """
    down_revisions: dict[str, tuple[str, ...]] = {}
    for path in sorted(versions.glob("*.py")):
        if not path.name.startswith(("__init__", ".#")):  # the files Alembic skips too
            revision, down = _read_script(path)
            down_revisions[revision] = down
    named_as_down = {down for downs in down_revisions.values() for down in downs}
    return Revisions(
        heads=frozenset(down_revisions.keys() - named_as_down), known=frozenset(down_revisions)
    )


def _read_script(path: Path) -> tuple[str, tuple[str, ...]]:
    """A script's `revision` and `down_revision`s, from its module-level assignments."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_bytes(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            try:
                values[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path.name}: {target.id} is not a literal") from error
    revision = values.get("revision")
    if not isinstance(revision, str):
        raise ValueError(f"{path.name}: no `revision` string")
    if "down_revision" not in values:
        raise ValueError(f"{path.name}: no `down_revision`")
    down = values["down_revision"]
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    # A merge names its parents as a tuple (Alembic also takes a list).
    if isinstance(down, tuple | list) and all(isinstance(item, str) for item in down):
        return revision, tuple(down)
    raise ValueError(f"{path.name}: `down_revision` is not a string, None or strings")


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
