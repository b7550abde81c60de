"""Settings: production refuses unsafe keys; development keeps a generated key in a file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, resolve_secret_key


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "SECRET_KEY must be set"),
        ("short-key", "at least 32 bytes"),
        ("changeme", "placeholder"),
        ("your-secret-key", "placeholder"),
    ],
)
def test_production_refuses_unsafe_secret_keys(secret: str | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(environment="production", secret_key=secret)


def test_production_accepts_a_long_random_key() -> None:
    settings = _settings(environment="production", secret_key="k" * 16 + "0123456789abcdef" * 2)
    assert resolve_secret_key(settings) == "k" * 16 + "0123456789abcdef" * 2


def test_development_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = _settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/auth.db")
    first = resolve_secret_key(settings)
    assert len(first) >= 32
    key_file = tmp_path / ".secret_key"
    assert key_file.read_text() == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert resolve_secret_key(settings) == first


def _resolve(path: str) -> str:
    return resolve_secret_key(_settings(secret_key_file=Path(path)))


def test_processes_starting_together_agree_on_the_generated_key(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.key")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_resolve, [path] * 8)
    assert len(set(keys)) == 1


def test_cors_origins_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]


def test_wildcard_cors_origin_is_refused() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        _settings(cors_origins="*")


def test_log_level_is_case_insensitive() -> None:
    assert _settings(log_level="debug").log_level == "DEBUG"
