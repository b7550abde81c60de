"""The outbox's background sender: claims due mails, renders them, delivers, records.

Exactly once across processes and hosts: a sender claims rows with one conditional UPDATE
(only rows still due match; on PostgreSQL the candidates are picked `FOR UPDATE SKIP
LOCKED`, so concurrent senders take different rows instead of queueing on the same ones).
A claim is a lease: the sender renews it before each mail, and a row whose lease expired
(its sender crashed) is due again and taken over. Marking a mail sent is conditional on
the claim too, so a sender that lost its lease cannot overwrite the new owner's outcome.

A sender that crashes after the server accepted a message but before recording it sends
it again once the lease expires: delivery is at-least-once in that one window, and the
repeat carries the same Message-ID, by which receiving systems drop duplicates.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import CursorResult, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import AuditLog, Event
from app.config import Settings
from app.core.errors import CircuitBreakerOpenException
from app.core.jwt import utc_now
from app.database import Database
from app.mail.backends import (
    FileBackend,
    MailBackend,
    MailRejected,
    MailServerUnavailable,
    SmtpBackend,
)
from app.mail.messages import Content, build_message, sender_domain
from app.mail.outbox import OutboxQueries
from app.models.mail import MailKind, MailStatus, OutboxMail
from app.models.one_time_token import TokenPurpose
from app.models.user import User
from app.recovery.one_time_tokens import OneTimeTokens
from app.users.service import UserService
from app.utils.circuit_breaker import BreakerState, CircuitBreaker
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
        self.reset_ttl = timedelta(minutes=settings.password_reset_token_expire_minutes)
        self.verification_hours = settings.email_verification_token_expire_hours
        self.verification_ttl = timedelta(hours=self.verification_hours)

    async def render(
        self, session: AsyncSession, mail: ClaimedMail, now: datetime
    ) -> tuple[Rendered | None, str]:
        """The message and its token's id, or None and the reason it is dropped."""
        users = UserService(session)
        tokens = OneTimeTokens(session)
        kind = MailKind(mail.kind)
        user: User | None
        token_id: int | None = None
        audit: tuple[Event, int, dict[str, object]] | None = None
        if kind is MailKind.PASSWORD_RESET:
            user = await users.get_by_email(mail.recipient)
            if user is None or not user.is_active:
                return None, "no_active_account"
            token, token_id = await tokens.issue(
                TokenPurpose.PASSWORD_RESET,
                user_id=user.id,
                now=now,
                ttl=self.reset_ttl,
                email=user.email,
                epoch=user.token_epoch,
            )
            # An admin's request recorded its own event, with the admin and the request;
            # "forgot password" cannot without a look-up that would time the address.
            if not mail.data.get("audited"):
                audit = (Event.PASSWORD_RESET_REQUESTED, user.id, {"via": "forgot"})
            minutes = self.settings.password_reset_token_expire_minutes
            content = Content(
                (
                    f"Hello {user.username},",
                    "Somebody (hopefully you) asked to reset the password of your account. "
                    f"The link below works once, for {minutes} minutes.",
                ),
                link=self.settings.link("reset", token),
                link_label="Choose a new password",
                closing="If you did not ask for this, ignore this mail: "
                "your password stays as it is.",
            )
        elif kind is MailKind.VERIFY_EMAIL:
            user = await users.get_by_email(mail.recipient)
            if user is None or not user.is_active or user.email_verified:
                return None, "nothing_to_verify"
            token, token_id = await tokens.issue(
                TokenPurpose.VERIFY_EMAIL,
                user_id=user.id,
                now=now,
                ttl=self.verification_ttl,
                email=user.email,
                epoch=user.token_epoch,
            )
            audit = (Event.EMAIL_VERIFICATION_SENT, user.id, {"purpose": "verify"})
            content = Content(
                (
                    f"Hello {user.username},",
                    "Please confirm that this address belongs to your account. "
                    f"The link works once, for {self.verification_hours} hours.",
                ),
                link=self.settings.link("verify", token),
                link_label="Confirm this address",
                closing="If you did not create an account, ignore this mail.",
            )
        elif kind is MailKind.EMAIL_CHANGE:
            user = await users.get_by_id(int(mail.data.get("user_id", 0)))
            if user is None or not user.is_active:
                return None, "no_active_account"
            # The epoch of the request: a newer request, a password change or reset, or
            # signing out everywhere since then voided it (a job queued before this field
            # existed has none, and is voided too).
            if mail.data.get("epoch") != user.token_epoch:
                return None, "superseded"
            token, token_id = await tokens.issue(
                TokenPurpose.EMAIL_CHANGE,
                user_id=user.id,
                now=now,
                ttl=self.verification_ttl,
                email=mail.recipient,
                epoch=user.token_epoch,
            )
            audit = (Event.EMAIL_VERIFICATION_SENT, user.id, {"purpose": "change"})
            content = Content(
                (
                    f"Hello {user.username},",
                    "Please confirm that your account should use this address from now on. "
                    "Until you do, it keeps its current one.",
                ),
                link=self.settings.link("verify", token),
                link_label="Confirm the new address",
                closing="If you did not ask for this, ignore this mail.",
            )
        elif kind is MailKind.EMAIL_CHANGE_NOTICE:
            hint = str(mail.data.get("new_email_hint", "a new address"))
            content = Content(
                (
                    "Hello,",
                    f"Somebody signed in to your account asked to change its address to {hint}. "
                    "The change happens only once the new address is confirmed.",
                    'If this was not you, reset your password now with the "forgot '
                    'password" link, or sign out everywhere: either cancels this change. '
                    "Then choose a new password: whoever asked knows the current one.",
                )
            )
        elif kind is MailKind.EMAIL_CHANGED:
            hint = str(mail.data.get("new_email_hint", "a new address"))
            content = Content(
                (
                    "Hello,",
                    f"The address of your account was changed to {hint}. This address no "
                    "longer signs in to it and gets no more mail about it.",
                    "If this was not you, contact the service's support at once: whoever "
                    "did it knew your password.",
                )
            )
        elif kind is MailKind.ACCOUNT_DELETED:
            content = Content(
                (
                    "Hello,",
                    "The account of this address was deleted, with everything tied to it. "
                    "It can no longer sign in.",
                    "If this was not you, contact the service's support.",
                )
            )
        else:
            content = Content(
                (
                    "Hello,",
                    "The password of your account was just changed, and every device signed "
                    "in to it was signed out.",
                    "If this was not you, reset your password at once with the "
                    '"forgot password" link, and check the address of your account.',
                )
            )
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
        breaker_args: dict[str, Any] = {} if monotonic is None else {"clock": monotonic}
        # Its own breaker: a mail server outage must never shed the API's database calls.
        self.breaker = CircuitBreaker(
            "mail",
            failure_threshold=settings.mail_circuit_breaker_threshold,
            recovery_timeout=settings.mail_circuit_breaker_timeout,
            is_failure=lambda error: isinstance(error, MailServerUnavailable),
            **breaker_args,
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        """Stop after the mail in hand (the rest of a batch is given back at once).

        Cancelled only if that mail takes longer than a send may (SMTP_TIMEOUT plus a
        margin); a mail cut short that way is taken over when its lease expires.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(self.settings.smtp_timeout + 5):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        """Claim the due mails and deliver them; returns how many were claimed."""
        state = self.breaker.state
        if state is BreakerState.OPEN:
            await self.update_pending()
            return 0
        # Half-open: one mail is the trial; the rest wait for its verdict.
        limit = 1 if state is BreakerState.HALF_OPEN else self.settings.mail_batch_size
        batch = await self.claim(limit)
        for index, mail in enumerate(batch):
            if self._stopping or self.breaker.state is BreakerState.OPEN:
                await self._release(batch[index:])
                break
            await self.deliver(mail)
        await self.update_pending()
        return len(batch)

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
                candidates = candidates.with_for_update(skip_locked=True)
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
        """Render, send and record one claimed mail."""
        now = self.clock()
        async with self.database.session() as session:
            if not await self._renew(session, mail, now):
                log.warning("mail claim lost", mail_id=mail.id)
                return
            try:
                rendered, reason = await self.renderer.render(session, mail, now)
            except Exception as error:
                log.error("mail rendering failed", mail_id=mail.id, exc_info=error)
                await session.rollback()
                await self._record_failure(mail, None, MailRejected("render", permanent=False))
                return
            if rendered is None:
                await session.execute(
                    delete(OutboxMail).where(
                        OutboxMail.id == mail.id, OutboxMail.claim_id == mail.claim_id
                    )
                )
                log.info("mail dropped", mail_id=mail.id, kind=mail.kind, reason=reason)
                self.metrics.dropped.inc()
                return
        # The token is committed before the message leaves: its link works on arrival.
        try:
            async with self.breaker.guard():
                await self.backend.send(rendered.message, name=f"mail-{mail.id:010d}")
        except CircuitBreakerOpenException:
            await self._release([mail], token_id=rendered.token_id)
            return
        except Exception as error:
            await self._record_failure(mail, rendered.token_id, error)
            return
        async with self.database.session() as session:
            recorded = await self._finish(
                session, mail, status=MailStatus.SENT, sent_at=self.clock(), last_error=None
            )
            if recorded and rendered.audit is not None:
                # Once, when the mail has left (not per failed attempt), with the sent mark.
                event, user_id, details = rendered.audit
                AuditLog(session, clock=self.clock).record(event, user_id=user_id, details=details)
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
        """Give claimed mails back untried (the breaker opened): no attempt is counted."""
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
