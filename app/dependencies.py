"""Wiring only: one `Annotated` alias per injectable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.reauth import Reauthentication
from app.account.service import SelfService
from app.admin.service import AdminService
from app.auth import AuthService
from app.config import Settings
from app.core.errors import (
    ForbiddenException,
    NotAuthenticatedException,
    UnsupportedMediaTypeException,
    ValidationException,
)
from app.database import Database
from app.keys.keyring import KeyRing, LazyKeyRing
from app.mail.outbox import Outbox
from app.metrics import Metrics
from app.models.role import ADMIN_ROLE
from app.models.user import User
from app.oauth2.token_service import TokenService
from app.oidc.authorization import AuthorizationStore
from app.oidc.id_tokens import IdTokens
from app.oidc.service import OpenIdProvider
from app.recovery.one_time_tokens import OneTimeTokens
from app.recovery.service import AccountService
from app.registration.service import Registration
from app.sessions.bearer import BearerCheck, SessionUser
from app.sessions.browser import BrowserSession, BrowserSessions
from app.sessions.tokens import Principal, SessionTokens
from app.signin.methods.base import MethodContext
from app.signin.methods.passkey.service import Passkeys
from app.signin.service import SignIn
from app.signin.two_factor import TwoFactor
from app.signin.upstream import UpstreamSignIn
from app.throttle import Throttle
from app.users.service import UserService
from app.utils.pagination import MAX_CURSOR_LENGTH, MAX_LIMIT, InvalidCursor, decode_cursor
from app.wiring import (
    build_auth_service,
    build_browser_sessions,
    build_method_context,
    build_reauthentication,
    build_session_tokens,
    build_two_factor,
)

# Two ways to present the same bearer token (RFC 6750 §2.1), both declared in OpenAPI so
# the docs' Authorize dialog offers a password sign-in (through the token endpoint) and a
# pasted token. auto_error=False: a missing header is our own NOT_AUTHENTICATED body.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    description="Sign in with email or username and password; leave client_id/secret empty.",
    auto_error=False,
)
bearer_scheme = HTTPBearer(
    bearerFormat="JWT",
    description="An access token from /auth/login, /auth/register or /auth/token.",
    auto_error=False,
)


# Dependencies are `async def` even where they do not await: FastAPI runs a plain `def`
# dependency in the threadpool, a thread hop per request for a mere attribute lookup.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_db_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """The request's session; commits before the response is sent (scope="function")."""
    async with database.session() as session:
        yield session


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


SettingsDep = Annotated[Settings, Depends(get_settings)]
ThrottleDep = Annotated[Throttle, Depends(get_throttle)]
DatabaseDep = Annotated[Database, Depends(get_database)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]


async def get_client_ip(request: Request) -> str | None:
    """The socket peer, or the address trusted proxies forwarded for (TRUSTED_PROXIES), as
    the request middleware resolved it for the log line; None (one shared bucket) without."""
    resolved: str | None = request.scope.get("state", {}).get("client_ip")
    return resolved


ClientIP = Annotated[str | None, Depends(get_client_ip)]


