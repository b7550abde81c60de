"""UPSTREAM_PROVIDERS: what a provider's entry must say, read from the environment's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.support.settings import TEST_SECRET, build_settings

GOOGLE = {
    "name": "google",
    "display_name": "Google",
    "kind": "oidc",
    "issuer": "https://accounts.google.com",
    "client_id": "id",
    "client_secret": "s3cr3t-value",
}


def test_providers_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    github = {"name": "github", "display_name": "GitHub", "kind": "github", "client_id": "c"}
    monkeypatch.setenv("UPSTREAM_PROVIDERS", json.dumps([GOOGLE, {**github, "client_secret": "s"}]))
    # Settings itself: the suite's build_settings reads no environment.
    settings = Settings(_env_file=None, secret_key=TEST_SECRET, environment="test")
    google, hub = settings.upstream_providers
    assert google.requested_scopes == ["openid", "email", "profile"]
    assert hub.requested_scopes == ["read:user", "user:email"]
    assert settings.upstream_provider("github") is hub
    assert "s3cr3t-value" not in repr(google)


@pytest.mark.parametrize(
    "entry",
    [
        {**GOOGLE, "issuer": None},  # an oidc provider needs its issuer
        {**GOOGLE, "token_url": "https://x.example/token"},  # endpoints come from discovery
        {**GOOGLE, "kind": "github"},  # GitHub has no issuer
        {**GOOGLE, "name": "Google Inc"},  # a name goes into a URL
        {**GOOGLE, "kind": "saml"},
        {**GOOGLE, "unknown": 1},
    ],
)
def test_a_wrong_provider_entry_is_refused(tmp_path: Path, entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        build_settings("sqlite+aiosqlite://", tmp_path, upstream_providers=[entry])


def test_a_name_is_used_once(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="names each provider once"):
        build_settings("sqlite+aiosqlite://", tmp_path, upstream_providers=[GOOGLE, GOOGLE])
