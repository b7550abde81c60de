"""`clients ...`: the registered clients that may call `/auth/introspect`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, out, print_json, print_table, say
from app.core.jwt import utc_now
from app.database import Database
from app.models.client import OAuthClient
from app.models.schemas import format_timestamp
from app.oauth2.clients import ClientService, NewClient
from app.utils.logger import get_logger

log = get_logger(__name__)

app = typer.Typer(
    help="Register, list and delete the clients that may introspect tokens.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[str, typer.Argument(help="What the client is, e.g. billing-api (1-100 chars).")]


def _entry(client: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "created_at": format_timestamp(client.created_at),
    }


@app.command()
def create(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Register a client and print its id and secret; the secret is shown this once only."""
    settings = settings_of(ctx)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        fail("the name must be 1-100 characters")
    configure_logging(settings)

    async def work(database: Database) -> NewClient:
        async with database.session() as session:
            return await ClientService(session).create(name, utc_now())

    created = run(settings, work)
    log.info("client registered", client_id=created.client.client_id)
    if as_json:
        print_json(
            {
                "client_id": created.client.client_id,
                "client_secret": created.secret,
                "name": created.client.name,
            }
        )
        return
    out.print(f"client_id:     {created.client.client_id}")
    out.print(f"client_secret: {created.secret}")
    say("note", "store the secret now: it is kept only as a hash and never shown again")


@app.command("list")
def list_clients(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The registered clients (never their secrets)."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> list[OAuthClient]:
        async with database.session() as session:
            return await ClientService(session).all()

    entries = [_entry(client) for client in run(settings, work)]
    if as_json:
        print_json(entries)
        return
    table = Table("client_id", "name", "created (UTC)")
    for entry in entries:
        table.add_row(entry["client_id"], entry["name"], entry["created_at"])
    print_table(table)
    err.print(f"{len(entries)} client(s)")


@app.command()
def delete(
    ctx: typer.Context,
    client_id: Annotated[str, typer.Argument(help="The client's id.")],
) -> None:
    """Delete a client: its credentials stop working at once."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> bool:
        async with database.session() as session:
            return await ClientService(session).delete(client_id)

    if not run(settings, work):
        fail(f"no client with id {client_id!r}")
    log.info("client deleted", client_id=client_id)
    say("deleted", f"client {client_id}", style="bold green")