async def require_json(request: Request) -> None:
    """JSON endpoints refuse any other body type with 415 (RFC 9110 §15.5.16)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeException()


JSONBody = Depends(require_json)


async def get_outbox(request: Request, session: SessionDep) -> Outbox:
    """The mail outbox of the request's transaction; a job wakes this worker's sender."""
    state = request.app.state
    return Outbox(session, clock=state.wall_clock, notify=state.mail_sender.wake)


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


async def get_method_context(
    request: Request, session: SessionDep, client_ip: ClientIP
) -> MethodContext:
    state = request.app.state
    return build_method_context(
        state.settings,
        session,
        hasher=state.hasher,
        box=state.mfa_box,
        keyed_hashes=state.keyed_hashes,
        throttle=state.throttle,
        client_ip=client_ip,
        clock=state.wall_clock,
    )


MethodContextDep = Annotated[MethodContext, Depends(get_method_context)]


async def get_session_tokens(
    request: Request, session: SessionDep, client_ip: ClientIP
) -> SessionTokens:
    state = request.app.state
    return build_session_tokens(
        state.settings,
        session,
        codec=state.codec,
        throttle=state.throttle,
        client_ip=client_ip,
        user_agent=request.headers.get("user-agent"),
        metrics=state.metrics,
        clock=state.wall_clock,
    )


SessionTokensDep = Annotated[SessionTokens, Depends(get_session_tokens)]


async def get_auth_service(
    request: Request,
    session: SessionDep,
    client_ip: ClientIP,
    outbox: OutboxDep,
    methods: MethodContextDep,
) -> AuthService:
    state = request.app.state
    return build_auth_service(
        state.settings,
        session,
        hasher=state.hasher,
        codec=state.codec,
        throttle=state.throttle,
        client_ip=client_ip,
        user_agent=request.headers.get("user-agent"),
        metrics=state.metrics,
        identifier_hash=state.identifier_hash,
        clock=state.wall_clock,
        outbox=outbox,
        methods=methods,
    )


async def get_signin(auth: Annotated[AuthService, Depends(get_auth_service)]) -> SignIn:
    return auth.signin


async def get_registration(
    auth: Annotated[AuthService, Depends(get_auth_service)],
) -> Registration:
    return auth.registration


SignInDep = Annotated[SignIn, Depends(get_signin)]
RegistrationDep = Annotated[Registration, Depends(get_registration)]


async def get_browser_sessions(
    request: Request, session: SessionDep, client_ip: ClientIP
) -> BrowserSessions:
    state = request.app.state
    return build_browser_sessions(
        state.settings,
        session,
        client_ip=client_ip,
        user_agent=request.headers.get("user-agent"),
        clock=state.wall_clock,
    )


BrowserSessionsDep = Annotated[BrowserSessions, Depends(get_browser_sessions)]


async def get_browser_session(
    request: Request, browser: BrowserSessionsDep
) -> BrowserSession | None:
    """The browser's signed-in session (the hosted pages' cookie), or None; asked of the
    database on every request."""
    current = await browser.current(request)
    if current is not None:
        request.scope.setdefault("state", {})["user_id"] = current.user.id
    return current


CurrentBrowserSession = Annotated[BrowserSession | None, Depends(get_browser_session)]


async def get_reauthentication(
    request: Request, session: SessionDep, client_ip: ClientIP
) -> Reauthentication:
    state = request.app.state
    return build_reauthentication(
        state.settings,
        session,
        hasher=state.hasher,
        throttle=state.throttle,
        client_ip=client_ip,
        clock=state.wall_clock,
    )


ReauthenticationDep = Annotated[Reauthentication, Depends(get_reauthentication)]


async def get_two_factor(
    request: Request,
    methods: MethodContextDep,
    reauth: ReauthenticationDep,
    outbox: OutboxDep,
) -> TwoFactor:
    return build_two_factor(request.app.state.settings, methods, reauth=reauth, outbox=outbox)


TwoFactorDep = Annotated[TwoFactor, Depends(get_two_factor)]


async def get_passkeys(
    methods: MethodContextDep, reauth: ReauthenticationDep, outbox: OutboxDep
) -> Passkeys:
    return Passkeys(methods, reauth=reauth, outbox=outbox)


PasskeysDep = Annotated[Passkeys, Depends(get_passkeys)]


async def get_account_service(
    request: Request,
    session: SessionDep,
    client_ip: ClientIP,
    tokens: SessionTokensDep,
    reauth: ReauthenticationDep,
    outbox: OutboxDep,
) -> AccountService:
    state = request.app.state
    return AccountService(
        UserService(session),
        hasher=state.hasher,
        session_tokens=tokens,
        reauth=reauth,
        one_time_tokens=OneTimeTokens(session),
        outbox=outbox,
        throttle=state.throttle,
        client_ip=client_ip,
        clock=state.wall_clock,
        password_min_length=state.settings.password_min_length,
    )


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_bearer_token(
    oauth2: Annotated[str | None, Depends(oauth2_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str | None:
    """The token of `Authorization: Bearer <token>`; both schemes read that one header."""
    return oauth2 or (bearer.credentials if bearer else None)


async def get_current_principal(
    request: Request,
    tokens: SessionTokensDep,
    token: Annotated[str | None, Depends(get_bearer_token)],
) -> Principal:
    """The user and session of the bearer token (RFC 6750 §2.1: the Authorization header
    only)."""
    if not token:
        raise NotAuthenticatedException()
    principal = await tokens.authenticate_principal(token)
    request.scope.setdefault("state", {})["user_id"] = principal.user.id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


async def get_session_user(
    request: Request, token: Annotated[str | None, Depends(get_bearer_token)]
) -> SessionUser:
    """The read path's principal: what `/users/me` shows, without an ORM session."""
    if not token:
        raise NotAuthenticatedException()
    bearer: BearerCheck = request.app.state.bearer
    user = await bearer.user(token)
    request.scope.setdefault("state", {})["user_id"] = user.user_id
    return user


