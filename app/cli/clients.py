"""`clients ...`: the registered clients: OpenID Connect applications, and the resource
servers that call `/auth/introspect`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.audit.log import AuditLog, Event
from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, out, print_json, print_table, say
from app.database import Database
from app.models.client import OAuthClient
from app.models.schemas import format_timestamp
from app.oauth2.clients import ClientService, NewClient, redirect_uri_problem
from app.utils.clock import utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

app = typer.Typer(
    help="Register, list and delete clients: applications (OpenID Connect) and resource servers.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[str, typer.Argument(help="What the client is, e.g. billing-api (1-100 chars).")]


def _entry(client: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "public": client.public,
        "first_party": client.first_party,
        "created_at": format_timestamp(client.created_at),
    }


RedirectUris = Annotated[
    list[str] | None,
    typer.Option(
        "--redirect-uri",
        help="Where the application receives its code (repeatable): https://, a loopback "
        "http:// address or a private-use scheme (com.example.app:/cb).",
    ),
]
LogoutUris = Annotated[
    list[str] | None,
    typer.Option(
        "--post-logout-redirect-uri",
        help="Where the application may send people after signing out (repeatable).",
    ),
]


@app.command()
def create(
    ctx: typer.Context,
    name: Name,
    redirect_uri: RedirectUris = None,
    post_logout_redirect_uri: LogoutUris = None,
    public: Annotated[
        bool, typer.Option("--public", help="A browser or native app: no secret, PKCE only.")
    ] = False,
    first_party: Annotated[
        bool, typer.Option("--first-party", help="Your own application: no consent page.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register a client and print its id (and a confidential client's secret, this once)."""
    settings = settings_of(ctx)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        fail("the name must be 1-100 characters")
    uris = list(dict.fromkeys(redirect_uri or []))
    logout_uris = list(dict.fromkeys(post_logout_redirect_uri or []))
    for uri in (*uris, *logout_uris):
        problem = redirect_uri_problem(uri)
        if problem is not None:
            fail(f"redirect URI {uri!r} {problem}")
    if public and not uris:
        fail("a public client needs --redirect-uri")
    configure_logging(settings)

    async def work(database: Database) -> NewClient:
        async with database.session() as session:
            created = await ClientService(session).create(
                name,
                utc_now(),
                redirect_uris=uris,
                post_logout_redirect_uris=logout_uris,
                public=public,
                first_party=first_party,
            )
            AuditLog(session).record(
                Event.CLIENT_CREATED,
                user_id=None,
                details={"client_id": created.client.client_id, "public": public, "via": "cli"},
            )
            return created

    created = run(settings, work)
    log.info("client registered", client_id=created.client.client_id)
    if as_json:
        print_json({**_entry(created.client), "client_secret": created.secret})
        return
    out.print(f"client_id:     {created.client.client_id}")
    if created.secret is not None:
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
            deleted = await ClientService(session).delete(client_id)
            if deleted:
                AuditLog(session).record(
                    Event.CLIENT_DELETED,
                    user_id=None,
                    details={"client_id": client_id, "via": "cli"},
                )
            return deleted

    if not run(settings, work):
        fail(f"no client with id {client_id!r}")
    log.info("client deleted", client_id=client_id)
    say("deleted", f"client {client_id}", style="bold green")
