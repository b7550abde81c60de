"""`keys ...`: list and rotate the asymmetric JWT signing keys (docs/tokens.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, print_json, print_table, say
from app.config import Settings, resolve_secret_key
from app.core.jwt import utc_now
from app.core.signing_keys import KeyCipher
from app.database import Database
from app.keys.store import SigningKeyService, StoredKey, install_key
from app.models.schemas import format_timestamp
from app.utils.logger import get_logger

log = get_logger(__name__)

app = typer.Typer(
    help="List and rotate the JWT signing keys (EdDSA, ES256, RS256).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def key_entry(key: StoredKey) -> dict[str, Any]:
    """`{"kid", "alg", "status", "created_at"}`, as API.md names them."""
    return {
        "kid": key.kid,
        "alg": key.algorithm,
        "status": "current" if key.current else "retired",
        "created_at": format_timestamp(key.created_at),
    }


@app.command("list")
def list_keys(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The signing keys, newest first: the current one and the retired ones not yet purged."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> list[StoredKey]:
        async with database.session() as session:
            return await SigningKeyService(session).all()

    entries = [key_entry(key) for key in run(settings, work)]
    if as_json:
        print_json(entries)
        return
    table = Table("kid", "alg", "status", "created (UTC)")
    for entry in entries:
        table.add_row(entry["kid"], entry["alg"], entry["status"], entry["created_at"])
    print_table(table)
    err.print(f"{len(entries)} key(s)")


@app.command()
def rotate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Make a new key of JWT_ALGORITHM current at once; the old one stays published until
    its last token has expired. Every worker signs with the new key within
    SIGNING_KEY_REFRESH_SECONDS."""
    settings = settings_of(ctx)
    _require_key_pairs(settings)
    configure_logging(settings)
    cipher = KeyCipher(resolve_secret_key(settings))

    async def work(database: Database) -> StoredKey:
        key, _ = await install_key(
            database,
            settings.jwt_algorithm,
            cipher,
            utc_now,
            only_if_missing=False,
            audit_via="cli",
        )
        return key

    key = run(settings, work)
    log.info("signing key rotated", kid=key.kid, algorithm=key.algorithm)
    entry = key_entry(key)
    if as_json:
        print_json(entry)
        return
    say("rotated", f"new current key {key.kid} ({key.algorithm})", style="bold green")


def _require_key_pairs(settings: Settings) -> None:
    if not settings.uses_key_pairs:
        fail(
            f"JWT_ALGORITHM is {settings.jwt_algorithm}: tokens are signed with SECRET_KEY, "
            "there are no signing keys to rotate (set JWT_ALGORITHM=EdDSA, ES256 or RS256)"
        )
