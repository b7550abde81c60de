"""`serve`, `migrate` and `check-config`: running the service and preparing its ground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr, ValidationError
from rich.table import Table
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from app.cli.context import settings_of, settings_problems
from app.cli.output import EXIT_FAILURE, err, fail, print_table, say
from app.config import ConfigurationError, Settings, resolve_secret_key
from app.database import describe_database_error
from app.utils.logger import uvicorn_log_config

MASK = "********"


def serve_problems(
    settings: Settings, *, workers: int, reload: bool, uds: Path | None = None
) -> tuple[list[str], list[str]]:
    """What makes this configuration unfit to serve: (refusals, warnings)."""
    refusals: list[str] = []
    warnings: list[str] = []
    production = settings.environment == "production"
    if uds is not None and not settings.trust_unix_socket:
        # Fail closed: without an address every client shares each per-client limit.
        warnings.append(
            f"--uds {uds}: a Unix socket gives no client address, so every per-client limit"
            " counts all clients together; if the proxy in front sets X-Forwarded-For, add"
            " `unix` to TRUSTED_PROXIES"
        )
    if reload and production:
        refusals.append("--reload watches the source tree; it is for development only")
    if workers > 1:
        url = make_url(settings.database_url)
        if settings.is_sqlite and (
            url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
        ):
            refusals.append(
                "DATABASE_URL is an in-memory SQLite database: each worker would have its own,"
                " empty one; use a file or PostgreSQL"
            )
        if not settings.redis_url:
            # Throttling state without Redis lives in each process: N workers each count
            # failed logins on their own, so an attacker gets N times the configured budget.
            reason = (
                f"REDIS_URL is unset, so login throttling counts attempts in each worker's own"
                f" memory: {workers} workers let a client try {workers} times as often as"
                " configured"
            )
            if production:
                refusals.append(f"{reason}; set REDIS_URL to share the counters")
            else:
                warnings.append(f"{reason} (refused with ENVIRONMENT=production)")
    return refusals, warnings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option(help="Restart on code changes (development, one process).")
    ] = False,
    uds: Annotated[
        Path | None,
        typer.Option(help="Listen on this Unix socket instead of --host/--port (behind a proxy)."),
    ] = None,
) -> None:
    """Serve the API with uvicorn.

    The signing key is settled before workers start, so they all accept each other's
    tokens. With several workers it refuses an in-memory database and, in production, a
    missing REDIS_URL (throttling counters would be per worker); outside production that
    is a warning.
    """
    if reload and workers > 1:
        raise typer.BadParameter(
            "--reload runs a single process; drop --workers", param_hint="'--reload'"
        )
    settings = settings_of(ctx)
    refusals, warnings = serve_problems(settings, workers=workers, reload=reload, uds=uds)
    for warning in warnings:
        say("warning", warning, style="bold yellow")
    if refusals:
        for refusal in refusals[:-1]:
            say("error", refusal)
        fail(refusals[-1])
    # The signing key is settled before any worker starts: either SECRET_KEY, or the
    # development key file, created here once so that every worker reads the same key.
    try:
        resolve_secret_key(settings)
    except ConfigurationError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot keep the signing key in {error.filename}: {error.strerror}; set SECRET_KEY")

    if workers > 1 and settings.hash_concurrency is None:
        # N workers share the cores: each hashes on cores / N threads, so that together they
        # keep every core busy once, and each holds only its share of argon2 buffers.
        os.environ["HASH_CONCURRENCY"] = str(max(1, (os.cpu_count() or 1) // workers))

    import uvicorn

    from app.http_protocol import BoundedHeadProtocol

    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        # Request heads bounded in size, field count and read time (HTTP_MAX_HEADER_BYTES,
        # HTTP_MAX_HEADERS, HTTP_HEADER_READ_TIMEOUT); plain uvicorn bounds none of them.
        http=BoundedHeadProtocol,
        uds=None if uds is None else str(uds),
        workers=None if reload else workers,
        reload=reload,
        # The application decides the client address from TRUSTED_PROXIES (app.serving).
        proxy_headers=False,
        server_header=False,
        access_log=False,
        # Applied by uvicorn in every worker before the app starts: its own lines are JSON too.
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
    )


def migrate(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Option(help="Target revision: `head`, an id, or a relative step like `+1`.")
    ] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL on stdout instead of running it.")
    ] = False,
) -> None:
    """Bring the database schema up to a revision (Alembic)."""
    from alembic.util import CommandError

    from app.migrate import upgrade

    settings = settings_of(ctx)
    url = make_url(settings.database_url)
    if not sql and settings.is_sqlite and url.database and url.database != ":memory:":
        directory = Path(url.database).resolve().parent
        if not directory.is_dir():
            fail(f"the directory of the SQLite database does not exist: {directory}")
    try:
        upgrade(settings.database_url, revision, sql=sql)
    except CommandError as error:
        fail(str(error))
    except (exc.DBAPIError, OSError) as error:
        fail(f"database: {describe_database_error(error)}")
    if not sql:
        err.print(f"database migrated to {revision}")


def check_config(ctx: typer.Context) -> None:
    """Show the effective settings (secrets masked); exit 1 if production would refuse them."""
    settings = settings_of(ctx)
    table = Table(title="Effective configuration", title_justify="left")
    table.add_column("variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", no_wrap=True)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        shown = _display(value)
        if name == "secret_key" and value is None:
            shown = f"(not set: development key in {settings.default_secret_key_file()})"
        source = "set" if name in settings.model_fields_set else "default"
        table.add_row(name.upper(), shown, source)
    print_table(table)

    problems = production_problems(settings)
    if problems:
        for problem in problems:
            say("production would refuse", problem)
        raise typer.Exit(EXIT_FAILURE)
    err.print("production would accept this configuration")


def production_problems(settings: Settings) -> list[str]:
    """What the service would refuse at start-up with these values and ENVIRONMENT=production.

    The same validators decide as at start-up, so this can never drift from them.
    """
    values = {**settings.model_dump(), "environment": "production"}
    try:
        type(settings)(_env_file=None, **values)
    except (ValidationError, ConfigurationError) as error:
        return settings_problems(error)
    return []


def _display(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else "(empty)"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return str(value)


def _mask_url(url: str) -> str:
    """The URL with any password replaced (database and Redis URLs carry credentials)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
