"""A worker killed while a mail is on its way strands that one mail, never a batch: the
other worker delivers the rest at once, not after the dead one's lease."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import OutboxMail
from tests.support import BACKENDS, prepare_schema, register
from tests.support.mailbox import Mailbox
from tests.support.processes import (
    fresh_postgres_database,
    serve_argv,
    server_env,
    spawn,
    wait_until,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.process]

USERS = 6


@asynccontextmanager
async def _database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
        return
    async with fresh_postgres_database("mail_crash") as url:
        yield url


async def _statuses(url: str) -> Counter[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return Counter((await connection.execute(select(OutboxMail.status))).scalars())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_killed_worker_strands_only_the_mail_in_hand(backend: str, tmp_path: Path) -> None:
    box = Mailbox()
    box.start()
    async with _database(backend, tmp_path) as url:
        await prepare_schema(url)
        env = server_env(
            url,
            MAIL_BACKEND="smtp",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(box.port),
            SMTP_TLS="none",
            MAIL_POLL_INTERVAL_SECONDS="0.2",
            # Long, so nothing the dead worker held comes free during the test.
            MAIL_LEASE_SECONDS="120",
            LOG_LEVEL="WARNING",
        )
        try:
            a = spawn("a", serve_argv(), env, tmp_path)
            try:
                await asyncio.to_thread(wait_until, a, lambda r: r.status_code == 200)
                box.hold()
                async with httpx.AsyncClient(base_url=a.url, timeout=30) as client:
                    assert (await register(client, "crash0")).status_code == 201
                    await box.wait_until_held()
                    # These mails wait in the outbox while worker a is busy with crash0's.
                    for n in range(1, USERS):
                        assert (await register(client, f"crash{n}")).status_code == 201
                box.hold(after=1)  # crash0's mail goes; the next conversation is held
                await box.wait_until_held(2)
                a.process.kill()  # SIGKILL: no shutdown, no give-back
                a.process.wait()
            finally:
                a.stop()
            box.release()
            assert (await _statuses(url))["sending"] == 1  # one mail in hand, not a batch

            b = spawn("b", serve_argv(), env, tmp_path)
            try:
                await asyncio.to_thread(wait_until, b, lambda r: r.status_code == 200)
                mine = {f"crash{n}@example.com" for n in range(USERS)}
                arrived = await box.wait_for(lambda m: m.to in mine, count=USERS - 1)
                deadline = time.monotonic() + 20
                while (statuses := await _statuses(url))["sent"] < USERS - 1:
                    assert time.monotonic() < deadline, statuses
                    await asyncio.sleep(0.05)
            finally:
                b.stop()
        finally:
            box.stop()
    ids = Counter(str(m.message["Message-ID"]) for m in arrived)
    assert max(ids.values()) == 1
    assert len(arrived) == USERS - 1
    assert statuses == Counter({"sent": USERS - 1, "sending": 1})
