"""Application factory: `create_app(settings)` builds a fully wired FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import BaseRoute

from app import __version__
from app.account import me as users
from app.account import routes as sessions
from app.admin import routes as admin
from app.audit.log import AuditLog
from app.config import Settings, get_settings, resolve_secret_key
from app.database import Database
from app.keys import routes as well_known
from app.keys.keyring import LazyKeyRing, max_token_lifetime, open_keyring, purge_retired_keys
from app.keys.store import ID_TOKEN
from app.mail.sender import MailMetrics, MailSender, purge_mail_and_tokens
from app.metrics import Metrics
from app.middleware.cors import ContractCORSMiddleware
from app.middleware.exception import register_exception_handlers
from app.middleware.head import HeadAsGetMiddleware
from app.middleware.logging import RequestContextMiddleware
from app.middleware.security import BodyLimitMiddleware, SecurityHeadersMiddleware
from app.oauth2 import routes as tokens
from app.oauth2 import token_endpoint
from app.oauth2.token_request import TOKEN_REQUEST_COMPONENTS
from app.oidc import routes as oidc
from app.oidc.authorization import purge_authorizations, return_to_origins
from app.oidc.cors import ApplicationCORSMiddleware
from app.openapi import install_openapi, operation_id
from app.pages import routes as hosted_pages
from app.pages.guards import Csrf
from app.recovery import routes as account
from app.registration import routes as registration
from app.routes import docs, health, metrics, pages
from app.serving import Takeover, take_over_from_uvicorn
from app.sessions import routes as session_routes
from app.sessions.bearer import SqliteDataVersion
from app.sessions.service import SessionService
from app.signin import passkey_routes, upstream_routes
from app.signin import routes as auth
from app.signin import two_factor_routes as mfa
from app.signin.flow import purge_expired_flows
from app.signin.method_routes import method_routers
from app.signin.methods.passkey.challenges import purge_expired_challenges
from app.signin.methods.passkey.relying_party import RelyingParty
from app.signin.methods.totp.keys import totp_box
from app.signin.methods.upstream.states import purge_expired_states
from app.startup import start_schema
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger, setup_logging
from app.wiring import (
    build_bearer_check,
    build_codec,
    build_hasher,
    build_identifier_hash,
    build_keyed_hashes,
    build_throttle,
    build_upstream_clients,
    log_secrets,
)

log = get_logger(__name__)

DESCRIPTION = """
Registers users, logs them in by email or username, and issues JWT access and refresh
tokens.

**Try it here:** press **Authorize**, enter an email (or username) and password under
*OAuth2PasswordBearer* (leave the client fields empty), then call `GET /users/me`. Or
paste an access token from `/auth/login` under *HTTPBearer*.

