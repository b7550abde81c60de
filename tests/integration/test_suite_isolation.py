"""The suite's own guarantees: a test starts from empty tables with ids from 1, and a test
that starts a process without saying so fails (tests/conftest.py)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.database import Database
from app.models import Base
from tests.support import register, running_app, truncate
from tests.support.apps import release_finished_apps


async def test_truncate_empties_every_table_and_ids_start_again_from_one(
    client: httpx.AsyncClient, database: Database, database_url: str
) -> None:
    first = await register(client, "first")
    assert first.status_code == 201, first.text
    assert first.json()["user"]["id"] == 1

    await truncate(database_url)

    async with database.session() as session:
        for table in Base.metadata.sorted_tables:
            count = (await session.execute(text(f"SELECT count(*) FROM {table.name}"))).scalar()
            assert count == 0, table.name
    again = await register(client, "again")
    assert again.status_code == 201, again.text
    assert again.json()["user"]["id"] == 1


def test_a_process_started_by_an_unmarked_test_fails_it() -> None:
    with pytest.raises(RuntimeError, match=r"starts a process .* not marked"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.process
def test_a_marked_test_may_start_a_process() -> None:
    assert subprocess.run([sys.executable, "-c", "pass"], check=True).returncode == 0


async def test_an_application_is_let_go_once_its_test_is_done(settings: Settings) -> None:
    """Nothing in the libraries keeps a finished test's application, engine or compiled
    statements (tests.support.apps.release_finished_apps, run after every test): a suite
    that builds an application per test otherwise holds hundreds, and spends its time in
    the garbage collector."""
    async with running_app(settings) as (application, client):
        registered = await register(client, "kept")  # routes analysed, an ORM flush compiled
        assert registered.status_code == 201, registered.text
        database: Database = application.state.database
        left: list[weakref.ref[Any]] = [
            weakref.ref(application),
            weakref.ref(database.engine.sync_engine.dialect),
        ]
        del database
    del application, client

    release_finished_apps()
    gc.collect()

    assert [ref() for ref in left] == [None, None]
