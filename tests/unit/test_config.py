"""Settings: weak keys are refused outside tests; development keeps a generated key in a
file that nobody else may write."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import ConfigurationError, Settings, resolve_secret_key
from app.utils.logger import setup_logging

RANDOM_KEY = "Vq3xW8pZr2Lm9TgYb6NcJ4hKd7FsA1eU0oRiQ5wXy"
WEAK_KEYS = [
    ("secret", "placeholder"),
    ("changeme", "placeholder"),
    ("short-but-not-a-placeholder", "at least 32 bytes"),
    ("a" * 32, "too little entropy"),
    ("k" * 48, "too little entropy"),
    ("ab" * 16, "too little entropy"),
    ("secret" * 6, "too little entropy"),
    ("0123456789abcdef" * 2, "too little entropy"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "too little entropy"),
    ("aaaabbbbccccddddeeeeffffgggghhhh", "too little entropy"),
]


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
    settings = _settings(
        environment="production", secret_key=RANDOM_KEY, public_url="https://auth.example.com"
    )
    assert resolve_secret_key(settings) == RANDOM_KEY


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize(("secret", "message"), WEAK_KEYS)
def test_weak_secret_keys_are_refused_outside_tests(
    environment: str, secret: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        _settings(environment=environment, secret_key=secret)
    # The message printed at start-up (pydantic's own repr would show the input) names
    # the problem, never the key.
    [message_printed] = [e["msg"] for e in caught.value.errors(include_input=False)]
    assert secret not in message_printed.replace("secrets", "")  # the hint names the module


@pytest.mark.parametrize(("secret", "message"), WEAK_KEYS[:4])
def test_tests_may_use_fixed_keys(secret: str, message: str) -> None:
    assert _settings(environment="test", secret_key=secret).environment == "test"


@pytest.mark.parametrize(
    "key",
    [
        # Drawn anew each run; named, so every pytest-xdist worker collects the same tests.
        pytest.param(secrets.token_urlsafe(48), id="urlsafe-48"),  # what the service generates
        pytest.param(secrets.token_urlsafe(32), id="urlsafe-32"),
        pytest.param(secrets.token_hex(32), id="hex-32"),
        # 32 hex digits: the shortest random key that passes
        pytest.param(secrets.token_hex(16), id="hex-16"),
        pytest.param("".join(secrets.choice("0123456789") for _ in range(40)), id="digits-40"),
        RANDOM_KEY,
    ],
)
def test_random_keys_of_any_common_alphabet_are_accepted(key: str) -> None:
    assert _settings(environment="development", secret_key=key).secret_key is not None


def test_development_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = _settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/auth.db")
    first = resolve_secret_key(settings)
    assert len(first) >= 32
    key_file = tmp_path / ".secret_key"
    assert key_file.read_text() == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert resolve_secret_key(settings) == first


def test_a_development_key_file_with_a_weak_key_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / ".secret_key"
    key_file.write_text("a" * 40)
    key_file.chmod(0o600)

    with pytest.raises(ConfigurationError, match="too little entropy"):
        resolve_secret_key(_settings(secret_key_file=key_file))


def _key_file(tmp_path: Path, mode: int) -> Path:
    key_file = tmp_path / ".secret_key"
    key_file.write_text(RANDOM_KEY)
    key_file.chmod(mode)
    return key_file


@pytest.mark.parametrize("mode", [0o602, 0o666, 0o620, 0o660])
def test_a_key_file_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = _key_file(tmp_path, mode)

    with pytest.raises(ConfigurationError, match="writable by group or others") as caught:
        resolve_secret_key(_settings(secret_key_file=key_file))
    assert f"chmod 600 {key_file}" in str(caught.value)
    assert RANDOM_KEY not in str(caught.value)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_a_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path, 0o600)
    os.chown(key_file, 4242, 4242)

    with pytest.raises(ConfigurationError, match=r"belongs to another user \(uid 4242\)"):
        resolve_secret_key(_settings(secret_key_file=key_file))


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path, mode: int) -> None:
    key_file = _key_file(tmp_path, mode)
    buffer = io.StringIO()
    setup_logging("INFO", "json", stream=buffer)
    try:
        assert resolve_secret_key(_settings(secret_key_file=key_file)) == RANDOM_KEY
    finally:
        setup_logging("INFO", "json")

    [line] = [json.loads(text) for text in buffer.getvalue().splitlines()]
    assert line["level"] == "WARNING"
    assert line["message"] == "secret key file readable by others"
    assert line["mode"] == f"{mode:04o}"
    assert RANDOM_KEY not in buffer.getvalue()


def test_a_key_file_only_we_can_read_gives_no_warning(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path, 0o600)
    buffer = io.StringIO()
    setup_logging("INFO", "json", stream=buffer)
    try:
        assert resolve_secret_key(_settings(secret_key_file=key_file)) == RANDOM_KEY
    finally:
        setup_logging("INFO", "json")
    assert buffer.getvalue() == ""


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


def test_trusted_proxies_take_networks_and_unix_for_a_unix_socket_peer() -> None:
    settings = _settings(trusted_proxies="10.0.0.0/8, UNIX, 2001:db8::1")
    assert settings.trust_unix_socket
    assert [str(n) for n in settings.proxy_networks] == ["10.0.0.0/8", "2001:db8::1/128"]
    assert not _settings(trusted_proxies="10.0.0.1").trust_unix_socket


def test_trusted_proxies_refuse_what_is_neither_a_network_nor_unix() -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        _settings(trusted_proxies="10.0.0.1, proxy.internal")


def test_the_account_ceiling_defaults_to_nists_hundred_a_day() -> None:
    assert _settings().rate_limit_login_account_ceiling == "100/day"
    with pytest.raises(ValidationError, match="rate_limit_login_account_ceiling"):
        _settings(rate_limit_login_account_ceiling="lots")


def test_public_url_defaults_to_localhost_and_names_the_issuer() -> None:
    settings = _settings()

    assert settings.public_url == "http://localhost:8000"
    assert settings.jwt_issuer == "http://localhost:8000"


def test_the_issuer_is_public_url_without_its_trailing_slash_unless_set() -> None:
    assert _settings(public_url="https://auth.example.com/id/").jwt_issuer == (
        "https://auth.example.com/id"
    )
    set_apart = _settings(public_url="https://auth.example.com", jwt_issuer="urn:authsvc")
    assert set_apart.jwt_issuer == "urn:authsvc"


@pytest.mark.parametrize(
    "url", ["http://localhost:8000", "http://127.0.0.1:8000", "http://auth.example.com"]
)
def test_production_refuses_a_public_url_over_http(url: str) -> None:
    with pytest.raises(ValidationError, match="PUBLIC_URL must be an https:// URL"):
        _settings(environment="production", secret_key=RANDOM_KEY, public_url=url)


def test_production_refuses_the_default_public_url() -> None:
    with pytest.raises(ValidationError, match="PUBLIC_URL must be an https:// URL"):
        _settings(environment="production", secret_key=RANDOM_KEY)


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize(
    "url", ["https://auth.example.com/?next=1", "https://auth.example.com/#top", "https://a.b/?"]
)
def test_a_public_url_with_a_query_or_fragment_is_refused(environment: str, url: str) -> None:
    with pytest.raises(ValidationError, match="no query or fragment"):
        _settings(environment=environment, secret_key=RANDOM_KEY, public_url=url)


@pytest.mark.parametrize("url", ["auth.example.com", "ftp://auth.example.com", "https://"])
def test_a_public_url_that_is_not_an_absolute_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="absolute http"):
        _settings(public_url=url)


def test_production_accepts_an_https_public_url_with_a_path() -> None:
    settings = _settings(
        environment="production", secret_key=RANDOM_KEY, public_url="https://example.com/auth/"
    )

    assert settings.public_url == "https://example.com/auth"
    assert settings.jwt_issuer == "https://example.com/auth"


@pytest.mark.parametrize("url", ["http://localhost:8000", "http://127.0.0.1:8000"])
def test_development_accepts_a_local_http_public_url(url: str) -> None:
    assert _settings(environment="development", public_url=url).public_url == url