**Errors** have one body: `detail`, `error_code`, `timestamp`, `request_id` (and `errors`
per field for validation). Two documented exceptions: `GET /health` answers 503 with its
health body, and `POST /auth/token` answers in the OAuth2 shape of RFC 6749 §5.2
(`error`, `error_description`, `request_id`). Every response carries `X-Request-ID`.
"""


def _report_takeover(takeover: Takeover, settings: Settings) -> None:
    if takeover.removed:
        log.info("uvicorn defaults overridden", removed=takeover.removed)
    if takeover.ignored_forwarded_allow_ips:
        log.warning(
            "FORWARDED_ALLOW_IPS ignored: TRUSTED_PROXIES decides the client address",
            forwarded_allow_ips=takeover.ignored_forwarded_allow_ips,
        )
    if takeover.unix_socket and not settings.trust_unix_socket:
        log.warning(
            "served over a Unix socket without a trusted proxy: no client address, so every"
            " per-client limit counts all clients in one shared bucket; add `unix` to"
            " TRUSTED_PROXIES if the proxy in front sets X-Forwarded-For",
            uds=takeover.unix_socket,
        )


async def purge_expired_sessions(database: Database, settings: Settings) -> int:
    """Delete sessions past their refresh token's expiry plus one access-token lifetime
    (the last access token of a session may outlive its refresh token by that much)."""
    grace = timedelta(minutes=settings.access_token_expire_minutes)
    async with database.session() as session:
        purged = await SessionService(session).purge_expired(utc_now() - grace)
        # Sign-ins abandoned before their second factor (their mfa_token has expired).
        challenges = await purge_expired_flows(session, utc_now())
        # Sign-ins abandoned at another provider, and passkey ceremonies never finished.
        await purge_expired_states(session, utc_now())
        await purge_expired_challenges(session, utc_now())
    if purged:
        log.info("expired sessions purged", count=purged)
    if challenges:
        log.info("expired mfa challenges purged", count=challenges)
    return purged


async def purge_old_audit_events(
    database: Database, settings: Settings, *, now: Clock = utc_now
) -> int:
    """Delete audit events older than AUDIT_RETENTION_DAYS (0: keep them all)."""
    if not settings.audit_retention_days:
        return 0
    cutoff = now() - timedelta(days=settings.audit_retention_days)
    async with database.session() as session:
        purged = await AuditLog(session).purge(cutoff)
    if purged:
        log.info("old audit events purged", count=purged)
    return purged


def key_lifetime(settings: Settings) -> timedelta:
    """How long a retired signing key stays published (its last token's lifetime)."""
    return max_token_lifetime(
        timedelta(minutes=settings.access_token_expire_minutes),
        timedelta(days=settings.refresh_token_expire_days),
    )


async def _purge_periodically(database: Database, settings: Settings, now: Clock) -> None:
    purges: dict[str, Callable[[], Awaitable[object]]] = {
        "sessions": lambda: purge_expired_sessions(database, settings),
        "audit": lambda: purge_old_audit_events(database, settings, now=now),
        "mail_and_tokens": lambda: purge_mail_and_tokens(database, now=now()),
        "signing_keys": lambda: purge_retired_keys(
            database, max_lifetime=key_lifetime(settings), clock=now
        ),
        "authorization_requests_and_codes": lambda: purge_authorizations(database, now()),
    }
    while True:
        await asyncio.sleep(settings.session_cleanup_interval_seconds)
        for name, purge in purges.items():
            try:
                await purge()
            except Exception as error:  # the database may be down; try again next time
                log.warning("periodic purge failed", purge=name, error_type=type(error).__name__)


@functools.cache
def route_table(*, with_docs: bool) -> tuple[BaseRoute, ...]:
    """The service's routers, included once per process and shared by every application
    the process builds.

    FastAPI works out an included router's routes (each endpoint's dependencies, its
    response models) when a request first reaches that router, and keeps the result on
    the inclusion: some milliseconds a route. Included by each application, the work
    would be done again for each: once per process for the service, but once per test
    for a test suite that builds an application per test. The inclusions made here carry
    no application, so `app.dependency_overrides` does not reach these routes (the
    service sets none).
    """
    table = APIRouter(redirect_slashes=False, generate_unique_id_function=operation_id)
    routers = [
        registration.router,
        auth.router,
        token_endpoint.router,
        session_routes.router,
        users.router,
        sessions.router,
        admin.router,
        mfa.router,
        passkey_routes.router,
        *method_routers(),
        tokens.router,
        health.router,
        well_known.router,
        oidc.router,
        metrics.router,
        account.router,
        pages.router,
        hosted_pages.router,
        upstream_routes.pages,
        upstream_routes.api,
    ]
    if with_docs:
        routers.append(docs.router)
    for router in routers:
        table.include_router(router)
    return tuple(table.routes)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Build the application; nothing touches the database until the lifespan starts.

    `clock` is the monotonic time source of the circuit breakers' recovery timeouts;
    `wall_clock` (UTC) dates tokens, signing keys, one-time tokens and the mail outbox's
    retries and leases, and counts TOTP time steps, mfa_token expiry and `last_login`.
    """
    settings = settings or get_settings()
    # One registry per application: two apps in one process never share or clash on series.
    app_metrics = Metrics()
    mail_metrics = MailMetrics(app_metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        takeover = take_over_from_uvicorn()
        setup_logging(settings.log_level, settings.log_format, secrets=log_secrets(settings))
        _report_takeover(takeover, settings)
        app.state.settings = settings
        app.state.mfa_box = totp_box(resolve_secret_key(settings))
        app.state.pages_csrf = Csrf(
            resolve_secret_key(settings), secure=settings.public_url.startswith("https://")
        )
        app.state.database = Database(settings, clock=clock)
        app_metrics.watch_breaker(app.state.database.breaker)

        async def origins_of_return_to(return_to: str) -> list[str]:
            # Asked by a page handler that may hold the request's connection.
            async with app.state.database.session(aside=True) as session:
                return await return_to_origins(session, return_to, wall_clock())

        # The sign-in page's form may lead (through return_to) to an application.
        app.state.return_to_origins = origins_of_return_to
        # Before the server accepts a connection: the first request meets the current schema.
        migrator = await start_schema(app.state.database, auto_migrate=settings.db_auto_migrate)
        background = [] if migrator is None else [migrator]
        app.state.hasher = build_hasher(settings)
        keyring = None
        # On a SQLite file: lets the key ring skip its revocation check while nothing changed.
        key_version = SqliteDataVersion.for_url(settings.database_url)
        if settings.uses_key_pairs:
            # Signing needs the keys, so with key pairs the database must answer at start.
            try:
                keyring = await open_keyring(
                    app.state.database,
                    algorithm=settings.jwt_algorithm,
                    secret_key=resolve_secret_key(settings),
                    max_lifetime=key_lifetime(settings),
                    clock=wall_clock,
                    version=key_version,
                )
            except BaseException as error:
                log.error("signing keys unavailable", error=str(error))
                for task in background:
                    task.cancel()
                if key_version is not None:
                    key_version.close()
                await app.state.database.dispose()
                raise
            background.append(
                asyncio.create_task(
                    keyring.refresh_periodically(settings.signing_key_refresh_seconds)
                )
            )
        app.state.keyring = keyring
        # ID tokens are signed with a key pair whatever JWT_ALGORITHM is: the access keys
        # when their algorithm is ID_TOKEN_ALGORITHM, otherwise a set of their own, opened
        # (and its first key made) when the first ID token or JWKS needs it.
        same = keyring is not None and settings.jwt_algorithm == settings.id_token_algorithm
        app.state.id_token_keys = LazyKeyRing(
            keyring if same else None,
            opener=functools.partial(
                open_keyring,
                app.state.database,
                algorithm=settings.id_token_algorithm,
                secret_key=resolve_secret_key(settings),
                max_lifetime=key_lifetime(settings),
                clock=wall_clock,
                version=key_version,
                purpose=ID_TOKEN,
            ),
            refresh_interval=settings.signing_key_refresh_seconds,
        )
        app.state.codec = build_codec(settings, keys=keyring, clock=wall_clock)
        app.state.bearer = build_bearer_check(
            settings, app.state.database, app.state.codec, app_metrics
        )
        app.state.throttle = build_throttle(settings)
        app.state.identifier_hash = build_identifier_hash(settings)
        app.state.keyed_hashes = build_keyed_hashes(settings)
        app.state.wall_clock = wall_clock
        app.state.upstream_clients = build_upstream_clients(
            settings, monotonic=clock, clock=wall_clock
        )
        for upstream in app.state.upstream_clients.values():
            app_metrics.watch_breaker(upstream.breaker)
        app.state.mail_sender = MailSender(
            app.state.database, settings, metrics=mail_metrics, clock=wall_clock, monotonic=clock
        )
        app_metrics.watch_breaker(app.state.mail_sender.breaker)
        if settings.mail_sender_enabled:
            app.state.mail_sender.start()
        if settings.environment == "production" and "127.0.0.1" in settings.public_url:
            log.warning("PUBLIC_URL points to 127.0.0.1: links in mails work on this machine only")
        if settings.session_cleanup_interval_seconds:
            background.append(
                asyncio.create_task(_purge_periodically(app.state.database, settings, wall_clock))
            )
        passkeys_off = RelyingParty.from_settings(settings).unavailable_reason
        if passkeys_off is not None:
            log.warning("passkeys unavailable", reason=passkeys_off, public_url=settings.public_url)
        log.info("service started", version=__version__, environment=settings.environment)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.mail_sender.stop()
            for upstream in app.state.upstream_clients.values():
                await upstream.http.aclose()
            await app.state.throttle.close()
            await app.state.database.dispose()
            app.state.bearer.close()
            await app.state.id_token_keys.close()
            app.state.hasher.close()
            if key_version is not None:
                key_version.close()
            log.info("service stopped")

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package itself (no CDN);
    # with the docs turned off there is nothing to serve, so a plain FastAPI does.
    factory = FastAPIOffline if settings.docs_enabled else FastAPI
    app: FastAPI = factory(
        # `/users/me/` is an unknown route (404), not a 307 to a URL built from Host.
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
        title="Authentication Service",
        version=__version__,
        summary="Registration, login and JWT access/refresh tokens",
        description=DESCRIPTION,
        lifespan=lifespan,
        contact={"name": "authsvc maintainers"},
        license_info={"name": "MIT", "identifier": "MIT"},
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        redoc_url=None,  # app.routes.docs serves it, keeping ReDoc from calling its CDN
        openapi_tags=[
            {"name": "auth", "description": "Registration, login and tokens"},
            {"name": "users", "description": "The signed-in user's account"},
            {"name": "admin", "description": "Accounts and the audit trail (admin role)"},
            {"name": "health", "description": "Liveness and readiness for load balancers"},
            {"name": "discovery", "description": "Public keys and metadata for other services"},
        ],
    )
    app.state.settings = settings
    app.state.metrics = app_metrics
    app.state.wall_clock = wall_clock
    register_exception_handlers(app)
    app.router.routes.extend(route_table(with_docs=settings.docs_enabled))
    install_openapi(app, components=TOKEN_REQUEST_COMPONENTS)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            ContractCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Outside the general CORS: the application endpoints answer the applications' origins.
    app.add_middleware(
        ApplicationCORSMiddleware,
        database=lambda: app.state.database,
        configured=settings.cors_origins,
    )
    app.add_middleware(HeadAsGetMiddleware)  # inside the request log: it shows HEAD
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app_metrics,
        trusted_proxies=settings.proxy_networks,
        trust_unix_socket=settings.trust_unix_socket,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app


app = create_app()
