"""The outbox's background sender: claims due mails, renders them, delivers, records.

Exactly once across processes and hosts: a sender claims one row at a time with one
conditional UPDATE (only a row still due matches; on PostgreSQL the candidate is picked
`FOR UPDATE SKIP LOCKED`, so concurrent senders take different rows instead of queueing on
the same one). A claim is a lease (MAIL_LEASE_SECONDS): the sender renews it before it
renders and every third of a lease while the SMTP conversation runs, so only a sender that
died leaves a row behind, and that row is due again once its lease expired. Nothing else
is held: a sender claims the next mail only when the previous one is recorded, so a crash
or a database error strands at most the mail in hand.

An outcome the sender could not write (the database went away after the SMTP server had
answered) is kept in memory and written before anything else is claimed, as soon as the
database answers again; a "sent" mark wins over any claim, so a sender that took the row
over in between finds it sent when it renews and never sends it. Delivery is at-least-once
in the windows that remain: the process dies between the server's answer and the record,
or the database stays away for longer than the rest of the lease and another sender
reaches it first. The repeat carries the same Message-ID, by which receiving systems drop
duplicates (RFC 1047 describes why no SMTP client can close the first window).

Mails with a link get their one-time token here, at rendering time: the outbox never holds
a token, and the link's lifetime starts when the mail leaves rather than when it was
asked for. A password-reset or verification request for an address without an active
account is dropped here, long after the request answered, which is what makes the request
itself look the same for every address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import CursorResult, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import AuditLog, Event
from app.config import Settings
from app.core.errors import CircuitBreakerOpenException, ServiceUnavailableException
from app.database import Database, is_infrastructure_error
from app.mail.backends import (
    FileBackend,
    MailBackend,
    MailRejected,
    MailServerUnavailable,
    SmtpBackend,
)
from app.mail.composers import Job, composer_of
from app.mail.messages import build_message, sender_domain
from app.mail.outbox import OutboxQueries
from app.models.mail import MailKind, MailStatus, OutboxMail
from app.recovery.one_time_tokens import OneTimeTokens
from app.utils.circuit_breaker import BreakerState, CircuitBreaker
from app.utils.clock import utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

_ERROR_CHARS = 200


def retry_delay(
    tries: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after `tries` failed ones: exponential, with jitter in
    the upper half of the step (so senders that failed together spread out), capped."""
    step = min(cap, base * float(2 ** max(0, min(tries - 1, 32))))
    return min(cap, step / 2 + step / 2 * rand())


# Sent mails are kept this long for `authsvc mail list`; failed ones until retried. A sent
# notice of a deletion goes at the next purge: it is the last copy of a deleted address.
SENT_RETENTION = timedelta(days=7)


