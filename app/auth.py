"""The three flows of authentication (sign-in, sessions, registration) behind the one
constructor of their collaborators: for the command line and for tests that drive the use
cases without HTTP. Routes take the flow they need (app.dependencies)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from app.audit.log import AuditLog
from app.core.jwt import TokenCodec
from app.core.passwords import PasswordHasher
from app.mail.outbox import Outbox
from app.metrics import Metrics
from app.models.user import User
from app.registration.service import Registration
from app.sessions.service import SessionService
from app.sessions.tokens import AuthResult, Principal, SessionTokens, TokenPair
from app.signin.flow import PendingFlow
from app.signin.methods.base import MethodContext
from app.signin.service import SignIn
from app.throttle import Throttle
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.clock import Clock, utc_now


class AuthService:
    def __init__(
        self,
        users: UserService,
        *,
        hasher: PasswordHasher,
        codec: TokenCodec,
        sessions: SessionService | None = None,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
        audit: AuditLog | None = None,
        rotate_refresh_tokens: bool = False,
        password_min_length: int = 8,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
        transaction: Transaction | None = None,
        identifier_hash: Callable[[str], str] | None = None,
        session_max_lifetime: timedelta | None = None,
        outbox: Outbox | None = None,
        require_verified_email: bool = False,
        methods: MethodContext | None = None,
        flow_ttl: timedelta = timedelta(seconds=300),
    ) -> None:
        self.users = users
        audit = audit or AuditLog(users.session, clock=clock)
        metrics = metrics or Metrics()
        transaction = transaction or Transaction(users.session)
        self.tokens = SessionTokens(
            users,
            codec=codec,
            sessions=sessions,
            throttle=throttle,
            client_ip=client_ip,
            user_agent=user_agent,
            audit=audit,
            rotate_refresh_tokens=rotate_refresh_tokens,
            clock=clock,
            metrics=metrics,
            transaction=transaction,
            session_max_lifetime=session_max_lifetime,
        )
        self.registration = Registration(
            users,
            hasher=hasher,
            tokens=self.tokens,
            audit=audit,
            metrics=metrics,
            throttle=throttle,
            client_ip=client_ip,
            password_min_length=password_min_length,
            outbox=outbox,
        )
        # Without a method context: passwords only, and an account with two-factor on
        # fails closed (never signs in on its password alone).
        methods = methods or MethodContext(
            users.session, hasher=hasher, clock=clock, throttle=throttle, client_ip=client_ip
        )
        self.signin = SignIn(
            users,
            methods=methods,
            tokens=self.tokens,
            flow_ttl=flow_ttl,
            throttle=throttle,
            client_ip=client_ip,
            audit=audit,
            clock=clock,
            metrics=metrics,
            transaction=transaction,
            identifier_hash=identifier_hash,
            require_verified_email=require_verified_email,
        )

    async def register(self, *, email: str, username: str, password: str) -> AuthResult:
        return await self.registration.register(email=email, username=username, password=password)

    async def login(self, identifier: str, password: str) -> AuthResult | PendingFlow:
        return await self.signin.login(identifier, password)

    async def login_mfa(self, mfa_token: str, code: str) -> AuthResult:
        return await self.signin.login_mfa(mfa_token, code)

    async def refresh(self, refresh_token: str) -> AuthResult:
        return await self.tokens.refresh(refresh_token)

    async def logout(self, token: str) -> None:
        await self.tokens.logout(token)

    async def authenticate(self, access_token: str) -> User:
        return await self.tokens.authenticate(access_token)

    async def authenticate_principal(self, access_token: str) -> Principal:
        return await self.tokens.authenticate_principal(access_token)

    async def start_session(self, user: User) -> TokenPair:
        return await self.tokens.start_session(user)
