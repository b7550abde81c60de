"""Two real `authsvc serve` processes on one database share one outbox: every mail goes
out exactly once, and a one-time token is used once, whichever process it meets."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import OutboxMail
from tests.support import BACKENDS, PASSWORD, prepare_schema, prepared
from tests.support.mailbox import RESET_SUBJECT, VERIFY_SUBJECT, Mailbox
from tests.support.markers import starts
from tests.support.processes import ServerProcess, runner_env, serve_pair

pytestmark = pytest.mark.timeout(300)
USERS = 12


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    mailbox: Mailbox
    database_url: str


async def _all_sent(url: str, count: int, within: float = 30.0) -> None:
    engine = create_async_engine(url)
    deadline = time.monotonic() + within
    try:
        while True:
            async with engine.connect() as connection:
                statuses = Counter((await connection.execute(select(OutboxMail.status))).scalars())
            if statuses["sent"] >= count and set(statuses) == {"sent"}:
                return
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
@starts("process")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"mail-scale-out-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
    asyncio.run(prepare_schema(url))
    prepared.add(url)
    mailbox = Mailbox()
    mailbox.start()
    env = runner_env()
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="development",
        SECRET_KEY_FILE=str(workdir / ".secret_key"),
        LOG_LEVEL="WARNING",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        MAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mailbox.port),
        SMTP_TLS="none",
        # Both senders poll often and take small batches: they compete for every row.
        MAIL_POLL_INTERVAL_SECONDS="0.05",
        MAIL_BATCH_SIZE="2",
        RATE_LIMIT_REGISTER_IP="10000/minute",
        RATE_LIMIT_PASSWORD_RESET="100/hour",
        RATE_LIMIT_PASSWORD_RESET_IP="10000/hour",
    )
    try:
        with serve_pair(env, workdir) as (a, b):
            yield Pair(a, b, mailbox, url)
    finally:
        mailbox.stop()


async def test_every_mail_of_both_processes_is_delivered_exactly_once(pair: Pair) -> None:
    emails = [f"once{n}@example.com" for n in range(USERS)]
    async with (
        httpx.AsyncClient(base_url=pair.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=pair.b.url, timeout=30) as b,
    ):
        registered = await asyncio.gather(
            *(
                (a if n % 2 else b).post(
                    "/auth/register",
                    json={"email": email, "username": f"once{n}", "password": PASSWORD},
                )
                for n, email in enumerate(emails)
            )
        )
        assert all(r.status_code == 201 for r in registered)
        asked = await asyncio.gather(
            *(
                client.post("/auth/password/forgot", json={"email": email})
                for email in emails
                for client in (a, b)
            )
        )
        assert all(r.status_code == 202 for r in asked)

    mine = {*emails}
    expected = USERS * 3  # a verification and two reset links each
    await pair.mailbox.wait_for(lambda m: m.to in mine, count=expected)
    # Once every row is recorded as sent, no sender can claim one again: what arrived is all.
    await _all_sent(pair.database_url, expected)
    delivered = pair.mailbox.received(lambda m: m.to in mine)
    ids = Counter(str(m.message["Message-ID"]) for m in delivered)
    assert len(delivered) == expected
    assert max(ids.values()) == 1
    per_address = Counter((m.to, m.subject) for m in delivered)
    assert set(per_address.values()) == {1, 2}
    assert all(per_address[(e, VERIFY_SUBJECT)] == 1 for e in emails)
    assert all(per_address[(e, RESET_SUBJECT)] == 2 for e in emails)


async def test_one_token_raced_at_both_processes_is_used_once(pair: Pair) -> None:
    email = "raced@example.com"
    async with (
        httpx.AsyncClient(base_url=pair.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=pair.b.url, timeout=30) as b,
    ):
        await a.post(
            "/auth/register", json={"email": email, "username": "raced", "password": PASSWORD}
        )
        await b.post("/auth/password/forgot", json={"email": email})
        token = (await pair.mailbox.one(email, RESET_SUBJECT)).token
        first, second = await asyncio.gather(
            a.post("/auth/password/reset", json={"token": token, "new_password": "from worker a!"}),
            b.post("/auth/password/reset", json={"token": token, "new_password": "from worker b!"}),
        )
    assert sorted([first.status_code, second.status_code]) == [204, 400]
