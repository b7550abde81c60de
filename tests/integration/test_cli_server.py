"""`authsvc migrate`, `check-config` and `serve`: from the environment, as an operator runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner, Result

from app.cli import cli
from app.cli.server import serve_problems
from app.config import Settings
from app.migrate import MIGRATIONS
from tests.support import PASSWORD, TEST_SECRET, CliInvoker
from tests.support.servers import free_port

STRONG_SECRET = "Vq3xW8pZr2Lm9TgYb6NcJ4hKd7FsA1eU0oRiQ5wXy"  # random, as production needs
_ENV_NAMES = (
    "DATABASE_URL",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ENVIRONMENT",
    "REDIS_URL",
    "PUBLIC_URL",
)
PUBLIC_URL = "https://auth.example.com"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment in an empty working directory (no `.env`), with a SQLite URL."""
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


# ----------------------------------------------------------------------------- migrate


def test_migrate_creates_the_schema_and_is_idempotent(environment: Path) -> None:
    first = invoke("migrate")
    second = invoke("migrate")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert {"users", "alembic_version"} <= _tables(environment / "auth.db")
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with sqlite3.connect(environment / "auth.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


def test_migrate_sql_prints_the_ddl_and_touches_no_database(environment: Path) -> None:
    result = invoke("migrate", "--sql")

    assert result.exit_code == 0, result.output
    assert "CREATE TABLE users" in result.stdout
    assert not (environment / "auth.db").exists()


def test_migrate_to_an_unknown_revision_fails_with_a_message(environment: Path) -> None:
    result = invoke("migrate", "--revision", "nonexistent")

    assert result.exit_code == 1
    assert "nonexistent" in result.stderr
    assert "Traceback" not in result.output


def test_migrate_into_a_missing_directory_fails_with_a_message(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{environment}/missing/auth.db")

    result = invoke("migrate")

    assert result.exit_code == 1
    assert f"does not exist: {environment}/missing" in result.stderr


@pytest.mark.parametrize("command", [["migrate"], ["users", "list"]])
def test_an_unreachable_database_fails_with_one_line(
    environment: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/db")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "2")

    result = invoke(*command)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: database:")
    assert "Traceback" not in result.output


async def test_migrate_on_an_up_to_date_database_changes_nothing(run_cli: CliInvoker) -> None:
    result = await run_cli("migrate")

    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------ check-config


def test_check_config_without_a_secret_key_shows_the_table_and_fails(environment: Path) -> None:
    result = invoke("check-config")

    assert result.exit_code == 1
    assert "DATABASE_URL" in result.stdout
    assert "development key in" in result.stdout
    assert "production would refuse: SECRET_KEY must be set" in result.stderr


def test_check_config_masks_secrets_and_passes_a_production_ready_setup(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://authsvc:db-pass-123@db:5432/auth")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pass-456@cache:6379/0")

    result = invoke("check-config")

    assert result.exit_code == 0, result.output
    assert "production would accept" in result.stderr
    for secret in (STRONG_SECRET, "db-pass-123", "redis-pass-456"):
        assert secret not in result.output
    assert "postgresql+asyncpg://authsvc:********@db:5432/auth" in result.stdout
    assert "redis://:********@cache:6379/0" in result.stdout


def test_check_config_says_production_would_refuse_the_default_public_url(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)

    result = invoke("check-config")

    assert result.exit_code == 1
    assert "PUBLIC_URL must be an https:// URL" in result.stderr


@pytest.mark.parametrize(
    ("secret", "problem"),
    [("changeme", "well-known placeholder"), ("short-but-not-a-placeholder", "at least 32 bytes")],
)
def test_check_config_fails_on_a_key_production_would_refuse(
    environment: Path, monkeypatch: pytest.MonkeyPatch, secret: str, problem: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", secret)

    result = invoke("check-config")

    assert result.exit_code == 1
    assert problem in result.stderr
    assert secret not in result.output


def test_check_config_in_production_with_a_bad_setting_names_it(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "0")

    result = invoke("check-config")

    assert result.exit_code == 1
    assert "configuration refused: ACCESS_TOKEN_EXPIRE_MINUTES" in result.stderr


# ------------------------------------------------------------------------------- serve


def test_serve_refuses_reload_with_several_workers(environment: Path) -> None:
    result = invoke("serve", "--reload", "--workers", "2")

    assert result.exit_code == 2
    assert "single process" in result.output


def test_serve_refuses_several_workers_on_an_in_memory_database(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")

    result = invoke("serve", "--workers", "2")

    assert result.exit_code == 1
    assert "in-memory SQLite" in result.stderr


def test_serve_in_production_refuses_several_workers_without_redis(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)

    result = invoke("serve", "--workers", "3")

    assert result.exit_code == 1
    assert "REDIS_URL" in result.stderr
    assert "3 times" in result.stderr


def test_serve_in_production_refuses_reload(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)

    result = invoke("serve", "--reload")

    assert result.exit_code == 1
    assert "development only" in result.stderr


def test_serve_refuses_when_the_signing_key_cannot_be_kept(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (environment / "a-file").write_text("")
    monkeypatch.setenv("SECRET_KEY_FILE", str(environment / "a-file" / ".secret_key"))

    result = invoke("serve")

    assert result.exit_code == 1
    assert "cannot keep the signing key" in result.stderr
    assert "set SECRET_KEY" in result.stderr


def test_serve_refuses_a_development_key_file_too_short_to_sign_with(environment: Path) -> None:
    (environment / ".secret_key").write_text("short")

    result = invoke("serve", "--workers", "2")

    assert result.exit_code == 1
    assert "shorter than 32 bytes" in result.stderr


def test_serve_refuses_with_a_configuration_the_service_would_refuse(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")

    result = invoke("serve")

    assert result.exit_code == 1
    assert "configuration refused: SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("environment_name", "redis_url", "refused", "warned"),
    [
        ("development", None, False, True),
        ("development", "redis://cache:6379/0", False, False),
        ("production", None, True, False),
        ("production", "redis://cache:6379/0", False, False),
    ],
)
def test_several_workers_need_shared_throttling_state(
    environment_name: str, redis_url: str | None, refused: bool, warned: bool
) -> None:
    settings = Settings(
        _env_file=None,
        environment=environment_name,
        secret_key=TEST_SECRET,
        redis_url=redis_url,
        public_url=PUBLIC_URL,
    )

    refusals, warnings = serve_problems(settings, workers=2, reload=False)
    single = serve_problems(settings, workers=1, reload=False)

    assert (bool(refusals), bool(warnings)) == (refused, warned)
    assert single == ([], [])


def test_serving_on_a_unix_socket_warns_unless_its_proxy_is_trusted(tmp_path: Path) -> None:
    uds = tmp_path / "authsvc.sock"
    plain = Settings(_env_file=None, secret_key=TEST_SECRET)
    trusted = Settings(_env_file=None, secret_key=TEST_SECRET, trusted_proxies="unix")

    refusals, warnings = serve_problems(plain, workers=1, reload=False, uds=uds)
    assert refusals == []
    assert len(warnings) == 1
    assert "Unix socket" in warnings[0]
    assert "TRUSTED_PROXIES" in warnings[0]
    assert serve_problems(trusted, workers=1, reload=False, uds=uds) == ([], [])


@pytest.mark.process
def test_serve_with_two_workers_shares_one_signing_key(environment: Path) -> None:
    """Tokens issued by one worker are accepted by the other: the key is settled before fork."""
    port = free_port()
    env = {
        **os.environ,
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_TIME_COST": "1",
        "LOG_LEVEL": "WARNING",
    }
    assert invoke("migrate").exit_code == 0
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        command, env=env, cwd=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "the server exited early"
            assert time.monotonic() < deadline, "the server did not come up within 60 s"
            time.sleep(0.2)

        # New connections are spread over both workers by the kernel; many requests on
        # fresh connections reach both, and every one must accept the token.
        registered = httpx.post(
            f"{base}/auth/register",
            json={"email": "w@example.com", "username": "worker", "password": PASSWORD},
        )
        assert registered.status_code == 201
        auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        statuses = {httpx.get(f"{base}/users/me", headers=auth).status_code for _ in range(30)}
        assert statuses == {200}
        assert (environment / ".secret_key").exists()
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert b"login throttling counts attempts in each worker" in stderr
