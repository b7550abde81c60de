"""Mail settings: link templates, the mail directory, and refusals of bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.mail.messages import sender_domain
from app.recovery.service import mask_email


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_links_point_to_the_service_pages_under_public_url() -> None:
    settings = _settings(public_url="https://auth.example.com/")
    assert settings.link("reset", "abc") == "https://auth.example.com/reset-password?token=abc"
    assert settings.link("verify", "abc") == "https://auth.example.com/verify-email?token=abc"


def test_a_product_can_point_the_links_at_its_own_pages() -> None:
    settings = _settings(
        public_url="https://auth.example.com",
        password_reset_url="{PUBLIC_URL}/account/reset#t={token}",
        email_verification_url="https://app.example.com/verify?token={token}",
    )
    assert settings.link("reset", "abc") == "https://auth.example.com/account/reset#t=abc"
    assert settings.link("verify", "abc") == "https://app.example.com/verify?token=abc"


def test_a_link_template_without_a_token_slot_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"must contain \{token\}"):
        _settings(password_reset_url="https://app.example.com/reset")


def test_a_malformed_reset_limit_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(rate_limit_password_reset="three an hour")


def test_the_mail_directory_is_in_the_working_directory_without_a_sqlite_file() -> None:
    settings = _settings(database_url="postgresql+asyncpg://u@localhost/db")
    assert settings.default_mail_dir() == Path.cwd() / "mail"
    assert _settings(mail_file_dir="/var/mail/authsvc").default_mail_dir() == Path(
        "/var/mail/authsvc"
    )


def test_the_smtp_password_is_a_secret() -> None:
    settings = _settings(smtp_username="mailer", smtp_password="hunter2-hunter2")
    assert "hunter2" not in repr(settings)


def test_a_masked_address_keeps_its_first_letter_and_domain() -> None:
    assert mask_email("alice@example.org") == "a***@example.org"


def test_message_ids_use_the_domain_of_mail_from() -> None:
    assert sender_domain("Example <no-reply@example.com>") == "example.com"
    assert sender_domain("nobody") == "localhost"
