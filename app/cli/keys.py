"""`keys ...`: list, rotate and revoke the asymmetric JWT signing keys (docs/tokens.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, print_json, print_table, say
from app.config import Settings, resolve_secret_key
from app.core.signing_keys import KeyCipher
from app.database import Database
from app.keys.store import (
    ACCESS,
    ID_TOKEN,
    Revocation,
    SigningKeyService,
    StoredKey,
    UnknownSigningKey,
    install_key,
    revoke_key,
)
from app.models.schemas import format_timestamp
from app.utils.clock import utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

app = typer.Typer(
    help="List, rotate and revoke the JWT signing keys (EdDSA, ES256, RS256).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def key_entry(key: StoredKey) -> dict[str, Any]:
    """`{"kid", "alg", "status", "created_at"}`, as the contract names them."""
    return {
        "kid": key.kid,
        "alg": key.algorithm,
        "status": "revoked" if key.revoked_at else "current" if key.current else "retired",
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

    keys = run(settings, work)
    entries = [key_entry(key) for key in keys]
    if as_json:
        print_json(entries)
        return
    # The ID tokens' keys are a set of their own when ID_TOKEN_ALGORITHM differs from
    # JWT_ALGORITHM: each set has its current key, so the table says which set a key is of.
    table = Table("kid", "alg", "for", "status", "created (UTC)")
    for key, entry in zip(keys, entries, strict=True):
        purpose = "ID tokens" if key.purpose != ACCESS else "access tokens"
        table.add_row(entry["kid"], entry["alg"], purpose, entry["status"], entry["created_at"])
    print_table(table)
    err.print(f"{len(entries)} key(s)")


IdTokenFlag = Annotated[
    bool,
    typer.Option(
        "--id-token",
        help="Rotate the ID tokens' own keys (ID_TOKEN_ALGORITHM), kept apart when it is "
        "not JWT_ALGORITHM.",
    ),
]


@app.command()
def rotate(ctx: typer.Context, id_token: IdTokenFlag = False, as_json: JsonFlag = False) -> None:
    """Make a new key of JWT_ALGORITHM current at once; the old one stays published until
    its last token has expired. Every worker signs with the new key within
    SIGNING_KEY_REFRESH_SECONDS."""
    settings = settings_of(ctx)
    own_id_keys = settings.id_token_algorithm != settings.jwt_algorithm
    if id_token and not own_id_keys:
        fail("ID tokens share the access tokens' keys here: run `keys rotate` without --id-token")
    if not id_token:
        _require_key_pairs(settings)
    configure_logging(settings)
    cipher = KeyCipher(resolve_secret_key(settings))
    algorithm = settings.id_token_algorithm if id_token else settings.jwt_algorithm

    async def work(database: Database) -> StoredKey:
        key, _ = await install_key(
            database,
            algorithm,
            cipher,
            utc_now,
            only_if_missing=False,
            audit_via="cli",
            purpose=ID_TOKEN if id_token else ACCESS,
        )
        return key

    key = run(settings, work)
    log.info("signing key rotated", kid=key.kid, algorithm=key.algorithm)
    entry = key_entry(key)
    if as_json:
        print_json(entry)
        return
    say("rotated", f"new current key {key.kid} ({key.algorithm})", style="bold green")


@app.command()
def revoke(
    ctx: typer.Context,
    kid: Annotated[
        str,
        typer.Argument(
            help="The key id, as `keys list` shows it (after `--` if it starts with -)."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Withdraw a (compromised) key at once: it leaves the JWKS and every token it signed is
    refused by every worker, without waiting for SIGNING_KEY_REFRESH_SECONDS. If it is the
    current key, a new key of JWT_ALGORITHM becomes current in the same step, so signing
    never stops; everyone signed in with its tokens must sign in again."""
    settings = settings_of(ctx)
    _require_key_pairs(settings)
    configure_logging(settings)
    cipher = KeyCipher(resolve_secret_key(settings))

    async def work(database: Database) -> Revocation | None:
        try:
            return await revoke_key(
                database,
                kid,
                algorithm=settings.jwt_algorithm,
                cipher=cipher,
                clock=utc_now,
                audit_via="cli",
            )
        except UnknownSigningKey:
            return None

    result = run(settings, work)
    if result is None:
        fail(f"no signing key {kid} (see `authsvc keys list`)")
    entry = {
        **key_entry(result.key),
        "already_revoked": result.already_revoked,
        "replaced_by": result.replacement.kid if result.replacement else None,
    }
    if as_json:
        print_json(entry)
        return
    if result.already_revoked:
        say("unchanged", f"key {kid} was revoked already")
        return
    say("revoked", f"key {kid}: unpublished, its tokens refused", style="bold green")
    if result.replacement is not None:
        replacement = result.replacement
        say(
            "rotated",
            f"new current key {replacement.kid} ({replacement.algorithm})",
            style="bold green",
        )


def _require_key_pairs(settings: Settings) -> None:
    if not settings.uses_key_pairs:
        fail(
            f"JWT_ALGORITHM is {settings.jwt_algorithm}: tokens are signed with SECRET_KEY, "
            "there are no signing keys to rotate (set JWT_ALGORITHM=EdDSA, ES256 or RS256)"
        )
