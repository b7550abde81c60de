"""Bring a database schema to a revision with Alembic, from code (CLI, start-up, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


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
