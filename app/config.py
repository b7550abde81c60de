"""Settings, read from the environment (and a `.env` file) under the names of API.md."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output
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


class ConfigurationError(ValueError):
    """A setting that the service refuses to run with; the message is one line."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every tunable of the service; see the configuration table in README.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./auth.db"
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None

    access_token_expire_minutes: int = Field(30, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(7, ge=1, le=365)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "authsvc"
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

    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(5.0, gt=0)
    db_connect_timeout: float = Field(5.0, gt=0)
    db_statement_timeout_ms: int = Field(5_000, ge=0)
    db_health_timeout: float = Field(2.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(5_000, ge=0)
    db_auto_migrate: bool = True

    circuit_breaker_threshold: int = Field(5, ge=1)
    circuit_breaker_timeout: float = Field(60.0, gt=0)
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
    # growing back-off; the account defaults stop an online guessing attack at 20 guesses a
    # day, far below NIST SP 800-63B §5.2.2's ceiling of 100 consecutive failures.
    rate_limit_enabled: bool = True
    rate_limit_login_account: str = "5/5 minutes;10/hour;20/day"
    rate_limit_login_ip: str = "30/minute;300/hour"
    rate_limit_register_ip: str = "10/minute;50/hour"
    rate_limit_refresh_ip: str = "60/minute"
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []

    refresh_token_rotation: bool = False

    # Two-factor authentication: the name authenticator apps show, and how long the
    # `mfa_token` of a sign-in waiting for its second factor lives.
    totp_issuer: str = Field("authsvc", min_length=1, max_length=64)
    mfa_token_expire_seconds: int = Field(300, ge=30, le=900)
    session_cleanup_interval_seconds: int = Field(3600, ge=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_cors(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [
                ip_network(item, strict=False) if isinstance(item, str) else item for item in value
            ]
        return value

    @field_validator(
        "rate_limit_login_account",
        "rate_limit_login_ip",
        "rate_limit_register_ip",
        "rate_limit_refresh_ip",
    )
    @classmethod
    def _parse_limits(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit string
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            problem = secret_key_problem(self.secret_key)
            if problem:
                raise ConfigurationError(problem)
        if "*" in self.cors_origins:
            raise ConfigurationError("CORS_ORIGINS must list origins; '*' is not allowed")
        return self

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


def secret_key_problem(secret: SecretStr | None) -> str | None:
    """Why a production SECRET_KEY is unacceptable, or None."""
    if secret is None or not secret.get_secret_value():
        return "SECRET_KEY must be set when ENVIRONMENT=production"
    value = secret.get_secret_value()
    if value.strip().lower() in KNOWN_PLACEHOLDERS:
        return (
            "SECRET_KEY is a well-known placeholder; generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes when ENVIRONMENT=production"
    return None


def resolve_secret_key(settings: Settings) -> str:
    """The signing key: SECRET_KEY, else (outside production) a generated key kept in a file.

    The file is created atomically (written aside, then hard-linked into place), so several
    workers starting at once all end up reading the same key.
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
    key = path.read_text().strip()
    if len(key.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes")
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
