"""Builds the service's collaborators from settings, once, for every entry point.

The application's lifespan, the request dependencies and the CLI all call these, so the
CLI hashes and signs exactly as the running service does without building an app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.account.reauth import Reauthentication
from app.auth import AuthService
from app.config import Settings, resolve_secret_key
from app.core.jwt import KeySet, TokenCodec
from app.core.passwords import PasswordHasher
from app.database import Database
from app.mail.outbox import Outbox
from app.metrics import Metrics
from app.sessions.bearer import BearerCheck, LiveSessions, SqliteDataVersion
from app.sessions.browser import BrowserCookie, BrowserSessions
from app.sessions.service import SessionService
from app.sessions.tokens import SessionTokens
from app.signin.flow import FlowStore
from app.signin.methods.base import MethodContext
from app.signin.methods.upstream.client import UpstreamClient
from app.signin.two_factor import TwoFactor
from app.throttle import Throttle, ThrottleRules, build_storage
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.circuit_breaker import CircuitBreaker
from app.utils.clock import Clock, utc_now
from app.utils.crypto import SecretBox
from app.utils.keyed_hash import KeyedHash


def build_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        settings.password_scheme,
        argon2_memory_kib=settings.argon2_memory_kib,
        argon2_time_cost=settings.argon2_time_cost,
        argon2_parallelism=settings.argon2_parallelism,
        bcrypt_rounds=settings.bcrypt_rounds,
        max_concurrency=settings.hash_concurrency,
    )


def build_codec(
    settings: Settings, *, keys: KeySet | None = None, clock: Clock = utc_now
) -> TokenCodec:
    """The codec; with an asymmetric JWT_ALGORITHM it signs with `keys` (the lifespan's
    KeyRing). Without one it can still be built (the CLI never signs), but not sign."""
    return TokenCodec(
        key=resolve_secret_key(settings),
        keys=keys,
        clock=clock,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
        algorithm=settings.jwt_algorithm,
    )


# HKDF `info` labels of the keys derived from SECRET_KEY here (app.utils.keyed_hash).
THROTTLE_KEY_INFO = b"authsvc/v1/throttle-account-key"
LOG_IDENTIFIER_INFO = b"authsvc/v1/log-identifier"


def build_bearer_check(
    settings: Settings, database: Database, codec: TokenCodec, metrics: Metrics
) -> BearerCheck:
    """The read path's check, with its cache where the database can say it has not changed
    (a SQLite file); on PostgreSQL every request asks the database."""
    version = SqliteDataVersion.for_url(settings.database_url)
    cache = None
    if version is not None and settings.bearer_cache_size:
        cache = LiveSessions(version, capacity=settings.bearer_cache_size)
    return BearerCheck(database, codec, metrics, cache)


def build_throttle(settings: Settings) -> Throttle:
    storage = build_storage(settings.redis_url, key_prefix=settings.redis_key_prefix)
    rules = ThrottleRules(
        login_account=settings.rate_limit_login_account,
        login_account_ceiling=settings.rate_limit_login_account_ceiling,
        login_ip=settings.rate_limit_login_ip,
        register_ip=settings.rate_limit_register_ip,
        refresh_ip=settings.rate_limit_refresh_ip,
        mail_address=settings.rate_limit_password_reset,
        mail_ip=settings.rate_limit_password_reset_ip,
        signin_flow_ip=settings.rate_limit_signin_flow_ip,
        email_change_account=settings.rate_limit_email_change,
        passkey_options_ip=settings.rate_limit_passkey_options_ip,
    )
    account_hash = KeyedHash.from_secret(resolve_secret_key(settings), THROTTLE_KEY_INFO)
    return Throttle(storage, rules, account_hash=account_hash, enabled=settings.rate_limit_enabled)


def build_identifier_hash(settings: Settings) -> KeyedHash:
    """The keyed hash that stands for an unknown login identifier in the log (64 bits)."""
    return KeyedHash.from_secret(resolve_secret_key(settings), LOG_IDENTIFIER_INFO, hex_chars=16)


def log_secrets(settings: Settings) -> list[str]:
    """Values the log pipeline masks wherever they show up: the signing key, the metrics
    token, the SMTP password."""
    secrets = [resolve_secret_key(settings)]
    for secret in (settings.metrics_token, settings.smtp_password):
        if secret is not None and secret.get_secret_value():
            secrets.append(secret.get_secret_value())
    return secrets


def build_keyed_hashes(settings: Settings) -> Callable[[bytes], Callable[[str], str]]:
    """Keyed hashes from SECRET_KEY, one per HKDF `info` label, each derived once."""
    secret = resolve_secret_key(settings)

    @functools.cache
    def keyed_hash(info: bytes) -> Callable[[str], str]:
        return KeyedHash.from_secret(secret, info, hex_chars=16)

    return keyed_hash


def build_method_context(
    settings: Settings,
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    box: SecretBox,
    keyed_hashes: Callable[[bytes], Callable[[str], str]],
    throttle: Throttle | None = None,
    client_ip: str | None = None,
    clock: Clock = utc_now,
) -> MethodContext:
    """What every sign-in method gets; `box` is `totp_box(SECRET_KEY)`, built once."""
    return MethodContext(
        session,
        hasher=hasher,
        clock=clock,
        settings=settings,
        box=box,
        keyed_hash=keyed_hashes,
        throttle=throttle,
        client_ip=client_ip,
    )


def build_session_tokens(
    settings: Settings,
    session: AsyncSession,
    *,
    codec: TokenCodec,
    throttle: Throttle | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
    metrics: Metrics | None = None,
    clock: Clock = utc_now,
) -> SessionTokens:
    return SessionTokens(
        UserService(session),
        codec=codec,
        sessions=SessionService(session, max_per_user=settings.sessions_per_user_max),
        throttle=throttle,
        client_ip=client_ip,
        user_agent=user_agent,
        rotate_refresh_tokens=settings.refresh_token_rotation,
        clock=clock,
        metrics=metrics,
        transaction=Transaction(session),
        session_max_lifetime=settings.session_max_lifetime,
    )


def build_browser_sessions(
    settings: Settings,
    session: AsyncSession,
    *,
    client_ip: str | None = None,
    user_agent: str | None = None,
    clock: Clock = utc_now,
) -> BrowserSessions:
    """The hosted pages' sessions: `Secure` cookies whenever PUBLIC_URL is https, and the
    same absolute lifetime as the JSON API's sessions."""
    return BrowserSessions(
        session,
        cookie=BrowserCookie(secure=settings.public_url.startswith("https://")),
        lifetime=settings.session_max_lifetime,
        sessions=SessionService(session, max_per_user=settings.sessions_per_user_max),
        clock=clock,
        client_ip=client_ip,
        user_agent=user_agent,
    )


