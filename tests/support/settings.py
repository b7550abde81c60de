"""Test settings: a fixed signing key, cheap hashing, client limits that suit one address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.config import Settings

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"

# Cheap argon2 parameters keep the suite fast; tests/unit/test_password.py checks the
# production defaults separately.
FAST_HASHING: dict[str, Any] = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}
# Every test talks from one address; per-client limits that suit production would trip the
# suites that register dozens of users. Per-account limits keep their production defaults,
# and tests/integration/test_throttling.py sets its own per-client ones.
GENEROUS_CLIENT_LIMITS: dict[str, Any] = {
    "rate_limit_login_ip": "10000/minute",
    "rate_limit_register_ip": "10000/minute",
    "rate_limit_refresh_ip": "10000/minute",
}


class GivenSettings(Settings):
    """The service's settings, from the values a test gives and nothing else.

    The runner's environment and a `.env` file are not read, so no variable set on a
    developer's machine or a CI runner changes a test. The tests of reading settings from
    the environment build `Settings` itself.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def build_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings (fixed key, cheap hashing) for any database URL."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "environment": "test",
        "secret_key_file": tmp_path / ".secret_key",
        "mail_file_dir": tmp_path / "mail",
        # No background sender unless a test delivers mail (tests.support.mailbox's
        # smtp_overrides turns it on): tests of the pool, the breaker or exact log sequences
        # must not see its queries. Every delivery test runs the real sender.
        "mail_sender_enabled": False,
        **FAST_HASHING,
        **GENEROUS_CLIENT_LIMITS,
        **overrides,
    }
    return GivenSettings(**values)
