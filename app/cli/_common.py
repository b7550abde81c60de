"""What every command shares: settings, output streams, exit codes, the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import ConfigurationError, Settings
from app.database import Database
from app.services.auth_service import AuthService
from app.utils.exceptions import CircuitBreakerOpenException, DatabaseException
from app.utils.logger import setup_logging
from app.utils.password import PasswordHasher
from app.wiring import build_auth_service, build_codec

T = TypeVar("T")

# Exit codes scripts can rely on; 2 is also what Click uses for a malformed command line.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Results go to stdout (so `--json` and `migrate --sql` can be piped), everything else to
# stderr. rich looks sys.stdout / sys.stderr up on every write, so test runners capture them.
# No markup or emoji codes: printed values (emails, file contents, errors) are data.
_PLAIN: dict[str, Any] = {"highlight": False, "markup": False, "emoji": False}
out = Console(soft_wrap=True, **_PLAIN)
err = Console(stderr=True, soft_wrap=True, **_PLAIN)


def say(label: str, message: str, *, style: str = "bold red") -> None:
    """`label: message` on stderr, the label styled on a terminal, the message verbatim."""
    err.print(Text.assemble((f"{label}:", style), " ", message))


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit 1."""
    say("error", message)
    raise typer.Exit(EXIT_FAILURE)


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


def describe_database_error(error: BaseException) -> str:
    """A one-line reason without SQL or bound parameters (they may hold password hashes)."""
    cause: BaseException = error
    if isinstance(error, DatabaseException) and error.__cause__ is not None:
        cause = error.__cause__
    if isinstance(cause, exc.DBAPIError) and cause.orig is not None:
        cause = cause.orig
    text = " ".join(str(cause).split()) or type(cause).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        text += " (run `authsvc migrate` first)"
    return text


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


def print_table(table: Table) -> None:
    """A table fitted to the terminal; piped, at its natural width so lines can be grepped."""
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(file=sys.stdout, width=natural, color_system=None, **_PLAIN).print(table)


def print_json(value: Any) -> None:
    """Machine-readable output on stdout, one document."""
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