async def purge_mail_and_tokens(database: Database, *, now: datetime) -> None:
    """Delete expired one-time tokens and sent mails past their retention."""
    async with database.session() as session:
        tokens = await OneTimeTokens(session).purge_expired(now)
        result = await session.execute(
            delete(OutboxMail)
            .where(
                OutboxMail.status == MailStatus.SENT.value,
                (OutboxMail.sent_at < now - SENT_RETENTION)
                | (OutboxMail.kind == MailKind.ACCOUNT_DELETED.value),
            )
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
    if tokens or result.rowcount:
        log.info("expired tokens and old mails purged", tokens=tokens, mails=result.rowcount)


class MailMetrics:
    """The sender's series, in the application's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        ns = "authsvc"
        self.sent = Counter("mail_sent", "Mails delivered", namespace=ns, registry=registry)
        self.retried = Counter(
            "mail_retried",
            "Deliveries that failed and were rescheduled",
            namespace=ns,
            registry=registry,
        )
        self.failed = Counter(
            "mail_failed", "Mails given up on (marked failed)", namespace=ns, registry=registry
        )
        self.dropped = Counter(
            "mail_dropped",
            "Requested mails with nobody to send to (unknown, inactive or verified account)",
            namespace=ns,
            registry=registry,
        )
        self.pending = Gauge(
            "mail_pending",
            "Mails waiting in the outbox (all processes)",
            namespace=ns,
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    id: int
    kind: str
    recipient: str
    subject: str
    data: dict[str, Any]
    attempts: int
    deferrals: int
    created_at: datetime
    claim_id: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of a mail, to be written: `write` is idempotent, and conditional on the
    row being the one the outcome is about."""

    mail_id: int
    name: str
    write: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Rendered:
    message: EmailMessage
    token_id: int | None
    # The audit event its delivery records: (event, user id, details); None for notices.
    audit: tuple[Event, int, dict[str, object]] | None = None


def build_backend(settings: Settings) -> MailBackend:
    if settings.mail_backend == "smtp":
        return SmtpBackend(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout,
        )
    return FileBackend(settings.default_mail_dir())


class MailRenderer:
    """Turns a claimed job into a message, issuing its token; None when it is to be dropped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def render(
        self, session: AsyncSession, mail: ClaimedMail, now: datetime
    ) -> tuple[Rendered | None, str]:
        """The message and its token's id, or None and the reason it is dropped."""
        job = Job(recipient=mail.recipient, data=mail.data)
        composed = await composer_of(MailKind(mail.kind))(session, self.settings, job, now)
        if isinstance(composed, str):
            return None, composed
        content, token_id, audit = composed.content, composed.token_id, composed.audit
        message = build_message(
            mail_from=self.settings.mail_from,
            to=mail.recipient,
            subject=mail.subject,
            content=content,
            # Stable per outbox row: a repeat after a crash carries the same id.
            message_id=f"<mail-{mail.id}.{int(mail.created_at.timestamp())}"
            f"@{sender_domain(self.settings.mail_from)}>",
            date=now,
        )
        return Rendered(message, token_id, audit), ""


class MailSender:
    """Delivers the outbox: one loop per process, started and stopped by the lifespan."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        metrics: MailMetrics,
        backend: MailBackend | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        self.backend = backend or build_backend(settings)
        self.renderer = MailRenderer(settings)
        self.clock = clock
        self.rand = rand
        self.lease = timedelta(seconds=settings.mail_lease_seconds)
        # Three renewals per lease: one lost to a slow database still leaves time for the next.
        self.heartbeat_seconds = settings.mail_lease_seconds / 3
        breaker_args: dict[str, Any] = {} if monotonic is None else {"clock": monotonic}
        # Its own breaker: a mail server outage must never shed the API's database calls.
        # Never open longer than the retry policy would hold one mail.
        self.breaker = CircuitBreaker(
            "mail",
            failure_threshold=settings.mail_circuit_breaker_threshold,
            recovery_timeout=min(
                settings.mail_circuit_breaker_timeout, settings.mail_retry_max_seconds
            ),
            initial_timeout=settings.mail_circuit_breaker_initial_timeout,
            is_failure=lambda error: isinstance(error, MailServerUnavailable),
            **breaker_args,
        )
        # Outcomes decided but not yet written (the database was away), oldest first.
        self._unrecorded: list[_Outcome] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        """Stop after the mail in hand, and write what is still unrecorded if the database
        lets us.

        Cancelled only if that mail takes longer than a send may (SMTP_TIMEOUT plus a
        margin); a mail cut short that way is taken over when its lease expires.
        """
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        if task is not None:
            try:
                async with asyncio.timeout(self.settings.smtp_timeout + 5):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._unrecorded:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.settings.smtp_timeout):
                    await self.record_pending()
        await self.backend.close()
        for outcome in self._unrecorded:
            # Its lease will expire and the mail go out again: say which one, and why.
            log.error(
                "mail outcome lost at shutdown", mail_id=outcome.mail_id, outcome=outcome.name
            )

    @property
    def unrecorded(self) -> int:
        """Outcomes waiting for the database (mails sent or tried, not yet written)."""
        return len(self._unrecorded)

    def wake(self) -> None:
        """A mail was committed in this process: look now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the cycle, not after it: a mail committed while the cycle
            # runs leaves the event set, and the wait below returns at once.
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception as error:  # the database may be down: try again later
                log.warning("mail sender cycle failed", error_type=type(error).__name__)
                handled = 0
            if handled or self._stopping:
                continue
            wait = self.settings.mail_poll_interval_seconds
            if self.breaker.state is BreakerState.OPEN:
                wait = max(wait, self.breaker.retry_after())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that stops the sender when a wake-up arrives at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    # -- one cycle ---------------------------------------------------------------------

    async def run_once(self) -> int:
        """Write what is unrecorded, then claim and deliver due mails one by one, up to
        MAIL_BATCH_SIZE; returns how many were claimed."""
        await self.record_pending()
        handled = 0
        # One at a time: a crash or a database error strands at most the mail in hand.
        # While half-open, each mail is a trial; its verdict decides whether the next goes.
        while (
            handled < self.settings.mail_batch_size
            and not self._stopping
            and self.breaker.state is not BreakerState.OPEN
        ):
            claimed = await self.claim(1)
            if not claimed:
                break
            handled += 1
            await self.deliver(claimed[0])
        await self.update_pending()
        return handled

    async def claim(self, limit: int) -> list[ClaimedMail]:
        """Take up to `limit` due mails under a new lease (see the module's docstring)."""
        now = self.clock()
        claim_id = uuid.uuid4().hex
        due = or_(
            and_(OutboxMail.status == MailStatus.PENDING.value, OutboxMail.next_attempt_at <= now),
            and_(OutboxMail.status == MailStatus.SENDING.value, OutboxMail.lease_until < now),
        )
        async with self.database.session() as session:
            candidates = select(OutboxMail.id).where(due).order_by(OutboxMail.id).limit(limit)
            if session.get_bind().dialect.name == "postgresql":
                # A materialised CTE runs once. As a plain IN subquery PostgreSQL may run it
                # again for each row it updates, and SKIP LOCKED then passes over the rows
                # this very statement just changed: one claim took every due row.
                found = (
                    candidates.with_for_update(skip_locked=True)
                    .cte("due_mail")
                    .prefix_with("MATERIALIZED")
                )
                candidates = select(found.c.id)
            stmt = (
                update(OutboxMail)
                .where(OutboxMail.id.in_(candidates.scalar_subquery()), due)
                .values(
                    status=MailStatus.SENDING.value, lease_until=now + self.lease, claim_id=claim_id
                )
                .returning(
                    OutboxMail.id,
                    OutboxMail.kind,
                    OutboxMail.recipient,
                    OutboxMail.subject,
                    OutboxMail.data,
                    OutboxMail.attempts,
                    OutboxMail.deferrals,
                    OutboxMail.created_at,
                )
                .execution_options(synchronize_session=False)
            )
            rows = (await session.execute(stmt)).all()
        claimed = [
            ClaimedMail(
                id=row.id,
                kind=row.kind,
                recipient=row.recipient,
                subject=row.subject,
                data=dict(row.data or {}),
                attempts=row.attempts,
                deferrals=row.deferrals,
                created_at=row.created_at,
                claim_id=claim_id,
            )
            for row in rows
        ]
        return sorted(claimed, key=lambda mail: mail.id)

    async def deliver(self, mail: ClaimedMail) -> None:
        """Render, send and record one claimed mail.

        A database error before the send gives the mail back to the queue as soon as the
        database answers; one after it keeps the outcome until it can be written. Either
        way the error propagates, and the cycle ends.
        """
        now = self.clock()
        try:
            async with self.database.session() as session:
                if not await self._renew(session, mail, now):
                    log.warning("mail claim lost", mail_id=mail.id)
                    return
                try:
                    rendered, reason = await self.renderer.render(session, mail, now)
                except Exception as error:
                    if is_infrastructure_error(error):
                        raise  # the session turns it into DatabaseException
                    log.error("mail rendering failed", mail_id=mail.id, exc_info=error)
                    await session.rollback()
                    rendered, reason = None, "render"
                else:
                    if rendered is None:
                        await session.execute(
                            delete(OutboxMail).where(
                                OutboxMail.id == mail.id, OutboxMail.claim_id == mail.claim_id
                            )
                        )
                        log.info("mail dropped", mail_id=mail.id, kind=mail.kind, reason=reason)
                        self.metrics.dropped.inc()
                        return
        except ServiceUnavailableException:
            # Nothing left: the render rolled back, so no token exists for it either.
            self._unrecorded.append(_Outcome(mail.id, "release", lambda: self._release([mail])))
            raise
        if rendered is None:
            await self._settle(
                mail.id,
                "failure",
                lambda: self._record_failure(mail, None, MailRejected("render", permanent=False)),
            )
            return
        # The token is committed before the message leaves: its link works on arrival.
        try:
            async with self.breaker.guard():
                await self._send_holding_lease(mail, rendered.message)
        except CircuitBreakerOpenException:
            token_id = rendered.token_id
            await self._settle(mail.id, "release", lambda: self._release([mail], token_id=token_id))
            return
        except Exception as error:
            token_id, failure = rendered.token_id, error
            await self._settle(
                mail.id, "failure", lambda: self._record_failure(mail, token_id, failure)
            )
            return
        sent_at = self.clock()  # now, not when a database outage lets it be written
        await self._settle(mail.id, "sent", lambda: self._record_sent(mail, rendered, sent_at))

    async def record_pending(self) -> None:
        """Write the outcomes kept while the database was away, oldest first; raises (and
        keeps the rest) if it is still away."""
        while self._unrecorded:
            outcome = self._unrecorded[0]
            try:
                await outcome.write()
            except ServiceUnavailableException:
                raise
            except Exception as error:  # not the database being away: retrying will not help
                log.error(
                    "mail outcome not recorded",
                    mail_id=outcome.mail_id,
                    outcome=outcome.name,
                    exc_info=error,
                )
            self._unrecorded.pop(0)

    async def _settle(self, mail_id: int, name: str, write: Callable[[], Awaitable[None]]) -> None:
        """Write an outcome now, or keep it for when the database answers again."""
        try:
            await write()
        except ServiceUnavailableException:
            log.warning(
                "mail outcome kept until the database answers", mail_id=mail_id, outcome=name
            )
            self._unrecorded.append(_Outcome(mail_id, name, write))
            raise

    async def _send_holding_lease(self, mail: ClaimedMail, message: EmailMessage) -> None:
        """Send, renewing the lease while the SMTP conversation runs: a slow server must
        not let another sender take over a mail that is on its way."""
        sending = asyncio.ensure_future(self.backend.send(message, name=f"mail-{mail.id:010d}"))
        try:
            while True:
                done, _ = await asyncio.wait({sending}, timeout=self.heartbeat_seconds)
                if done:
                    sending.result()
                    return
                try:
                    async with self.database.session() as session:
                        await self._renew(session, mail, self.clock())
                except Exception as error:  # the lease runs on; the send must not stop
                    log.warning(
                        "mail lease not renewed", mail_id=mail.id, error_type=type(error).__name__
                    )
        finally:
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending

    async def _record_sent(self, mail: ClaimedMail, rendered: Rendered, sent_at: datetime) -> None:
        async with self.database.session() as session:
            # Not conditional on the claim: the mail has left, whoever holds the row now.
            # A sender that took it over meanwhile finds it sent when it renews. The row is
            # named as its Message-ID names it (id and creation): SQLite reuses the id of a
            # deleted row, and a deleted job's new neighbour must not be marked sent.
            result = await session.execute(
                update(OutboxMail)
                .where(
                    OutboxMail.id == mail.id,
                    OutboxMail.created_at == mail.created_at,
                    OutboxMail.status != MailStatus.SENT.value,
                )
                .values(
                    status=MailStatus.SENT.value,
                    sent_at=sent_at,
                    last_error=None,
                    lease_until=None,
                    claim_id=None,
                )
                .execution_options(synchronize_session=False)
            )
            assert isinstance(result, CursorResult)
            recorded = result.rowcount == 1
            if recorded and rendered.audit is not None:
                # Once, when the mail has left (not per failed attempt), with the sent mark.
                event, user_id, details = rendered.audit
                AuditLog(session, clock=lambda: sent_at).record(
                    event, user_id=user_id, details=details
                )
        if recorded:
            self.metrics.sent.inc()
            log.info("mail sent", mail_id=mail.id, kind=mail.kind)

    async def update_pending(self) -> None:
        async with self.database.session() as session:
            self.metrics.pending.set(await OutboxQueries(session).pending_count())

    # -- bookkeeping ---------------------------------------------------------------------

    async def _renew(self, session: AsyncSession, mail: ClaimedMail, now: datetime) -> bool:
        stmt = (
            update(OutboxMail)
            .where(
                OutboxMail.id == mail.id,
                OutboxMail.claim_id == mail.claim_id,
                OutboxMail.status == MailStatus.SENDING.value,
            )
            .values(lease_until=now + self.lease)
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def _finish(
        self, session: AsyncSession, mail: ClaimedMail, *, status: MailStatus, **values: Any
    ) -> bool:
        stmt = (
            update(OutboxMail)
            .where(
                OutboxMail.id == mail.id,
                OutboxMail.claim_id == mail.claim_id,
                OutboxMail.status == MailStatus.SENDING.value,
            )
            .values(status=status.value, lease_until=None, claim_id=None, **values)
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(stmt)
        assert isinstance(result, CursorResult)
        if result.rowcount != 1:
            log.warning("mail claim lost", mail_id=mail.id)
            return False
        return True

    async def _release(self, mails: list[ClaimedMail], *, token_id: int | None = None) -> None:
        """Give claimed mails back untried (the breaker opened, the database failed before
        the send): no attempt is counted, and they are due at once."""
        now = self.clock()
        async with self.database.session() as session:
            if token_id is not None:
                await OneTimeTokens(session).discard(token_id)
            for mail in mails:
                await self._finish(session, mail, status=MailStatus.PENDING, next_attempt_at=now)

    async def _record_failure(
        self, mail: ClaimedMail, token_id: int | None, error: BaseException
    ) -> None:
        now = self.clock()
        reason = (str(error) or type(error).__name__)[:_ERROR_CHARS]
        attempts, deferrals = mail.attempts, mail.deferrals
        if isinstance(error, MailServerUnavailable):
            # The server was not reached: the mail waits for it, however long (API.md: an
            # outage loses no mail). Only refusals count towards MAIL_MAX_ATTEMPTS.
            deferrals += 1
            give_up = False
        else:
            attempts += 1
            permanent = isinstance(error, MailRejected) and error.permanent
            give_up = permanent or attempts >= self.settings.mail_max_attempts
        async with self.database.session() as session:
            if token_id is not None:
                # Nobody holds that token; the next try issues a new one.
                await OneTimeTokens(session).discard(token_id)
            if give_up:
                recorded = await self._finish(
                    session,
                    mail,
                    status=MailStatus.FAILED,
                    attempts=attempts,
                    deferrals=deferrals,
                    last_error=reason,
                )
            else:
                delay = retry_delay(
                    attempts + deferrals,
                    base=self.settings.mail_retry_base_seconds,
                    cap=self.settings.mail_retry_max_seconds,
                    rand=self.rand,
                )
                recorded = await self._finish(
                    session,
                    mail,
                    status=MailStatus.PENDING,
                    attempts=attempts,
                    deferrals=deferrals,
                    last_error=reason,
                    next_attempt_at=now + timedelta(seconds=delay),
                )
        if not recorded:
            return
        if give_up:
            self.metrics.failed.inc()
            # The job's facts only: never the message, its link or its token.
            log.error(
                "mail failed", mail_id=mail.id, kind=mail.kind, attempts=attempts, reason=reason
            )
        else:
            self.metrics.retried.inc()
            log.warning(
                "mail delivery deferred",
                mail_id=mail.id,
                kind=mail.kind,
                attempts=attempts,
                deferrals=deferrals,
                reason=reason,
            )