CurrentSessionUser = Annotated[SessionUser, Depends(get_session_user)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    """The user of the bearer token."""
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def require_admin(user: CurrentUser) -> User:
    """The bearer's user, if it holds the `admin` role now: the roles came from the
    database with the user in the token check's one statement, not from the token."""
    if ADMIN_ROLE not in user.roles:
        raise ForbiddenException("The admin role is required")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def get_self_service(
    request: Request, session: SessionDep, reauth: ReauthenticationDep
) -> SelfService:
    return SelfService(session, reauth=reauth, clock=request.app.state.wall_clock)


SelfServiceDep = Annotated[SelfService, Depends(get_self_service)]


async def get_admin_service(session: SessionDep) -> AdminService:
    return AdminService(session)


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


# The query parameters of every paginated list.
PageLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200)")]
PageCursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
]


def cursor_after(cursor: str | None, *, field: str = "cursor") -> int | None:
    """The id a client's cursor continues after; raises ValidationException naming `field`."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor:
        message = "Not a cursor this service issued"
        raise ValidationException(message, errors=[{"field": field, "message": message}]) from None


async def get_token_service(request: Request, tokens: SessionTokensDep) -> TokenService:
    return TokenService(request.app.state.codec, tokens.sessions, tokens.audit)


TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]


async def get_keyring(request: Request) -> KeyRing | None:
    """The worker's signing keys; None with an HS algorithm (nothing to publish)."""
    keyring: KeyRing | None = request.app.state.keyring
    return keyring


KeyRingDep = Annotated[KeyRing | None, Depends(get_keyring)]


async def get_id_token_keys(request: Request) -> LazyKeyRing:
    """The worker's ID-token signing keys (the access keys when they share an algorithm)."""
    keys: LazyKeyRing = request.app.state.id_token_keys
    return keys


IdTokenKeysDep = Annotated[LazyKeyRing, Depends(get_id_token_keys)]


async def get_openid_provider(
    request: Request, session: SessionDep, tokens: SessionTokensDep
) -> OpenIdProvider:
    state = request.app.state
    settings: Settings = state.settings
    id_tokens = IdTokens(
        state.id_token_keys,
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=settings.access_token_expire_minutes),
        clock=state.wall_clock,
    )
    return OpenIdProvider(
        AuthorizationStore(session),
        issuer=settings.jwt_issuer,
        id_tokens=id_tokens,
        tokens=tokens,
        audit=tokens.audit,
        transaction=tokens.transaction,
        clock=state.wall_clock,
    )


OpenIdProviderDep = Annotated[OpenIdProvider, Depends(get_openid_provider)]


async def get_upstream_signin(
    request: Request,
    signin: SignInDep,
    browser: BrowserSessionsDep,
    methods: MethodContextDep,
    reauth: ReauthenticationDep,
    outbox: OutboxDep,
) -> UpstreamSignIn:
    state = request.app.state
    return UpstreamSignIn(
        settings=state.settings,
        clients=state.upstream_clients,
        signin=signin,
        browser=browser,
        methods=methods,
        reauth=reauth,
        outbox=outbox,
        clock=state.wall_clock,
    )


UpstreamSignInDep = Annotated[UpstreamSignIn, Depends(get_upstream_signin)]
