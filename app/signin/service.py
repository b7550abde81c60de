"""Signing in: the first factor, then (with two-factor on) the second, as one flow whose
state lives in `signin_flows` between the two requests; knows no HTTP.

Which methods exist is app.signin.methods' business; this module asks them in order and
keeps what is common to all: the throttles, the log and audit trail of failures, the
assurance reached (`amr`), and the session that a completed sign-in starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, NoReturn, TypeVar

from app.audit.log import AuditLog, Event
from app.core.errors import (
    AppException,
    EmailNotVerifiedException,
    InvalidCredentialsException,
    MfaCodeRejectedException,
    UserInactiveException,
)
from app.core.jwt import TokenRejected
from app.metrics import Metrics
from app.models.user import User, normalize_identifier
from app.oidc.authorization import client_of_return_to
from app.sessions.tokens import AuthResult, SessionTokens
from app.signin import methods as registry
from app.signin.flow import ContinueWith, FlowStore, PendingFlow, credential_stamp
from app.signin.methods.base import MethodContext, SignInMethod, Step, Submission
from app.signin.methods.password.method import PasswordMethod
from app.throttle import Bucket, Throttle, ThrottledException
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.clock import Clock, utc_now
from app.utils.logger import bind_context, get_logger

log = get_logger(__name__)

_FLOW_TOKEN_TYPE = "mfa"  # noqa: S105 - a label (the token's name in the API), not a secret


_S = TypeVar("_S")
# What a completed sign-in starts: the JSON API's tokens (SessionTokens.start), a browser
# session (BrowserSessions.start); None when the user was deactivated meanwhile.
StartSession = Callable[[User, tuple[str, ...]], Awaitable[_S | None]]


@dataclass(frozen=True, slots=True)
class Completed(Generic[_S]):
    """A completed sign-in: the user, the session it started, and where it goes on
    (`continue_ref` of its flow: a page's `return_to`; None for a one-step sign-in)."""

    user: User
    session: _S
    continue_ref: str | None = None


def _merged(*parts: Sequence[str]) -> tuple[str, ...]:
    """The values of all parts, in order, each once."""
    return tuple(dict.fromkeys(value for part in parts for value in part))


class SignIn:
    """The sign-in use cases. Collaborators come in through the constructor."""

    def __init__(
        self,
        users: UserService,
        *,
        methods: MethodContext,
        tokens: SessionTokens,
        flow_ttl: timedelta = timedelta(seconds=300),
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        audit: AuditLog | None = None,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
        transaction: Transaction | None = None,
        identifier_hash: Callable[[str], str] | None = None,
        require_verified_email: bool = False,
    ) -> None:
        self.users = users
        self.methods = methods
        self.tokens = tokens
        self.flows = FlowStore(users.session, clock=clock, ttl=flow_ttl)
        # Throttling lives here, not in the routes, so that every entry point that signs
        # somebody in (JSON login, the OAuth2 token endpoint, ...) is covered by it.
        self.throttle = throttle
        self.client_ip = client_ip
        self.audit = audit or AuditLog(users.session, clock=clock)
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.transaction = transaction or Transaction(users.session)
        # Keyed hash of an unknown identifier for the log; None: the log omits it.
        self.identifier_hash = identifier_hash
        self.require_verified_email = require_verified_email

    async def login(self, identifier: str, password: str) -> AuthResult | PendingFlow:
        """Check credentials (identifier: email or username) and issue tokens; with
        two-factor on, return the pending flow of the second step instead (no tokens).

        Raises RateLimitedException, InvalidCredentialsException (unknown user, wrong
        password, and an account without a password alike) or UserInactiveException (right
        password, deactivated account).
        """
        result = await self.sign_in(identifier, password, start=self.tokens.start)
        if isinstance(result, PendingFlow):
            return result
        return AuthResult(result.user, result.session)

    async def sign_in(
        self,
        identifier: str,
        password: str,
        *,
        start: StartSession[_S],
        continue_with: str = ContinueWith.JSON,
        continue_ref: str | None = None,
    ) -> Completed[_S] | PendingFlow:
        """The password step, for any kind of session: a completed sign-in starts one with
        `start`; with two-factor on, the pending flow remembers `continue_with` (only that
        kind of request completes it) and `continue_ref`. Raises as `login`."""
        if self.throttle is not None:
            # Counted before the look-up, for unknown accounts too: a 429 then says
            # nothing about whether the account exists.
            try:
                await self.throttle.login_attempt(identifier, self.client_ip)
            except ThrottledException as refusal:
                await self._login_throttled(identifier, refusal)
                raise
        method = PasswordMethod(self.methods)
        submission: Submission = {"password": password}
        user = await self.users.get_by_identifier(identifier)
        if user is None:
            # Same work as a real verification, so timing does not reveal unknown accounts.
            await method.decoy(submission)
            # The client hears "invalid credentials" only; the log keeps the real reason and
            # a keyed hash of the identifier, never the identifier: people type passwords
            # into the username field. Equal hashes still tie attempts together.
            fields = {}
            if self.identifier_hash is not None:
                fields["identifier_hmac"] = self.identifier_hash(normalize_identifier(identifier))
            await self._login_failed("unknown_user", None, **fields)
            raise InvalidCredentialsException()
        if await method.verify(user, submission) is None:
            reason = "wrong_password" if user.has_password else "no_password"
            await self._login_failed(reason, user.id)
            raise InvalidCredentialsException()
        await self._require_usable(user)
        bind_context(user_id=user.id)
        if method.upgraded_hash is not None:
            user.hashed_password = method.upgraded_hash
            log.info("password hash upgraded", user_id=user.id, scheme=self.methods.hasher.scheme)
        first = (method.id,), method.amr
        if user.mfa_enabled:
            # The password alone does not clear the account's failures: else whoever knows
            # it could guess codes without end, five per fresh mfa_token.
            flow = await self._continue(
                user, identifier, *first, Step.SECOND_FACTOR, continue_with, continue_ref
            )
            # Kept even when the caller answers with an error (the password grant's
            # `mfa_required`), which would otherwise roll the flow back.
            await self.transaction.commit_before_raising()
            log.info("second factor required", user_id=user.id)
            return flow
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        return Completed(user, await self._signed_in(user, *first, start, continue_ref))

    async def sign_in_proven(
        self,
        user: User,
        method: SignInMethod,
        submission: Submission,
        *,
        provider: str,
        start: StartSession[_S],
        continue_with: str = ContinueWith.PAGE,
        continue_ref: str | None = None,
    ) -> Completed[_S] | PendingFlow:
        """A first factor proven elsewhere (another provider's checked identity, which
        `method` verifies against the account's links): the same rules as the password
        step from there on (inactive accounts, the second step with two-factor on)."""
        if await method.verify(user, submission) is None:
            await self._login_failed("identity_not_linked", user.id)
            raise InvalidCredentialsException()
        if not user.is_active:
            await self._login_failed("inactive", user.id)
            raise UserInactiveException()
        if self.require_verified_email and not user.email_verified:
            await self._login_failed("email_not_verified", user.id)
            raise EmailNotVerifiedException()
        bind_context(user_id=user.id)
        first = (method.id,), method.amr
        if user.mfa_enabled:
            flow = await self._continue(
                user,
                user.email,
                *first,
                Step.SECOND_FACTOR,
                continue_with,
                continue_ref,
                provider=provider,
            )
            await self.transaction.commit_before_raising()
            log.info("second factor required", user_id=user.id)
            return flow
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        session = await self._signed_in(user, *first, start, continue_ref, provider=provider)
        return Completed(user, session, continue_ref)

    async def sign_in_alone(
        self, method: SignInMethod, submission: Submission, *, start: StartSession[_S]
    ) -> Completed[_S]:
        """A sign-in by a first factor that names the account itself (a passkey): no
        identifier, no second step. Counted per client address before any work; every
        refusal is InvalidCredentialsException (unknown credential and a bad signature
        alike), or UserInactiveException / EmailNotVerifiedException after a valid proof.
        """
        if self.throttle is not None:
            await self.throttle.client_attempt(Bucket.LOGIN_IP, self.client_ip)
        user_id = await method.identify(submission)
        user = None if user_id is None else await self.users.get_by_id(user_id)
        if user is None:
            await method.decoy(submission)
            await self._login_failed(f"{method.id}_unknown", None)
            raise InvalidCredentialsException()
        proof = await method.verify(user, submission)
        if proof is None:
            reason = getattr(method, "reason", None) or "rejected"
            await self._login_failed(f"{method.id}_{reason}", user.id)
            raise InvalidCredentialsException()
        if not await method.consume(proof):
            await self._login_failed(f"{method.id}_replayed", user.id)
            raise InvalidCredentialsException()
        await self._require_usable(user)
        bind_context(user_id=user.id)
        amr = method.standalone_amr or method.amr
        return Completed(user, await self._signed_in(user, (method.id,), amr, start))

    async def second_step_user(self, flow_token: str, method_id: str) -> int:
        """The user of a live flow waiting for its second step that offers `method_id`
        (what a method needs before the attempt: a passkey's challenge). Counts no attempt
        on the flow; a bad token counts per client as a second step's does.

        Raises InvalidTokenException or RateLimitedException.
        """
        flow = await self.flows.live(flow_token)
        if (
            flow is None
            or flow.next_step is not Step.SECOND_FACTOR
            or method_id not in flow.offered
        ):
            if self.throttle is not None:
                await self.throttle.client_attempt(Bucket.SIGNIN_FLOW_IP, self.client_ip)
            self._flow_rejected()
        return flow.user_id

    async def login_mfa(self, mfa_token: str, code: str) -> AuthResult:
        """The second step of a sign-in: the flow's `mfa_token` and a TOTP code or a
        recovery code."""
        return await self.second_factor(mfa_token, {"code": code})

    async def second_factor(self, flow_token: str, submission: Submission) -> AuthResult:
        """The second step: a submission for one of the methods the flow offers. Each
        attempt counts on the flow (five, then it is dead) and on the account's throttle; a
        proof is accepted once.

        Raises InvalidTokenException (unknown, expired, used or exhausted token, or the
        account's password changed since the first step), MfaCodeRejectedException,
        UserInactiveException or RateLimitedException.
        """
        done = await self.complete(flow_token, submission, start=self.tokens.start)
        return AuthResult(done.user, done.session)

    async def complete(
        self,
        flow_token: str,
        submission: Submission,
        *,
        start: StartSession[_S],
        continue_with: str = ContinueWith.JSON,
    ) -> Completed[_S]:
        """The second step for any kind of session: only a flow started for
        `continue_with` completes here (a page's flow never yields tokens, nor a JSON flow
        a browser session). Raises as `second_factor`."""
        attempt = await self.flows.reserve_attempt(flow_token)
        # The attempt counts whatever follows: a failure below must not roll it back.
        await self.transaction.commit_before_raising()
        if (
            attempt is None
            or attempt.next_step is not Step.SECOND_FACTOR
            or attempt.continue_with != continue_with
        ):
            if self.throttle is not None:
                # Guessing tokens costs a statement each: bounded per client.
                await self.throttle.client_attempt(Bucket.SIGNIN_FLOW_IP, self.client_ip)
            self._flow_rejected()
        bind_context(user_id=attempt.user_id)
        if self.throttle is not None:
            await self.throttle.account_attempt(attempt.throttle_key, self.client_ip)
        user = await self.users.get_by_id(attempt.user_id)
        if user is None or not user.mfa_enabled:
            # Two-factor was turned off (or the account deleted) after the password step.
            self._flow_rejected(user_id=attempt.user_id)
        if credential_stamp(user) != attempt.credential_stamp:
            # The password changed (or was reset) since the first step: whoever had the old
            # one must not complete a sign-in with it.
            self._flow_rejected(user_id=user.id, reason="credentials_changed")
        if not user.is_active:
            await self._login_failed("inactive", user.id)
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        self._require_second_factors()
        method = await self._method_for(user, attempt.offered, submission)
        proof = None if method is None else await method.verify(user, submission)
        if method is None or proof is None:
            await self._second_factor_failed(user, "wrong_mfa_code")
        if not await method.consume(proof):
            await self._second_factor_failed(user, "replayed_mfa_code")
        if not await self.flows.finish(flow_token):
            # A concurrent request finished this sign-in first; raising rolls back the use
            # of this request's proof with everything else of its transaction.
            self._flow_rejected(user_id=user.id)
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        methods = _merged(attempt.methods_done, (method.id,))
        amr = _merged(attempt.amr, method.amr)
        session = await self._signed_in(
            user, methods, amr, start, attempt.continue_ref, provider=attempt.provider
        )
        return Completed(user, session, attempt.continue_ref)

    async def _require_usable(self, user: User) -> None:
        """After a valid first factor (never before: without one nothing about the account
        shows): a deactivated account, or one whose address still needs verifying."""
        if not user.is_active:
            await self._login_failed("inactive", user.id)
            # No token was sent, so no error="invalid_token" (RFC 6750 §3).
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        if self.require_verified_email and not user.email_verified:
            await self._login_failed("email_not_verified", user.id)
            raise EmailNotVerifiedException()

    async def _continue(
        self,
        user: User,
        identifier: str,
        methods_done: tuple[str, ...],
        amr: tuple[str, ...],
        step: Step,
        continue_with: str,
        continue_ref: str | None,
        *,
        provider: str | None = None,
    ) -> PendingFlow:
        self._require_second_factors()
        offered = [
            cls.id
            for cls in registry.for_step(step)
            if cls.id not in methods_done and await cls(self.methods).offered_to(user)
        ]
        return await self.flows.start(
            user,
            # The keyed hash the password step counted on (empty without a throttle).
            throttle_key="" if self.throttle is None else self.throttle.account_key(identifier),
            methods_done=methods_done,
            amr=amr,
            next_step=step,
            offered=offered,
            continue_with=continue_with,
            continue_ref=continue_ref,
            provider=provider,
        )

    async def _method_for(
        self, user: User, offered: Sequence[str], submission: Submission
    ) -> SignInMethod | None:
        """The first method on offer that claims the submission and the user can use."""
        for method_id in offered:
            cls = registry.by_id(method_id)
            if cls is None:
                continue  # a method removed since the flow began
            method = cls(self.methods)
            if method.claims(submission) and await method.offered_to(user):
                return method
        # Refused without any work; the read transaction ends as after a check.
        await self.transaction.end_read()
        return None

    def _require_second_factors(self) -> None:
        if not self.methods.second_factors_configured:
            # Fail closed: an account with two-factor on never signs in on a password alone.
            raise AppException("Two-factor authentication is not configured")

    async def _second_factor_failed(self, user: User, reason: str) -> NoReturn:
        """A wrong or replayed second factor: `mfa.failed` in the trail, committed although
        the answer is a 401 (the request's own transaction rolls back)."""
        self.audit.record(Event.MFA_FAILED, user_id=user.id, details={"reason": reason})
        await self._login_failed(reason, user.id)
        raise MfaCodeRejectedException()

    def _flow_rejected(self, *, reason: str = "mfa_token_invalid", **fields: object) -> NoReturn:
        # Unknown, expired, used up, out of attempts: one reason, as the client hears it.
        log.warning("token rejected", reason=reason, token_type=_FLOW_TOKEN_TYPE, **fields)
        self.metrics.tokens_rejected.labels(reason=reason, token_type=_FLOW_TOKEN_TYPE).inc()
        raise TokenRejected("mfa_token_invalid")

    async def _signed_in(
        self,
        user: User,
        methods: tuple[str, ...],
        amr: tuple[str, ...],
        start: StartSession[_S],
        continue_ref: str | None = None,
        *,
        provider: str | None = None,
    ) -> _S:
        self.users.record_login(user, self.clock(), None)
        session = await start(user, amr)
        if session is None:
            # Deactivated while the password was being checked (the session insert re-reads
            # is_active): no session, so nothing comes back to life at a reactivation.
            await self._login_failed("inactive", user.id)
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        # With last_login and the session: one transaction, no commit of its own.
        details: dict[str, object] = {"methods": list(methods)}
        if provider is not None:
            details["provider"] = provider
        # A sign-in that serves an application's authorization request names the client.
        client_id = await client_of_return_to(self.users.session, continue_ref, self.clock())
        if client_id is not None:
            details["client_id"] = client_id
        self.audit.record(Event.LOGIN_SUCCEEDED, user_id=user.id, actor_id=user.id, details=details)
        log.info("login succeeded", user_id=user.id, **details)
        self.metrics.login_successes.inc()
        return session

    async def _login_failed(self, reason: str, user_id: int | None, **fields: object) -> None:
        if user_id is not None:
            fields["user_id"] = user_id
        log.warning("login failed", reason=reason, **fields)
        self.metrics.login_failures.labels(reason=reason).inc()
        # The answer is a 401 and the request's transaction rolls back: the event is
        # committed on its own first. Never the attempted identifier: it may be a password
        # typed into the wrong field, and a deleted account's trail must not name it.
        self.audit.record(Event.LOGIN_FAILED, user_id=user_id, details={"reason": reason})
        await self.transaction.commit_before_raising()

    async def _login_throttled(self, identifier: str, refusal: ThrottledException) -> None:
        if self.throttle is None or not await self.throttle.first_refusal(refusal):
            return
        user = await self.users.get_by_identifier(identifier)
        details = {"bucket": refusal.bucket.value, "retry_after": refusal.retry_after}
        self.audit.record(Event.LOGIN_THROTTLED, user_id=user.id if user else None, details=details)
        await self.transaction.commit_before_raising()
