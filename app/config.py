"""Settings, read from the environment (and a `.env` file) under the contract's names."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import secrets
import stat
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from app.utils.logger import get_logger

log = get_logger(__name__)

MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output
MIN_METRICS_TOKEN_CHARS = 16
UNIX_SOCKET_PROXY = "unix"
KNOWN_PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "your-secret-key",
        "your_secret_key",
        "your-secret-key-here",
        "supersecret",
        "super-secret-key",
        "development",
        "dev-secret-key",
    }
)
# The least Shannon estimate (bits) a key may score, of its characters and of the steps
# between neighbouring characters. Random keys score far above it (32 random decimal digits
# score 80 or more, 32 hex digits 95 or more, the generated key about 330); typed patterns
# (`aaaa…`, `abab…`, `abcd…`, `aaaabbbb…`) score below it. See docs/security.md.
MIN_SECRET_ENTROPY_BITS = 64


class ConfigurationError(ValueError):
    """A setting that the service refuses to run with; the message is one line."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _parse_proxy(item: str) -> object:
    if item.lower() == UNIX_SOCKET_PROXY:
        return UNIX_SOCKET_PROXY
    return ip_network(item, strict=False)


GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
GITHUB_API_URL = "https://api.github.com"


class UpstreamProvider(BaseModel):
    """One provider people may sign in with (an item of UPSTREAM_PROVIDERS): any OpenID
    Connect provider (`kind: "oidc"`, found by discovery at its issuer) or GitHub (OAuth2
    and its REST API: GitHub issues no ID token)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # In the callback URL (`/login/{name}/callback`) and the identities' `provider`.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    display_name: str = Field(min_length=1, max_length=64)
    kind: Literal["oidc", "github"]
    issuer: str | None = None
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr
    scopes: list[str] | None = None
    allow_signup: bool = True
    authorize_url: str | None = None
    token_url: str | None = None
    api_url: str | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> UpstreamProvider:
        if self.kind == "oidc":
            if not self.issuer or urlsplit(self.issuer).scheme not in ("http", "https"):
                raise ValueError(f"provider {self.name!r}: an oidc provider needs its issuer URL")
            if self.authorize_url or self.token_url or self.api_url:
                raise ValueError(
                    f"provider {self.name!r}: an oidc provider's endpoints come from discovery"
                )
        elif self.issuer:
            raise ValueError(f"provider {self.name!r}: a github provider takes no issuer")
        return self

    @property
    def requested_scopes(self) -> list[str]:
        if self.scopes is not None:
            return self.scopes
        if self.kind == "github":
            # The numeric id and login come with any token; the addresses need user:email.
            return ["read:user", "user:email"]
        return ["openid", "email", "profile"]


class Settings(BaseSettings):
    """Every tunable of the service; see the configuration table in README.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./auth.db"
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None

    access_token_expire_minutes: int = Field(30, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(7, ge=1, le=365)
    # Live sessions one account may hold; a sign-in beyond it ends the least recently used.
    sessions_per_user_max: int = Field(100, ge=1, le=10_000)
    # The absolute end of a session, counted from its sign-in; unset: REFRESH_TOKEN_EXPIRE_DAYS.
    session_max_lifetime_days: int | None = Field(None, ge=1, le=365)
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "EdDSA", "ES256", "RS256"] = "HS256"
    # Empty (the default): PUBLIC_URL, so tokens and the RFC 8414 metadata name one issuer.
    jwt_issuer: str = ""
    jwt_audience: str = "authsvc"

    password_scheme: Literal["argon2id", "bcrypt"] = "argon2id"  # noqa: S105
    password_min_length: int = Field(8, ge=8, le=64)
    argon2_memory_kib: int = Field(19_456, ge=8)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_parallelism: int = Field(1, ge=1)
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    hash_concurrency: int | None = Field(None, ge=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    cors_origins: Annotated[list[str], NoDecode] = []

    # Users of live sessions kept for /users/me while a SQLite file provably has not
    # changed (PRAGMA data_version); 0 turns the cache off. PostgreSQL: no cache.
    bearer_cache_size: int = Field(10_000, ge=0)

    # Unset: the backend's default (database.SQLITE_POOL, SERVER_POOL): 5 and 0, 10 and 10.
    db_pool_size: int | None = Field(None, ge=1)
    db_max_overflow: int | None = Field(None, ge=0)
    db_pool_timeout: float = Field(5.0, gt=0)
    db_connect_timeout: float = Field(5.0, gt=0)
    db_statement_timeout_ms: int = Field(5_000, ge=0)
    db_health_timeout: float = Field(2.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(5_000, ge=0)
    db_auto_migrate: bool = True

    # Open periods start at the initial timeout and double per failed trial up to the
    # timeout (app/utils/circuit_breaker.py): a blip costs a second, an outage one trial
    # a minute. docs/operating.md, "Circuit breakers".
    circuit_breaker_threshold: int = Field(5, ge=1)
    circuit_breaker_timeout: float = Field(60.0, gt=0)
    circuit_breaker_initial_timeout: float = Field(1.0, gt=0)
    circuit_breaker_half_open_max_calls: int = Field(1, ge=1)

    redis_url: str | None = None
    redis_key_prefix: str = "authsvc"
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Request heads under `authsvc serve` (app/http_protocol.py, docs/deployment.md).
    http_max_header_bytes: int = Field(16 * 1024, ge=1024)
    http_max_headers: int = Field(100, ge=16)
    http_header_read_timeout: float = Field(10.0, gt=0)
    docs_enabled: bool = True

    # Throttling, in the `limits` notation ("5/5 minutes;10/hour"). Stacked windows give a
    # growing back-off. The tight limit counts per (account, client address), so nobody can
    # lock a victim out from elsewhere; the ceiling counts per account across all addresses
    # (NIST SP 800-63B §5.2.2: at most 100 failures). docs/security.md, "Throttling".
    rate_limit_enabled: bool = True
    rate_limit_login_account: str = "5/5 minutes;10/hour;20/day"
    rate_limit_login_account_ceiling: str = "100/day"
    rate_limit_login_ip: str = "30/minute;300/hour"
    rate_limit_register_ip: str = "10/minute;50/hour"
    rate_limit_refresh_ip: str = "60/minute"
    # Second steps of sign-in whose `mfa_token` is unknown or expired, per client address.
    rate_limit_signin_flow_ip: str = "10/minute;100/hour"
    # Options to sign in with a passkey, per client (each stores a challenge).
    rate_limit_passkey_options_ip: str = "30/minute;300/hour"
    # Addresses/CIDRs whose X-Forwarded-For is believed; `unix` trusts a Unix-socket peer.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network | Literal["unix"]], NoDecode] = []
    # When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; else loopback.
    metrics_token: SecretStr | None = None

    refresh_token_rotation: bool = False

    # OpenID Connect (docs/openid-provider.md). ID tokens are always signed with a key
    # pair, published in the JWKS, whatever JWT_ALGORITHM is.
    id_token_algorithm: Literal["RS256", "ES256", "EdDSA"] = "RS256"  # noqa: S105
    # The password grant (RFC 6749 §4.3) at /auth/token; RFC 9700 §2.4 forbids it for new
    # clients, so production deployments that serve applications turn it off.
    oauth2_password_grant: bool = True

    # Two-factor authentication: the name authenticator apps show, and how long the
    # `mfa_token` of a sign-in waiting for its second factor lives.
    totp_issuer: str = Field("authsvc", min_length=1, max_length=64)
    mfa_token_expire_seconds: int = Field(300, ge=30, le=900)
    # Passkeys (docs/passkeys.md): the relying party's id (a registrable domain; the host
    # of PUBLIC_URL when unset), the name authenticators show, and the origins whose
    # ceremonies are accepted (the origin of PUBLIC_URL when unset).
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str = Field("authsvc", min_length=1, max_length=64)
    webauthn_origins: Annotated[list[str], NoDecode] = []
    # Sensitive changes without a current password need a sign-in at most this old.
    reauth_max_age_seconds: int = Field(300, ge=30, le=24 * 3600)
    # Asymmetric signing keys (docs/tokens.md): how often each worker rereads them.
    signing_key_refresh_seconds: float = Field(60.0, gt=0, le=3600)
    session_cleanup_interval_seconds: int = Field(3600, ge=0)
    # Audit events older than this are deleted by the same periodic clean-up; 0 keeps them.
    audit_retention_days: int = Field(90, ge=0, le=36_500)

    # Mail, password reset and email verification (docs/mail-and-recovery.md).
    mail_backend: Literal["file", "smtp"] = "file"
    mail_file_dir: Path | None = None
    mail_from: str = "authsvc <no-reply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(10.0, gt=0)
    # Where the service is reached from outside: absolute URLs (metadata, links) start here.
    # localhost, not 127.0.0.1: browsers refuse passkeys on an IP address.
    public_url: str = "http://localhost:8000"
    password_reset_url: str | None = None
    email_verification_url: str | None = None
    password_reset_token_expire_minutes: int = Field(30, ge=1, le=24 * 60)
    email_verification_token_expire_hours: int = Field(48, ge=1, le=30 * 24)
    email_verification_required: bool = False
    rate_limit_password_reset: str = "3/hour"  # noqa: S105
    rate_limit_password_reset_ip: str = "20/hour"  # noqa: S105
    # `PUT /users/me/email`, per account; its client counts in RATE_LIMIT_PASSWORD_RESET_IP.
    rate_limit_email_change: str = "3/hour"
    mail_sender_enabled: bool = True
    mail_poll_interval_seconds: float = Field(1.0, gt=0, le=60)
    mail_retry_base_seconds: float = Field(1.0, gt=0)
    mail_retry_max_seconds: float = Field(60.0, gt=0)
    mail_max_attempts: int = Field(10, ge=1, le=100)
    mail_lease_seconds: float = Field(30.0, gt=0)
    mail_batch_size: int = Field(20, ge=1, le=500)
    # The sender's breaker grows like the database's; it never waits longer than the
    # retry policy would (MAIL_RETRY_MAX_SECONDS), so mail leaves soon after an outage.
    mail_circuit_breaker_threshold: int = Field(5, ge=1)
    mail_circuit_breaker_timeout: float = Field(5.0, gt=0)
    mail_circuit_breaker_initial_timeout: float = Field(1.0, gt=0)

    # Other providers people sign in with (docs/providers.md), a JSON list.
    upstream_providers: list[UpstreamProvider] = []
    # Each call to a provider (discovery, keys, token, user info) gives up after this long.
    upstream_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # How long a sign-in at a provider may take, from leaving to coming back.
    upstream_flow_expire_seconds: int = Field(600, ge=60, le=3600)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_cors(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webauthn_origins", mode="before")
    @classmethod
    def _parse_webauthn_origins(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [item.rstrip("/") if isinstance(item, str) else item for item in value]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [_parse_proxy(item) if isinstance(item, str) else item for item in value]
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(
                f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator(
        "rate_limit_login_account",
        "rate_limit_login_account_ceiling",
        "rate_limit_login_ip",
        "rate_limit_register_ip",
        "rate_limit_refresh_ip",
        "rate_limit_signin_flow_ip",
        "rate_limit_passkey_options_ip",
        "rate_limit_password_reset",
        "rate_limit_password_reset_ip",
        "rate_limit_email_change",
    )
    @classmethod
    def _parse_limits(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit string
        return value

    @field_validator("public_url")
    @classmethod
    def _parse_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PUBLIC_URL must be an absolute http(s) URL")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("PUBLIC_URL must have no query or fragment: links are built on it")
        if parts.username is not None or parts.password is not None:
            raise ValueError("PUBLIC_URL must not carry credentials")
        return value.rstrip("/")

    @field_validator("upstream_providers")
    @classmethod
    def _unique_providers(cls, value: list[UpstreamProvider]) -> list[UpstreamProvider]:
        names = Counter(provider.name for provider in value)
        twice = sorted(name for name, count in names.items() if count > 1)
        if twice:
            raise ValueError(f"UPSTREAM_PROVIDERS names each provider once: {', '.join(twice)}")
        return value

    def upstream_provider(self, name: str) -> UpstreamProvider | None:
        return next((p for p in self.upstream_providers if p.name == name), None)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        # A weak key is refused wherever it is set, not only in production: a development
        # or staging service with a guessable key hands out forgeable tokens just as well.
        # Tests alone may use fixed keys; unset outside production, a random key is generated.
        if self.environment == "production" or (
            self.environment != "test" and self.secret_key is not None
        ):
            problem = secret_key_problem(self.secret_key, environment=self.environment)
            if problem:
                raise ConfigurationError(problem)
        if "*" in self.cors_origins:
            raise ConfigurationError("CORS_ORIGINS must list origins; '*' is not allowed")
        if self.environment == "production" and not self.public_url.startswith("https://"):
            # Tokens, links in mails and the metadata all name PUBLIC_URL; over http they
            # travel in clear text (http://localhost is for development only).
            raise ConfigurationError(
                f"PUBLIC_URL must be an https:// URL when ENVIRONMENT=production, "
                f"not {self.public_url}"
            )
        if not self.jwt_issuer:
            self.jwt_issuer = self.public_url
        return self

    @field_validator("password_reset_url", "email_verification_url")
    @classmethod
    def _has_token_slot(cls, value: str | None) -> str | None:
        if value is not None and "{token}" not in value:
            raise ValueError("must contain {token}, where the link's token goes")
        return value

    @property
    def uses_key_pairs(self) -> bool:
        """True for EdDSA, ES256 and RS256: keys in the database, public ones published."""
        return not self.jwt_algorithm.startswith("HS")

    @property
    def proxy_networks(self) -> list[IPv4Network | IPv6Network]:
        return [item for item in self.trusted_proxies if not isinstance(item, str)]

    @property
    def trust_unix_socket(self) -> bool:
        return UNIX_SOCKET_PROXY in self.trusted_proxies

    @property
    def session_max_lifetime(self) -> timedelta:
        return timedelta(days=self.session_max_lifetime_days or self.refresh_token_expire_days)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def default_secret_key_file(self) -> Path:
        """Where a development key lives: beside the SQLite file, else the working directory."""
        if self.secret_key_file is not None:
            return self.secret_key_file
        url = make_url(self.database_url)
        if self.is_sqlite and url.database and url.database != ":memory:":
            return Path(url.database).resolve().parent / ".secret_key"
        return Path.cwd() / ".secret_key"

    def default_mail_dir(self) -> Path:
        """Where the `file` mail backend writes: MAIL_FILE_DIR, else `mail/` beside the
        SQLite file, else in the working directory."""
        if self.mail_file_dir is not None:
            return self.mail_file_dir
        url = make_url(self.database_url)
        if self.is_sqlite and url.database and url.database != ":memory:":
            return Path(url.database).resolve().parent / "mail"
        return Path.cwd() / "mail"

    @property
    def passkey_rp_id(self) -> str:
        """The WebAuthn relying party id: WEBAUTHN_RP_ID, else the host of PUBLIC_URL."""
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "")

    @property
    def passkey_origins(self) -> list[str]:
        """The origins whose ceremonies count: WEBAUTHN_ORIGINS, else PUBLIC_URL's."""
        if self.webauthn_origins:
            return list(self.webauthn_origins)
        parts = urlsplit(self.public_url)
        return [f"{parts.scheme}://{parts.netloc}"]

    def link(self, kind: Literal["reset", "verify"], token: str) -> str:
        """The link a mail carries: PASSWORD_RESET_URL / EMAIL_VERIFICATION_URL with the
        token in its slot, by default a page of this service under PUBLIC_URL."""
        base = self.public_url.rstrip("/")
        if kind == "reset":
            template = self.password_reset_url or base + "/reset-password?token={token}"
        else:
            template = self.email_verification_url or base + "/verify-email?token={token}"
        return template.replace("{PUBLIC_URL}", base).replace("{token}", token)


_GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def secret_key_problem(secret: SecretStr | None, *, environment: str = "production") -> str | None:
    """Why a SECRET_KEY is unacceptable, or None."""
    if secret is None or not secret.get_secret_value():
        return f"SECRET_KEY must be set when ENVIRONMENT={environment}"
    return key_weakness(secret.get_secret_value(), name="SECRET_KEY")


def key_weakness(value: str, *, name: str) -> str | None:
    """Why `value` is too weak to sign tokens with (short, placeholder, low entropy), or None.

    The entropy test is a tripwire for keys a person typed, not a proof of randomness: it
    estimates the Shannon entropy of the characters and of the differences between
    neighbouring characters (which exposes runs and sequences), and refuses a key that
    is one shorter string repeated.
    """
    if value.strip().lower() in KNOWN_PLACEHOLDERS:
        return f"{name} is a well-known placeholder; {_GENERATE_HINT}"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"{name} must be at least {MIN_SECRET_BYTES} bytes; {_GENERATE_HINT}"
    if _repeats_a_shorter_string(value) or _entropy_estimate(value) < MIN_SECRET_ENTROPY_BITS:
        return (
            f"{name} has too little entropy (repeated or sequential characters); {_GENERATE_HINT}"
        )
    return None


def _shannon_bits(symbols: Sequence[object]) -> float:
    counts, total = Counter(symbols), len(symbols)
    return -sum(c * math.log2(c / total) for c in counts.values())


def _entropy_estimate(value: str) -> float:
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(value)]
    return min(_shannon_bits(value), _shannon_bits(steps))


def _repeats_a_shorter_string(value: str) -> bool:
    # `secretsecretsecret…`: the smallest period of the string is at most half its length.
    return any(
        value == (value[:period] * (len(value) // period + 1))[: len(value)]
        for period in range(1, len(value) // 2 + 1)
    )


def resolve_secret_key(settings: Settings) -> str:
    """The signing key: SECRET_KEY, else (outside production) a generated key kept in a file.

    The file is created atomically (written aside, then hard-linked into place), so several
    workers starting at once all end up reading the same key. An existing file is used only
    when nobody else can write it (see `_read_key_file`). Raises ConfigurationError.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = settings.default_secret_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.chmod(tmp, 0o600)
            # Losing the race is fine: the winner's key is the one everybody reads.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = _read_key_file(path)
    if len(key.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes")
    if settings.environment != "test":
        weakness = key_weakness(key, name=f"the key in {path}")
        if weakness:
            raise ConfigurationError(weakness)
    return key


def _read_key_file(path: Path) -> str:
    """The key file's text, refused when another user could have written it.

    Like OpenSSH's StrictModes: whoever can write the signing key can mint tokens for any
    account, so the file must belong to us (or root) and be writable by nobody else. A
    file others can read is used, with a warning: they could forge tokens with it.
    The checks run on the open file (fstat), not on the name, so a swap between the check
    and the read cannot slip another file in.
    """
    with path.open(encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if hasattr(os, "getuid"):
            owners = {os.getuid(), 0}
            if info.st_uid not in owners:
                raise ConfigurationError(
                    f"{path} belongs to another user (uid {info.st_uid}); "
                    "the signing key must be the service's own: chown it or remove it"
                )
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise ConfigurationError(
                    f"{path} is writable by group or others (mode "
                    f"{stat.S_IMODE(info.st_mode):04o}); anyone who can write it can forge "
                    f"tokens: chmod 600 {path}"
                )
            if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
                log.warning(
                    "secret key file readable by others",
                    path=str(path),
                    mode=f"{stat.S_IMODE(info.st_mode):04o}",
                    fix=f"chmod 600 {path}",
                )
        return handle.read().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
