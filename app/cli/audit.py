"""`audit`: read the audit trail from the command line, newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from app.admin.schemas import AuditEventRead
from app.audit.log import EVENT_PATTERN, AuditLog
from app.cli.context import configure_logging, run, settings_of
from app.cli.output import err, fail, print_json, print_table
from app.database import Database
from app.users.service import UserService
from app.utils.pagination import MAX_LIMIT

_AGO = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime) -> datetime:
    """`30m`, `24h`, `7d` (that long ago) or an ISO 8601 timestamp (UTC when zoneless)."""
    ago = _AGO.match(value)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "an ISO 8601 timestamp or a duration such as 30m, 24h, 7d", param_hint="'--since'"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option("--user", help="A user id, email or username (a deleted user: the id)."),
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="e.g. login.failed")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time, or 30m / 24h / 7d ago.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Read the audit trail (sign-ins, failures, sessions ended, account changes)."""
    settings = settings_of(ctx)
    if event is not None and not re.match(EVENT_PATTERN, event):
        raise typer.BadParameter("an event name such as login.failed", param_hint="'--event'")
    start = parse_since(since, datetime.now(UTC)) if since else None
    configure_logging(settings)

    async def work(database: Database) -> list[dict[str, Any]] | None:
        async with database.session() as session:
            user_id: int | None = None
            if user is not None:
                if user.isascii() and user.isdigit():
                    user_id = int(user)
                else:
                    found = await UserService(session).get_by_identifier(user)
                    if found is None:
                        return None
                    user_id = found.id
            log = AuditLog(session)
            events: list[dict[str, Any]] = []
            after: int | None = None
            while len(events) < limit:
                page = await log.page(
                    user_id=user_id,
                    event=event,
                    since=start,
                    limit=min(MAX_LIMIT, limit - len(events)),
                    after=after,
                )
                events.extend(
                    AuditEventRead.model_validate(e).model_dump(mode="json") for e in page.items
                )
                if page.next_after is None:
                    break
                after = page.next_after
            return events

    events = run(settings, work)
    if events is None:
        fail(f"no user with email or username {user!r} (a deleted user: pass the id)")
    if as_json:
        print_json(events)
        return
    table = Table("at (UTC)", "event", "user", "actor", "ip", "details")
    for item in events:
        table.add_row(
            item["at"][:19].replace("T", " "),
            item["event"],
            _cell(item["user_id"]),
            _cell(item["actor_id"]),
            _cell(item["ip"]),
            ", ".join(f"{k}={v}" for k, v in item["details"].items()) or "-",
        )
    print_table(table)
    err.print(f"{len(events)} event(s)")


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
