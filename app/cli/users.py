"""`users ...`: create, (de)activate, show and list accounts without writing SQL."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from app.admin.service import AdminService, UserChanges
from app.audit.log import AuditLog, Event
from app.cli.context import auth_service, configure_logging, run, settings_of
from app.cli.output import EXIT_FAILURE, err, fail, out, print_json, print_table, say
from app.core.errors import (
    LastAdminException,
    UserAlreadyExistsException,
    ValidationException,
)
from app.core.passwords import hash_scheme
from app.database import Database
from app.models.schemas import UserRead, UserRegister
from app.models.user import User
from app.users.roles import RoleService, check_roles
from app.users.service import UserService
from app.utils.logger import get_logger
from app.wiring import build_hasher

log = get_logger(__name__)

# `users import` joins this group from app/cli/user_import.py.
app = typer.Typer(
    help="Create, deactivate, inspect and import user accounts.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Identifier = Annotated[str, typer.Argument(help="The user's email or username.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# ----------------------------------------------------------------------------- create


@app.command()
def create(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="Email address (also a login name).")],
    username: Annotated[
        str, typer.Option(help="3-50 characters: letters, digits, underscore, hyphen, dot.")
    ],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin instead of prompting.",
        ),
    ] = False,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Grant this role (repeatable), e.g. --role admin."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an active account; the password is prompted for (twice) or read from stdin."""
    settings = settings_of(ctx)
    email, username = _check_identity(email, username)
    roles = _check_roles(role or [], "--role")
    password = _read_password(password_stdin)
    configure_logging(settings)

    async def work(database: Database) -> User:
        hasher = build_hasher(settings)
        async with database.session() as session:
            auth = auth_service(settings, session, hasher)
            # Same policy and hashing as registration over HTTP; no statement has run yet,
            # so no transaction is held open across the hash.
            auth.check_password(password, username=username, email=email)
            hashed = await hasher.hash(password)
            user = await auth.users.create(email=email, username=username, hashed_password=hashed)
            await RoleService(session).set_roles(user, roles)
            details: dict[str, object] = {"via": "cli", "roles": roles}
            AuditLog(session).record(Event.USER_REGISTERED, user_id=user.id, details=details)
            return user

    try:
        user = run(settings, work)
    except ValidationException as error:
        for problem in error.errors or [{"message": error.detail}]:
            say("error", f"password: {problem['message']}")
        raise typer.Exit(EXIT_FAILURE) from None
    except UserAlreadyExistsException:
        fail("a user with this email or username already exists")
    log.info("user created", user_id=user.id, actor="cli", roles=roles)
    if as_json:
        print_json(_user_json(user))
        return
    granted = f" with roles {', '.join(roles)}" if roles else ""
    out.print(f"created user {user.username} <{user.email}> (id {user.id}){granted}")


def _check_roles(roles: Sequence[str], option: str) -> list[str]:
    """Role names as the API checks them; exit 2 if bad."""
    try:
        return check_roles(roles)
    except ValidationException as error:
        raise typer.BadParameter(error.detail, param_hint=f"'{option}'") from None


def _check_identity(email: str, username: str) -> tuple[str, str]:
    """Email and username as registration validates and normalises them; exit 2 if bad."""
    try:
        valid = UserRegister.model_validate({"email": email, "username": username, "password": "-"})
    except ValidationError as error:
        item = error.errors(include_input=False, include_url=False)[0]
        name = str(item["loc"][0])
        message = str(item["msg"]).removeprefix("Value error, ")
        raise typer.BadParameter(message, param_hint=f"'--{name}'") from None
    return valid.email, valid.username


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # The first line, without its line ending (like `docker login --password-stdin`).
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not password:
            raise typer.BadParameter("stdin held no password", param_hint="'--password-stdin'")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


# ------------------------------------------------------------------- (de)activate, show, list


@app.command()
def deactivate(ctx: typer.Context, identifier: Identifier) -> None:
    """Refuse the account's logins and every token it holds, from now on."""
    _set_active(ctx, identifier, active=False)


