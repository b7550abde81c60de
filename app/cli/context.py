"""What every command runs in: its settings, its log pipeline, a database on an event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.output import EXIT_FAILURE, fail, say
from app.config import ConfigurationError, Settings
from app.core.errors import CircuitBreakerOpenException, DatabaseException
from app.core.passwords import PasswordHasher
from app.database import Database, describe_database_error
from app.signin.service import AuthService
from app.utils.logger import setup_logging
from app.wiring import build_auth_service, build_codec

T = TypeVar("T")


def settings_problems(error: ValidationError | ConfigurationError) -> list[str]:
    """One line per refused setting; never the value itself (it may be a secret)."""
    if isinstance(error, ConfigurationError):
        return [str(error)]
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        name = ".".join(str(part) for part in item.get("loc", ())).upper()
        problems.append(f"{name}: {message}" if name else message)
    return problems


def load_settings() -> Settings:
    """Settings from the environment and `.env`, or exit 1 naming every refused setting."""
    try:
        return Settings()
    except (ValidationError, ConfigurationError) as error:
        for problem in settings_problems(error):
            say("error", f"configuration refused: {problem}")
        raise typer.Exit(EXIT_FAILURE) from None


def settings_of(ctx: typer.Context) -> Settings:
    """The settings a caller put on the root context (tests), else the environment's."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else load_settings()


class _Stderr:
    """Resolves sys.stderr at each write, so logging follows stream swaps (test runners)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(settings: Settings) -> None:
    """The service's log pipeline (redaction included), on stderr: stdout carries results."""
    # A database failure is reported by the command itself, in one line (`run`); the
    # service's multi-line error log of it would only bury that line.
    setup_logging(settings.log_level, settings.log_format, stream=_Stderr(), mute=["app.database"])


def run(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` with a Database on a fresh event loop; database failures exit 1."""

    async def main() -> T:
        database = Database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except (DatabaseException, exc.DBAPIError) as error:
        fail(f"database: {describe_database_error(error)}")
    except CircuitBreakerOpenException as error:
        fail(error.detail)


def auth_service(settings: Settings, session: AsyncSession, hasher: PasswordHasher) -> AuthService:
    """AuthService as the routes build it; the CLI uses its password policy and its hasher."""
    return build_auth_service(settings, session, hasher=hasher, codec=build_codec(settings))
