"""`mail ...`: the outbox as operators see it. Never prints a mail's body or link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, out, print_json, print_table
from app.database import Database
from app.mail.outbox import OutboxQueries
from app.models.mail import MailStatus, OutboxMail
from app.models.schemas import format_timestamp
from app.utils.clock import utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

app = typer.Typer(
    help="See the mail outbox and send failed mails again.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _status(mail: OutboxMail) -> str:
    # A mail in a sender's hands is still on its way: "pending" to the outside (the contract).
    return MailStatus.PENDING.value if mail.status == MailStatus.SENDING.value else mail.status


def mail_json(mail: OutboxMail) -> dict[str, Any]:
    """The shape of the contract's "The command line, for scripts" (never the body)."""
    return {
        "id": mail.id,
        "to": mail.recipient,
        "subject": mail.subject,
        "status": _status(mail),
        "attempts": mail.attempts + mail.deferrals,
        "created_at": format_timestamp(mail.created_at),
    }


@app.command("list")
def list_mail(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only mails given up on.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List the outbox, newest first: address, subject, status and attempts."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> Sequence[OutboxMail]:
        async with database.session() as session:
            return await OutboxQueries(session).list(failed_only=failed, limit=limit)

    found = run(settings, work)
    if as_json:
        print_json([mail_json(mail) for mail in found])
        return
    table = Table("id", "to", "subject", "status", "attempts", "created (UTC)", "last error")
    for mail in found:
        row = mail_json(mail)
        table.add_row(
            str(row["id"]),
            row["to"],
            row["subject"],
            row["status"],
            str(row["attempts"]),
            row["created_at"][:19].replace("T", " "),
            mail.last_error or "-",
        )
    print_table(table)
    err.print(f"{len(found)} mail(s)")


@app.command()
def retry(
    ctx: typer.Context,
    mail_id: Annotated[int, typer.Argument(metavar="ID", help="The mail's id (`mail list`).")],
) -> None:
    """Queue a failed mail again, now, with a fresh count of attempts."""
    settings = settings_of(ctx)
    configure_logging(settings)

    async def work(database: Database) -> OutboxMail | None:
        async with database.session() as session:
            return await OutboxQueries(session).retry(mail_id, now=utc_now())

    mail = run(settings, work)
    if mail is None:
        fail(f"no mail with id {mail_id}")
    if mail.status not in (MailStatus.PENDING.value,):
        fail(f"mail {mail_id} is {_status(mail)}; only failed or pending mails are retried")
    log.info("mail queued again", mail_id=mail_id, actor="cli")
    out.print(f"mail {mail_id} is queued again")
