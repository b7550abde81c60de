"""`authsvc`: the operator's command line (also `python -m app`).

Exit codes: 0 success, 1 failure (refused configuration, bad rows, unknown user, database
down), 2 a malformed command line. Results go to stdout, messages and logs to stderr.
"""

from __future__ import annotations

import typer

from app.cli import audit, clients, keys, mail, openapi, server, user_import, users, users_mfa
from app.cli.context import load_settings
from app.cli.output import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "cli", "load_settings", "main"]

cli = typer.Typer(
    name="authsvc",
    help="Operate the authentication service.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli.command()(server.serve)
cli.command()(server.migrate)
cli.command("check-config")(server.check_config)
cli.command()(openapi.openapi)
users.app.command("import")(user_import.import_users)
users.app.command("mfa-reset")(users_mfa.mfa_reset)
cli.add_typer(users.app, name="users")
cli.command()(audit.audit)
cli.add_typer(mail.app, name="mail")
cli.add_typer(keys.app, name="keys")
cli.add_typer(clients.app, name="clients")


def main() -> None:
    cli(prog_name="authsvc")
