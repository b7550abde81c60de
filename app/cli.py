"""`authsvc`: the operator's command line (also `python -m app`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from pydantic import ValidationError

from app.config import ConfigurationError, Settings

cli = typer.Typer(
    name="authsvc",
    help="Operate the authentication service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def load_settings() -> Settings:
    """Settings from the environment, or exit 1 with a one-line reason."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first.get("msg", error)).removeprefix("Value error, ")
        typer.echo(f"error: configuration refused: {message}", err=True)
        raise typer.Exit(1) from None
    except ConfigurationError as error:
        typer.echo(f"error: configuration refused: {error}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it")] = False,
) -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision, sql=sql)
    if not sql:
        typer.echo(f"database at {revision}", err=True)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from app.config import resolve_secret_key
    from app.utils.logger import uvicorn_log_config

    settings = load_settings()
    # Materialise the signing key before forking, so every worker reads the same one.
    resolve_secret_key(settings)
    if workers > 1 and settings.hash_concurrency is None:
        # N workers share the cores: each hashes on cores / N threads, so that together they
        # keep every core busy once, and each holds only its share of argon2 buffers.
        os.environ["HASH_CONCURRENCY"] = str(max(1, (os.cpu_count() or 1) // workers))
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        # Applied by uvicorn in every worker before the app starts: its own lines are JSON too.
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
    )


def main() -> None:
    cli(prog_name="authsvc")


if __name__ == "__main__":  # pragma: no cover
    main()
