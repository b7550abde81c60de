"""`users mfa-reset`: turn a user's two-factor authentication off (a lost authenticator)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.context import configure_logging, run, settings_of
from app.cli.output import fail, out, print_json
from app.config import resolve_secret_key
from app.database import Database
from app.models.schemas import UserRead
from app.models.user import User
from app.signin.mfa import totp_box
from app.users.service import UserService
from app.utils.logger import get_logger
from app.wiring import build_hasher, build_mfa_service

log = get_logger(__name__)


def mfa_reset(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="The user's email or username.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Turn the account's two-factor authentication off: its TOTP key, recovery codes and
    pending sign-ins are deleted. The user can sign in with the password and enrol again."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> tuple[User | None, bool]:
        async with database.session() as session:
            user = await UserService(session).get_by_identifier(identifier)
            if user is None:
                return None, False
            mfa = build_mfa_service(
                settings,
                session,
                box=totp_box(resolve_secret_key(settings)),
                hasher=build_hasher(settings),
            )
            return user, await mfa.disable(user, actor_id=None, via="cli")

    user, was_on = run(settings, work)
    if user is None:
        fail(f"no user with email or username {identifier!r}")
    if was_on:
        log.info("mfa reset", user_id=user.id, actor="cli")
    if as_json:
        print_json(UserRead.model_validate(user).model_dump(mode="json"))
        return
    if was_on:
        out.print(f"two-factor authentication of {user.username} (id {user.id}) is now off")
    else:
        out.print(f"two-factor authentication of {user.username} (id {user.id}) was already off")