def build_reauthentication(
    settings: Settings,
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    throttle: Throttle | None = None,
    client_ip: str | None = None,
    clock: Clock = utc_now,
) -> Reauthentication:
    return Reauthentication(
        Transaction(session),
        hasher=hasher,
        throttle=throttle,
        client_ip=client_ip,
        clock=clock,
        max_age=timedelta(seconds=settings.reauth_max_age_seconds),
    )


def build_two_factor(
    settings: Settings,
    ctx: MethodContext,
    *,
    reauth: Reauthentication,
    outbox: Outbox | None,
) -> TwoFactor:
    flows = FlowStore(
        ctx.session, clock=ctx.clock, ttl=timedelta(seconds=settings.mfa_token_expire_seconds)
    )
    return TwoFactor(ctx, flows=flows, reauth=reauth, outbox=outbox)


def build_auth_service(
    settings: Settings,
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    codec: TokenCodec,
    throttle: Throttle | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
    metrics: Metrics | None = None,
    identifier_hash: Callable[[str], str] | None = None,
    clock: Clock = utc_now,
    outbox: Outbox | None = None,
    methods: MethodContext | None = None,
) -> AuthService:
    """The three flows on one database session; the CLI passes no throttle (an
    operator's act)."""
    return AuthService(
        UserService(session),
        hasher=hasher,
        codec=codec,
        sessions=SessionService(session, max_per_user=settings.sessions_per_user_max),
        throttle=throttle,
        client_ip=client_ip,
        user_agent=user_agent,
        rotate_refresh_tokens=settings.refresh_token_rotation,
        password_min_length=settings.password_min_length,
        metrics=metrics,
        transaction=Transaction(session),
        identifier_hash=identifier_hash,
        session_max_lifetime=settings.session_max_lifetime,
        clock=clock,
        outbox=outbox,
        require_verified_email=settings.email_verification_required,
        methods=methods,
        flow_ttl=timedelta(seconds=settings.mfa_token_expire_seconds),
    )


def build_upstream_clients(
    settings: Settings, *, monotonic: Callable[[], float], clock: Clock = utc_now
) -> dict[str, UpstreamClient]:
    """One protocol client per configured provider, each with its own HTTP connection
    pool (with timeouts) and circuit breaker: one provider down sheds only its own calls.
    httpx is imported here, only where a provider is configured (its ~3 MB per worker)."""
    import httpx

    timeout = httpx.Timeout(settings.upstream_timeout_seconds)
    return {
        provider.name: UpstreamClient(
            provider,
            http=httpx.AsyncClient(timeout=timeout, follow_redirects=False),
            breaker=CircuitBreaker(
                f"upstream_{provider.name}",
                failure_threshold=settings.circuit_breaker_threshold,
                recovery_timeout=settings.circuit_breaker_timeout,
                half_open_max_calls=settings.circuit_breaker_half_open_max_calls,
                clock=monotonic,
            ),
            clock=clock,
        )
        for provider in settings.upstream_providers
    }
