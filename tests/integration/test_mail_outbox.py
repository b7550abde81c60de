"""The outbox's sender against a real database and a real SMTP server: claims, leases,
retries, failures, the breaker, and what the request side leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
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
from app.core.errors import CircuitBreakerOpenException, DatabaseException
from app.database import Database
from app.mail.outbox import Outbox
from app.mail.sender import MailMetrics, MailSender
from app.models import OutboxMail
from app.models.mail import MailKind
from app.utils.circuit_breaker import BreakerState, CircuitBreaker
from tests.support import (
    FakeClock,
    LogCapture,
    UserFactory,
    build_settings,
    register,
    running_app,
)
from tests.support.backends import backend_independent
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


async def test_a_claim_takes_no_more_mails_than_asked(
    database: Database, settings: Settings
) -> None:
    clock = WallClock()
    await _enqueue(database, clock, *(f"limit{n}@example.com" for n in range(5)))
    sender = _sender(database, settings, clock)

    assert [m.recipient for m in await sender.claim(1)] == ["limit0@example.com"]
    assert [m.recipient for m in await sender.claim(2)] == [
        "limit1@example.com",
        "limit2@example.com",
    ]
    assert [row.status for row in await _rows(database)].count("pending") == 2


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


async def _away(breaker: CircuitBreaker) -> None:
    """The database goes away for one process: its breaker counts failures and opens."""
    for _ in range(breaker.failure_threshold):
        with contextlib.suppress(DatabaseException):
            async with breaker.guard():
                raise DatabaseException()
    assert breaker.state is BreakerState.OPEN


@contextlib.asynccontextmanager
async def _own_database(settings: Settings, monotonic: FakeClock) -> Any:
    """A second process's view of the same database, with a breaker of its own."""
    database = Database(settings, clock=monotonic)
    try:
        yield database
    finally:
        await database.dispose()


