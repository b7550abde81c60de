"""The outbox's sender against a real database and a real SMTP server: claims, leases,
retries, failures, the breaker, and what the request side leaves behind."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from app.config import Settings
from app.database import Database
from app.mail.outbox import Outbox
from app.mail.sender import MailMetrics, MailSender
from app.models import OutboxMail
from app.models.mail import MailKind
from app.utils.circuit_breaker import BreakerState
from tests.support import FakeClock, LogCapture, UserFactory, build_settings, running_app
from tests.support.mailbox import VERIFY_SUBJECT, Mailbox, read_eml_dir, smtp_overrides
from tests.support.servers import free_port


class WallClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    # The app's own sender is off: each test drives senders of its own, step by step.
    return {
        **smtp_overrides(smtp_server),
        "mail_sender_enabled": False,
        "mail_max_attempts": 3,
        "mail_circuit_breaker_threshold": 2,
        "mail_circuit_breaker_timeout": 30,
    }


def _sender(
    database: Database, settings: Settings, clock: WallClock, monotonic: FakeClock | None = None
) -> MailSender:
    return MailSender(
        database,
        settings,
        metrics=MailMetrics(CollectorRegistry()),
        clock=clock,
        monotonic=monotonic or FakeClock(),
        rand=lambda: 1.0,
    )


async def _enqueue(database: Database, clock: WallClock, *emails: str) -> None:
    async with database.session() as session:
        outbox = Outbox(session, clock=clock)
        for email in emails:
            await outbox.enqueue(MailKind.PASSWORD_CHANGED, email, {"user_id": 0})


async def _rows(database: Database) -> list[OutboxMail]:
    async with database.session() as session:
        return list((await session.execute(select(OutboxMail).order_by(OutboxMail.id))).scalars())


async def test_concurrent_senders_never_claim_the_same_mail(
    database: Database, settings: Settings
) -> None:
    clock = WallClock()
    await _enqueue(database, clock, *(f"u{n}@example.com" for n in range(30)))
    senders = [_sender(database, settings, clock) for _ in range(3)]

    batches = await asyncio.gather(*(s.claim(4) for s in senders for _ in range(4)))

    claimed = [mail.id for batch in batches for mail in batch]
    assert len(claimed) == len(set(claimed)) == 30


async def test_an_abandoned_claim_is_taken_over_once_its_lease_expires(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    clock = WallClock()
    await _enqueue(database, clock, "lease@example.com")
    crashed, other = _sender(database, settings, clock), _sender(database, settings, clock)
    (mail,) = await crashed.claim(10)

    assert await other.claim(10) == []
    clock.advance(settings.mail_lease_seconds - 1)
    assert await other.claim(10) == []
    clock.advance(2)
    (taken,) = await other.claim(10)
    assert taken.id == mail.id

    await crashed.deliver(mail)  # comes back too late: its claim is gone, nothing is sent
    await other.deliver(taken)

    delivered = await smtp_server.wait_for(lambda m: m.to == "lease@example.com")
    assert len(delivered) == 1
    (row,) = await _rows(database)
    assert row.status == "sent"


async def test_a_refused_mail_is_retried_with_backoff_then_failed_and_logged(
    database: Database, settings: Settings, smtp_server: Mailbox, logs: LogCapture
) -> None:
    clock = WallClock()
    smtp_server.rcpt_replies["busy@example.com"] = "451 4.3.0 try again later"
    await _enqueue(database, clock, "busy@example.com")
    sender = _sender(database, settings, clock)

    assert await sender.run_once() == 1
    (row,) = await _rows(database)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now + timedelta(seconds=1)  # base 1 s, full jitter
    assert await sender.run_once() == 0  # not due yet
    for _ in range(2):
        clock.advance(settings.mail_retry_max_seconds)
        assert await sender.run_once() == 1

    (row,) = await _rows(database)
    assert (row.status, row.attempts) == ("failed", 3)
    assert sender.metrics.failed._value.get() == 1
    assert sender.metrics.retried._value.get() == 2
    failed = [line for line in logs.lines() if line["message"] == "mail failed"]
    assert len(failed) == 1
    assert failed[0]["level"] == "ERROR"
    assert failed[0]["mail_id"] == row.id
    assert smtp_server.received() == []


async def test_a_permanent_refusal_fails_at_once(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    clock = WallClock()
    smtp_server.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    await _enqueue(database, clock, "gone@example.com", "fine@example.com")
    sender = _sender(database, settings, clock)

    await sender.run_once()

    gone, fine = await _rows(database)
    assert (gone.status, gone.attempts, gone.last_error) == ("failed", 1, "recipient refused (550)")
    assert fine.status == "sent"


async def test_an_unreachable_server_defers_mail_and_opens_the_breaker_without_losing_any(
    database: Database, settings: Settings
) -> None:
    port = free_port()
    down = settings.model_copy(update={"smtp_port": port})
    clock, monotonic = WallClock(), FakeClock()
    await _enqueue(database, clock, "wait@example.com")
    sender = _sender(database, down, clock, monotonic)

    for _ in range(2):  # MAIL_CIRCUIT_BREAKER_THRESHOLD
        assert await sender.run_once() == 1
        clock.advance(down.mail_retry_max_seconds)
    assert sender.breaker.state is BreakerState.OPEN
    assert await sender.run_once() == 0  # shedding: nothing is even claimed
    (row,) = await _rows(database)
    assert (row.status, row.attempts, row.deferrals) == ("pending", 0, 2)

    box = Mailbox(port)
    box.start()
    try:
        monotonic.advance(down.mail_circuit_breaker_timeout)
        assert await sender.run_once() == 1  # the half-open trial
        assert len(await box.wait_for(lambda m: m.to == "wait@example.com")) == 1
    finally:
        box.stop()
    assert sender.breaker.state.value == "closed"  # the trial's success closed it
    (row,) = await _rows(database)
    assert row.status == "sent"


async def test_a_rolled_back_request_leaves_no_mail(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    clash = await client.post(
        "/auth/register",
        json={"email": user.email, "username": "someone-else", "password": user.password},
    )
    assert clash.status_code == 409

    rows = await _rows(database)
    assert [(r.kind, r.recipient) for r in rows] == [("verify_email", user.email)]


async def test_smtp_outage_answers_at_once_and_delivers_when_the_server_comes_up(
    settings: Settings,
) -> None:
    port = free_port()
    outage = settings.model_copy(
        update={
            "smtp_port": port,
            "mail_sender_enabled": True,
            "mail_retry_max_seconds": 0.3,
            "mail_circuit_breaker_timeout": 0.3,
        }
    )
    box = Mailbox(port)
    async with running_app(outage) as (app, client):
        started = time.perf_counter()
        registered = await client.post(
            "/auth/register",
            json={"email": "patient@example.com", "username": "patient", "password": "a long one!"},
        )
        forgot = await client.post("/auth/password/forgot", json={"email": "patient@example.com"})
        elapsed = time.perf_counter() - started
        assert (registered.status_code, forgot.status_code) == (201, 202)
        assert elapsed < outage.smtp_timeout  # no request waited for the mail server
        await _until(app, lambda rows: all(r.deferrals >= 1 for r in rows) and len(rows) == 2)

        box.start()
        try:
            mails = await box.wait_for(lambda m: m.to == "patient@example.com", count=2)
            await _until(app, lambda rows: all(r.status == "sent" for r in rows))
            assert sorted(m.subject for m in box.received()) == sorted(
                [VERIFY_SUBJECT, "Reset your password"]
            )
            assert len(mails) == 2
        finally:
            box.stop()


async def _until(app: FastAPI, condition: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition(await _rows(app.state.database)):
        assert time.monotonic() < deadline, [
            (r.status, r.attempts, r.deferrals) for r in await _rows(app.state.database)
        ]
        await asyncio.sleep(0.05)


# A test server on localhost without TLS: aiosmtpd warns about AUTH over plain text.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_login_is_used_when_a_username_is_set(
    database: Database, settings: Settings
) -> None:
    box = Mailbox(credentials=("mailer", "s3cret-smtp-password"))
    box.start()
    try:
        clock = WallClock()
        good = settings.model_copy(
            update={
                "smtp_port": box.port,
                "smtp_username": "mailer",
                "smtp_password": "s3cret-smtp-password",
            }
        )
        good = Settings.model_validate(good.model_dump())
        await _enqueue(database, clock, "auth@example.com")
        await _sender(database, good, clock).run_once()
        assert len(await box.wait_for()) == 1
        assert box.logins == [True]

        bad = Settings.model_validate(
            {**good.model_dump(), "smtp_password": "wrong", "smtp_timeout": 1}
        )
        await _enqueue(database, clock, "refused@example.com")
        await _sender(database, bad, clock).run_once()
        rows = await _rows(database)
        assert (rows[1].status, rows[1].deferrals) == ("pending", 1)
        assert len(box.received()) == 1
    finally:
        box.stop()


async def test_the_file_backend_writes_one_eml_per_mail_in_the_mail_directory(
    database: Database, settings: Settings
) -> None:
    to_files = settings.model_copy(update={"mail_backend": "file"})
    clock = WallClock()
    await _enqueue(database, clock, "file@example.com", "other@example.com")

    await _sender(database, to_files, clock).run_once()

    directory = to_files.default_mail_dir()
    files = sorted(p for p in directory.iterdir())
    assert [p.suffix for p in files] == [".eml", ".eml"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    mails = read_eml_dir(directory)
    assert sorted(m.to for m in mails) == ["file@example.com", "other@example.com"]


def test_the_default_mail_directory_is_beside_the_sqlite_file(tmp_path: Any) -> None:
    settings = build_settings(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'auth.db'}", tmp_path)
    settings = settings.model_copy(update={"mail_file_dir": None})
    assert settings.default_mail_dir() == (tmp_path / "db" / "mail").resolve()


async def test_the_readme_flow_finds_the_reset_link_in_the_raw_eml_file(
    settings: Settings,
) -> None:
    to_files = settings.model_copy(update={"mail_backend": "file", "mail_sender_enabled": True})
    directory = to_files.default_mail_dir()
    async with running_app(to_files) as (_, client):
        await client.post(
            "/auth/register",
            json={"email": "eml@example.com", "username": "eml", "password": "a long one!"},
        )
        await client.post("/auth/password/forgot", json={"email": "eml@example.com"})
        deadline = time.monotonic() + 20
        while len(list(directory.glob("*.eml"))) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # What the README's grep reads: the raw file, not a decoded message.
        raw = b"".join(p.read_bytes() for p in sorted(directory.glob("*.eml")))
        found = re.findall(rb"http://[^ \s]*reset-password\?token=([A-Za-z0-9_-]+)", raw)
        assert len(set(found)) == 1
        reset = await client.post(
            "/auth/password/reset",
            json={"token": found[0].decode(), "new_password": "the new long one"},
        )
        assert reset.status_code == 204
