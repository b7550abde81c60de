"""`users ...`: create, (de)activate, show, list and import accounts without writing SQL."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.cli._common import (
    EXIT_FAILURE,
    auth_service,
    build_hasher,
    configure_logging,
    describe_database_error,
    err,
    fail,
    out,
    print_json,
    print_table,
    run,
    say,
    settings_of,
)
from app.database import Database
from app.models.schemas import UserRead, UserRegister
from app.models.user import User, normalize_email, normalize_username
from app.services.user_import import (
    CheckedFile,
    ImportFileError,
    ImportRow,
    RawRecord,
    RowError,
    check_records,
    detect_format,
    read_records,
)
from app.services.user_service import NewUser, UserService
from app.utils.exceptions import (
    CircuitBreakerOpenException,
    DatabaseException,
    UserAlreadyExistsException,
    ValidationException,
)
from app.utils.logger import get_logger
from app.utils.password import PasswordHasher, hash_scheme

log = get_logger(__name__)

app = typer.Typer(
    help="Create, deactivate, inspect and import user accounts.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Identifier = Annotated[str, typer.Argument(help="The user's email or username.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class ImportFormatChoice(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class OnDuplicate(StrEnum):
    skip = "skip"
    fail = "fail"


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
) -> None:
    """Create an active account; the password is prompted for (twice) or read from stdin."""
    settings = settings_of(ctx)
    email, username = _check_identity(email, username)
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
            return await auth.users.create(email=email, username=username, hashed_password=hashed)

    try:
        user = run(settings, work)
    except ValidationException as error:
        for problem in error.errors or [{"message": error.detail}]:
            say("error", f"password: {problem['message']}")
        raise typer.Exit(EXIT_FAILURE) from None
    except UserAlreadyExistsException:
        fail("a user with this email or username already exists")
    log.info("user created", user_id=user.id, actor="cli")
    out.print(f"created user {user.username} <{user.email}> (id {user.id})")


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
            users = UserService(session)
            user = await users.get_by_identifier(identifier)
            if user is None or user.is_active == active:
                return user, False
            await users.set_active(user, active)
            return user, True

    user, changed = run(settings, work)
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


# ------------------------------------------------------------------------------ import


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    stopped: str | None = None


@app.command("import")
def import_users(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV (with header) or JSON Lines."
        ),
    ],
    fmt: Annotated[
        ImportFormatChoice | None,
        typer.Option("--format", help="Override the format told by the suffix."),
    ] = None,
    on_duplicate: Annotated[
        OnDuplicate,
        typer.Option(help="An email or username already registered: skip the row, or fail."),
    ] = OnDuplicate.fail,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows per transaction.")
    ] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row, import nothing.")
    ] = False,
) -> None:
    """Import users from another system: plain passwords, or bcrypt/argon2 hashes kept as is.

    Columns: email, username, and password or password_hash (bcrypt cost >= 10, argon2 no
    cheaper than the configured parameters). Every row is checked first;
    any bad row is reported with its line number and nothing is imported. Rows are then
    written in batches, one transaction each. Kept hashes are upgraded at the next login.
    """
    settings = settings_of(ctx)
    chosen = fmt.value if fmt else detect_format(file)
    if chosen is None:
        raise typer.BadParameter(
            "cannot tell the format from the file name; pass --format csv|jsonl",
            param_hint="'FILE'",
        )
    configure_logging(settings)
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )

    async def work(database: Database) -> ImportSummary:
        hasher = build_hasher(settings)
        checking = progress.add_task("checking", total=None)
        async with database.session() as session:
            auth = auth_service(settings, session, hasher)
            records = _counted(read_records(file, chosen), progress, checking)
            # Parsing and validating 100 000 rows is CPU work: keep it off the event loop.
            checked = await asyncio.to_thread(
                check_records,
                records,
                check_password=auth.check_password,
                hash_floor=hasher.import_floor,
            )
            taken = await auth.users.existing_keys(
                (r.email for r in checked.rows), (r.username for r in checked.rows)
            )
        summary, fresh = _sort_out(checked, taken, on_duplicate)
        progress.update(checking, total=checked.total, completed=checked.total)
        if summary.errors or dry_run:
            summary.failed = len(summary.errors)
            return summary
        writing = progress.add_task("importing", total=len(fresh))
        await _write(database, hasher, fresh, summary, batch_size, on_duplicate, progress, writing)
        return summary

    try:
        with progress:
            summary = run(settings, work)
    except ImportFileError as error:
        fail(str(error))
    elapsed = time.perf_counter() - started
    for problem in summary.errors:
        err.print(f"{file.name}: {problem}")
    if summary.stopped:
        say("error", summary.stopped)
    elif summary.errors:
        say("error", f"{len(summary.errors)} bad row(s); nothing was imported")
    verb = "would import" if dry_run and not summary.errors else "imported"
    out.print(
        f"{verb} {summary.imported}, skipped {summary.skipped}, failed {summary.failed}"
        f" ({elapsed:.1f} s)"
    )
    log.info(
        "users imported",
        imported=summary.imported,
        skipped=summary.skipped,
        failed=summary.failed,
        dry_run=dry_run,
        actor="cli",
    )
    if summary.errors or summary.stopped:
        raise typer.Exit(EXIT_FAILURE)


def _counted(records: Iterable[RawRecord], progress: Progress, task: TaskID) -> Iterator[RawRecord]:
    for record in records:
        progress.advance(task)
        yield record


def _sort_out(
    checked: CheckedFile, taken: tuple[set[str], set[str]], on_duplicate: OnDuplicate
) -> tuple[ImportSummary, list[ImportRow]]:
    """Split valid rows into new ones and those already registered (skipped or errors)."""
    taken_emails, taken_names = taken
    summary = ImportSummary(errors=list(checked.errors))
    fresh: list[ImportRow] = []
    for row in checked.rows:
        if normalize_email(row.email) in taken_emails:
            clash = "email"
        elif normalize_username(row.username) in taken_names:
            clash = "username"
        else:
            fresh.append(row)
            continue
        if on_duplicate is OnDuplicate.skip:
            summary.skipped += 1
        else:
            summary.errors.append(RowError(row.line, f"{clash} is already registered"))
    summary.errors.sort(key=lambda e: e.line)
    if not summary.errors:
        summary.imported = len(fresh)  # what a dry run would import; reset before writing
    return summary, fresh


async def _write(
    database: Database,
    hasher: PasswordHasher,
    rows: list[ImportRow],
    summary: ImportSummary,
    batch_size: int,
    on_duplicate: OnDuplicate,
    progress: Progress,
    task: TaskID,
) -> None:
    """Insert in batches of one transaction each; stop at the first batch that fails."""
    summary.imported = 0
    # One transaction per batch rather than one for the whole file: on SQLite a writer
    # holds the database lock, and the running service must keep registering users.
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        # Plain passwords are hashed before the transaction opens (tens of ms of CPU each).
        passwords = [r.password for r in batch if r.password is not None]
        hashed = iter(await asyncio.gather(*(hasher.hash(p) for p in passwords)))
        new = [NewUser(r.email, r.username, r.password_hash or next(hashed)) for r in batch]
        lines = f"lines {batch[0].line}-{batch[-1].line}"
        try:
            async with database.session() as session:
                inserted = await UserService(session).create_many(
                    new, skip_existing=on_duplicate is OnDuplicate.skip
                )
        except UserAlreadyExistsException:
            reason = f"{lines}: an email or username was registered while importing"
        except (DatabaseException, CircuitBreakerOpenException) as error:
            reason = f"{lines}: database: {describe_database_error(error)}"
        else:
            summary.imported += inserted
            summary.skipped += len(batch) - inserted
            progress.advance(task, len(batch))
            continue
        summary.failed = len(rows) - summary.imported - summary.skipped
        summary.stopped = (
            f"{reason}; that batch was rolled back and the import stopped after"
            f" {summary.imported} row(s); run again with --on-duplicate skip to resume"
        )
        return