async def test_a_slow_server_does_not_let_another_sender_take_the_mail_over(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    clock = WallClock()
    slow = settings.model_copy(update={"mail_lease_seconds": 0.3})  # renewed every 0.1 s
    await _enqueue(database, clock, "slow@example.com")
    sending, other = _sender(database, slow, clock), _sender(database, slow, clock)
    smtp_server.hold()
    (mail,) = await sending.claim(1)
    delivery = asyncio.create_task(sending.deliver(mail))
    await smtp_server.wait_until_held()

    clock.advance(10 * slow.mail_lease_seconds)  # far past the lease taken at the claim
    deadline = time.monotonic() + 20
    while (await _rows(database))[0].lease_until != clock.now + sending.lease:
        assert time.monotonic() < deadline, "the lease was never renewed during the send"
        await asyncio.sleep(0.02)
    assert await other.claim(1) == []  # still held: its sender is alive and talking

    smtp_server.release()
    await delivery
    assert len(await smtp_server.wait_for(lambda m: m.to == "slow@example.com")) == 1
    (row,) = await _rows(database)
    assert row.status == "sent"


async def test_a_mail_is_recorded_as_soon_as_the_server_accepts_it(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    """The record does not wait for the goodbye (QUIT): the time in which a crash sends a
    mail twice is as short as the record itself."""
    clock = WallClock()
    await _enqueue(database, clock, "quick@example.com")
    patient = settings.model_copy(update={"smtp_timeout": 60})  # a goodbye may take that long
    sender = _sender(database, patient, clock)
    smtp_server.hold(at="QUIT")
    try:
        cycle = asyncio.create_task(sender.run_once())
        await smtp_server.wait_until_held()
        deadline = time.monotonic() + 10
        while (await _rows(database))[0].status != "sent":
            assert time.monotonic() < deadline, "not recorded while the goodbye is pending"
            await asyncio.sleep(0.02)
        assert len(smtp_server.received()) == 1
    finally:
        smtp_server.release()
    assert await cycle == 1
    await sender.stop()  # the goodbye finishes


async def test_a_mail_sent_while_the_database_is_away_is_recorded_once_it_answers(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    """The SMTP server accepted the mail, then the sender's database went away: the sender
    keeps the outcome and writes it first thing when the database answers, even after
    another sender took the expired lease over, which then sends nothing."""
    clock, monotonic = WallClock(), FakeClock()
    await _enqueue(database, clock, "once@example.com")
    async with _own_database(settings, monotonic) as elsewhere:
        sending = _sender(elsewhere, settings, clock, monotonic)
        other = _sender(database, settings, clock)
        smtp_server.hold()
        (mail,) = await sending.claim(1)
        delivery = asyncio.create_task(sending.deliver(mail))
        await smtp_server.wait_until_held()
        await _away(elsewhere.breaker)
        smtp_server.release()
        with pytest.raises(CircuitBreakerOpenException):
            await delivery
        assert len(await smtp_server.wait_for(lambda m: m.to == "once@example.com")) == 1
        sent_at = clock.now

        clock.advance(settings.mail_lease_seconds + 1)
        (taken,) = await other.claim(1)  # the lease expired: taken over ...
        monotonic.advance(settings.circuit_breaker_timeout)
        assert await sending.run_once() == 0  # ... but the outcome is written first
        await other.deliver(taken)  # finds the mail sent when it renews

    assert len(smtp_server.received(lambda m: m.to == "once@example.com")) == 1
    assert sending.unrecorded == 0
    (row,) = await _rows(database)
    assert (row.status, row.sent_at) == ("sent", sent_at)  # when it left, not when written
    assert sending.metrics.sent._value.get() == 1
    assert other.metrics.sent._value.get() == 0


async def test_a_database_error_strands_only_the_mail_in_hand(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    clock, monotonic = WallClock(), FakeClock()
    await _enqueue(database, clock, *(f"batch{n}@example.com" for n in range(3)))
    async with _own_database(settings, monotonic) as elsewhere:
        sending = _sender(elsewhere, settings, clock, monotonic)
        other = _sender(database, settings, clock)
        smtp_server.hold()
        cycle = asyncio.create_task(sending.run_once())
        await smtp_server.wait_until_held()
        await _away(elsewhere.breaker)
        smtp_server.release()
        with pytest.raises(CircuitBreakerOpenException):
            await cycle

        # The rest of the batch was never claimed: another sender delivers it right away.
        rest = await other.claim(10)
        assert sorted(m.recipient for m in rest) == ["batch1@example.com", "batch2@example.com"]
        for mail in rest:
            await other.deliver(mail)
        monotonic.advance(settings.circuit_breaker_timeout)
        await sending.run_once()

    statuses = [row.status for row in await _rows(database)]
    assert statuses == ["sent", "sent", "sent"]
    assert len(smtp_server.received()) == 3


async def test_a_mail_the_database_failed_before_sending_goes_back_at_once(
    database: Database, settings: Settings, smtp_server: Mailbox
) -> None:
    clock, monotonic = WallClock(), FakeClock()
    await _enqueue(database, clock, "back@example.com")
    async with _own_database(settings, monotonic) as elsewhere:
        sending = _sender(elsewhere, settings, clock, monotonic)
        other = _sender(database, settings, clock)
        (mail,) = await sending.claim(1)
        await _away(elsewhere.breaker)
        with pytest.raises(CircuitBreakerOpenException):
            await sending.deliver(mail)
        assert await other.claim(1) == []  # still under the lease ...
        monotonic.advance(settings.circuit_breaker_timeout)
        # ... until the database answers: given back and sent at once, no lease to wait out.
        assert await sending.run_once() == 1
    assert len(await smtp_server.wait_for(lambda m: m.to == "back@example.com")) == 1
    (row,) = await _rows(database)
    assert (row.status, row.attempts, row.deferrals) == ("sent", 0, 0)


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


# The breaker's timing is the sender's, between it and the SMTP server: the database only
# holds the rows, which every other test here runs on both backends.
@backend_independent
async def test_after_a_long_smtp_outage_mail_leaves_within_seconds_of_the_server_return(
    settings: Settings,
) -> None:
    """The sender's breaker with its default timing: open periods of 1, 2, 4, then at most
    MAIL_CIRCUIT_BREAKER_TIMEOUT (5) seconds, so the first mail after an outage waits for
    no more than that, whatever the outage's length."""
    defaults = {
        name: Settings.model_fields[name].default
        for name in (
            "mail_circuit_breaker_threshold",
            "mail_circuit_breaker_timeout",
            "mail_circuit_breaker_initial_timeout",
        )
    }
    port = free_port()
    outage = settings.model_copy(
        update={
            **defaults,
            "smtp_port": port,
            "mail_sender_enabled": True,
            "mail_retry_max_seconds": 10,
        }
    )
    box = Mailbox(port)
    async with running_app(outage) as (app, client):
        failed_trials: list[BreakerState] = []
        app.state.mail_sender.breaker.add_listener(
            lambda _, old, new: (
                failed_trials.append(new)
                if (old, new) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
                else None
            )
        )
        for n in range(6):
            assert (await register(client, f"back{n}")).status_code == 201
        deadline = time.monotonic() + 30
        while len(failed_trials) < 2:  # open, and two trials met the outage: 3 s or more
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        box.start()
        back = time.monotonic()
        try:
            mine = {f"back{n}@example.com" for n in range(6)}
            first = await box.wait_for(lambda m: m.to in mine, within=30)
            assert first[0].received_at - back < outage.mail_circuit_breaker_timeout + 2
            every = await box.wait_for(
                lambda m: m.to in mine, count=6, within=outage.mail_retry_max_seconds + 10
            )
            assert sorted(m.to for m in every) == sorted(mine)
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