@app.command()
def activate(ctx: typer.Context, identifier: Identifier) -> None:
    """Let a deactivated account log in again."""
    _set_active(ctx, identifier, active=True)


def _set_active(ctx: typer.Context, identifier: str, *, active: bool) -> None:
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> tuple[User | None, bool]:
        async with database.session() as session:
            user = await UserService(session).get_by_identifier(identifier)
            if user is None or user.is_active == active:
                return user, False
            changes = UserChanges(is_active=active, extra={"via": "cli"})
            return await AdminService(session).update_user(user.id, changes, actor_id=None), True

    try:
        user, changed = run(settings, work)
    except LastAdminException:
        fail(f"{identifier!r} is the last active admin; grant another account admin first")
    if user is None:
        fail(f"no user with email or username {identifier!r}")
    state = "active" if active else "inactive"
    if not changed:
        out.print(f"{user.username} (id {user.id}) is already {state}")
        return
    log.info("user activated" if active else "user deactivated", user_id=user.id, actor="cli")
    detail = "" if active else "; its logins and tokens are refused from now on"
    out.print(f"{user.username} (id {user.id}) is now {state}{detail}")


@app.command()
def roles(
    ctx: typer.Context,
    identifier: Identifier,
    add: Annotated[
        list[str] | None, typer.Option("--add", help="Grant this role (repeatable).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Take this role away (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show or change an account's roles; `admin` opens the /admin routes at once."""
    settings = settings_of(ctx)
    to_add = _check_roles(add or [], "--add")
    to_remove = _check_roles(remove or [], "--remove")
    configure_logging(settings)

    async def work(database: Database) -> User | None:
        async with database.session() as session:
            user = await UserService(session).get_by_identifier(identifier)
            if user is None or not (to_add or to_remove):
                return user
            changes = UserChanges(add_roles=to_add, remove_roles=to_remove, extra={"via": "cli"})
            return await AdminService(session).update_user(user.id, changes, actor_id=None)

    try:
        user = run(settings, work)
    except LastAdminException:
        fail(f"{identifier!r} is the last active admin; grant another account admin first")
    except ValidationException as error:
        fail(error.detail)
    if user is None:
        fail(f"no user with email or username {identifier!r}")
    if to_add or to_remove:
        log.info("user roles changed", user_id=user.id, actor="cli", roles=user.roles)
    if as_json:
        print_json(_user_json(user))
        return
    out.print(f"{user.username} (id {user.id}): {', '.join(user.roles) or 'no roles'}")


@app.command()
def show(ctx: typer.Context, identifier: Identifier, as_json: JsonFlag = False) -> None:
    """Show one account (never its password hash, only the scheme of it)."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> User | None:
        async with database.session() as session:
            return await UserService(session).get_by_identifier(identifier)

    user = run(settings, work)
    if user is None:
        fail(f"no user with email or username {identifier!r}")
    record = {**_user_json(user), "password_scheme": hash_scheme(user.hashed_password)}
    if as_json:
        print_json(record)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        table.add_row(key, _cell(value))
    print_table(table)


@app.command("list")
def list_users(
    ctx: typer.Context,
    inactive: Annotated[
        bool, typer.Option("--inactive", help="Only deactivated accounts.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List accounts by id, as a table or as JSON."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> Sequence[User]:
        async with database.session() as session:
            return await UserService(session).list_users(inactive_only=inactive, limit=limit)

    found = run(settings, work)
    if as_json:
        print_json([_user_json(user) for user in found])
        return
    table = Table("id", "email", "username", "active", "created (UTC)", "last login (UTC)")
    for user in found:
        row = _user_json(user)
        table.add_row(
            *(_cell(row[k]) for k in ("id", "email", "username", "is_active")),
            *(_cell(row[k], short=True) for k in ("created_at", "last_login")),
        )
    print_table(table)
    err.print(f"{len(found)} user(s)")


def _user_json(user: User) -> dict[str, Any]:
    return UserRead.model_validate(user).model_dump(mode="json")


def _cell(value: Any, *, short: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if short and isinstance(value, str):
        return value[:16].replace("T", " ")  # a timestamp, to the minute, for narrow tables
    return str(value)
