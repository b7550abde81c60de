"""`users import`: bring accounts over from another system, with a progress bar.

Reading, checking and writing the rows is `app.users.importer`; this is the command
line around it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from app.cli.context import auth_service, configure_logging, run, settings_of
from app.cli.output import EXIT_FAILURE, err, fail, out, say
from app.database import Database
from app.users.importer import (
    ImportFileError,
    ImportSummary,
    OnDuplicate,
    RawRecord,
    check_records,
    detect_format,
    read_records,
    sort_out,
    write_users,
)
from app.utils.logger import get_logger
from app.wiring import build_hasher

log = get_logger(__name__)


class ImportFormatChoice(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


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
        summary, fresh = sort_out(checked, taken, on_duplicate)
        progress.update(checking, total=checked.total, completed=checked.total)
        if summary.errors or dry_run:
            summary.failed = len(summary.errors)
            return summary
        writing = progress.add_task("importing", total=len(fresh))
        await write_users(
            database,
            hasher,
            fresh,
            summary,
            batch_size=batch_size,
            on_duplicate=on_duplicate,
            on_batch=lambda rows: progress.advance(writing, rows),
        )
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
        say("error", f"{summary.stopped}; run again with --on-duplicate skip to resume")
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
