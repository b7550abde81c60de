"""Creating an account; knows no HTTP."""

from __future__ import annotations

from app.audit.log import AuditLog, Event
from app.core.errors import UserInactiveException
from app.core.password_policy import check_new_password
from app.core.passwords import PasswordHasher
from app.mail.outbox import Outbox
from app.metrics import Metrics
from app.models.mail import MailKind
from app.models.user import User
from app.sessions.tokens import AuthResult, SessionTokens
from app.throttle import Bucket, Throttle
from app.users.service import UserService
from app.utils.logger import bind_context, get_logger

log = get_logger(__name__)


class Registration:
    def __init__(
        self,
        users: UserService,
        *,
        hasher: PasswordHasher,
        tokens: SessionTokens,
        audit: AuditLog,
        metrics: Metrics,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        password_min_length: int = 8,
        outbox: Outbox | None = None,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.tokens = tokens
        self.audit = audit
        self.metrics = metrics
        self.throttle = throttle
        self.client_ip = client_ip
        self.password_min_length = password_min_length
        # Where the verification mail of a new account goes (None: no mail, e.g. the CLI).
        self.outbox = outbox

    async def register(self, *, email: str, username: str, password: str) -> AuthResult:
        """Create an account and sign it in.

        Raises RateLimitedException, ValidationException (weak password) or
        UserAlreadyExistsException.
        """
        user = await self.create_account(email=email, username=username, password=password)
        tokens = await self.tokens.start(user)
        if tokens is None:  # a user created in this transaction is active
            raise UserInactiveException()
        return AuthResult(user, tokens)

    async def create_account(self, *, email: str, username: str, password: str) -> User:
        """Create an account, not signed in, and mail it a verification link.

        Raises RateLimitedException, ValidationException (weak password) or
        UserAlreadyExistsException.
        """
        if self.throttle is not None:
            await self.throttle.client_attempt(Bucket.REGISTER_IP, self.client_ip)
        self.check_password(password, username=username, email=email)
        # Hash before touching the database: no transaction is held open across the hash.
        hashed = await self.hasher.hash(password)
        user = await self.users.create(email=email, username=username, hashed_password=hashed)
        bind_context(user_id=user.id)
        self.audit.record(Event.USER_REGISTERED, user_id=user.id, actor_id=user.id)
        log.info("user registered", user_id=user.id)
        self.metrics.registrations.inc()
        if self.outbox is not None:
            await self.outbox.enqueue(MailKind.VERIFY_EMAIL, user.email, {"user_id": user.id})
        return user

    def check_password(
        self, password: str, *, username: str, email: str, field: str = "password"
    ) -> None:
        """Raises ValidationException naming the rule the password breaks."""
        check_new_password(
            password,
            username=username,
            email=email,
            min_length=self.password_min_length,
            hasher=self.hasher,
            field=field,
        )
