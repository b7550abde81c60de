"""Reading and checking a file of users brought over from another system; knows no CLI.

Two formats: CSV with a header row, and JSON Lines (one object per line). Each record has
`email`, `username` and exactly one of `password` (hashed with the configured scheme on
import) or `password_hash` (a bcrypt or argon2 hash no cheaper than the service's own, kept
as it is and upgraded at the user's next login). Every record is checked before anything is
written, and every problem is reported with the line it starts on. Valid rows are then
written in batches (`write_users`), one transaction each.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.core.errors import (
    CircuitBreakerOpenException,
    DatabaseException,
    UserAlreadyExistsException,
    ValidationException,
)
from app.core.passwords import HashFloor, PasswordHasher, imported_hash_problem
from app.database import Database, describe_database_error
from app.models.schemas import PASSWORD_INPUT_MAX, Email, Username
from app.models.user import normalize_email, normalize_username
from app.users.service import NewUser, UserService

ImportFormat = Literal["csv", "jsonl"]
COLUMNS = ("email", "username", "password", "password_hash")
_SUFFIXES: dict[str, ImportFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

PasswordCheck = Callable[..., None]
"""`AuthService.check_password`: (password, *, username, email), raises ValidationException."""


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, CSV header); the message is one line."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    line: int
    fields: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    email: str
    username: str
    password: str | None
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class CheckedFile:
    """The rows that passed every check, and one error per row that did not."""

    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)] | None = None
    password_hash: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> _Row:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give exactly one of password or password_hash")
        return self


def detect_format(path: Path) -> ImportFormat | None:
    """The format named by the file's suffix (.csv, .jsonl, .ndjson), or None."""
    return _SUFFIXES.get(path.suffix.lower())


def read_records(path: Path, fmt: ImportFormat) -> Iterator[RawRecord]:
    """Records of the file with the line each starts on; raises ImportFileError."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if fmt == "csv":
                yield from _csv_records(handle)
            else:
                yield from _jsonl_records(handle)
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path.name} is not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror}") from None


def _csv_records(lines: Iterable[str]) -> Iterator[RawRecord]:
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ImportFileError(f"line 1: unreadable CSV header ({error})") from None
    if header is None:
        return
    columns = [name.strip().lower() for name in header]
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ImportFileError(
            f"line 1: unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS)}"
        )
    missing = [name for name in ("email", "username") if name not in columns]
    if missing or not {"password", "password_hash"} & set(columns):
        raise ImportFileError(
            "line 1: the header needs email, username and password and/or password_hash"
        )
    if len(set(columns)) != len(columns):
        raise ImportFileError("line 1: a column appears twice in the header")
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RawRecord(line, None, f"unreadable CSV ({error})")
            line = reader.line_num + 1
            continue
        if values and any(v.strip() for v in values):
            if len(values) != len(columns):
                problem = f"{len(values)} fields, the header has {len(columns)}"
                if any(v.startswith("$argon2") for v in values):
                    problem += ' (an argon2 hash contains commas: quote it, "$argon2id$...")'
                yield RawRecord(line, None, problem)
            else:
                # CSV has no null: an empty cell is an absent value.
                yield RawRecord(line, {k: v for k, v in zip(columns, values, strict=True) if v})
        line = reader.line_num + 1


def _jsonl_records(lines: Iterable[str]) -> Iterator[RawRecord]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield RawRecord(number, None, "not valid JSON")
            continue
        if not isinstance(value, dict):
            yield RawRecord(number, None, "not a JSON object")
            continue
        yield RawRecord(number, {k: v for k, v in value.items() if v not in (None, "")})


def check_records(
    records: Iterable[RawRecord], *, check_password: PasswordCheck, hash_floor: HashFloor
) -> CheckedFile:
    """Validate every record; duplicates within the file are errors of the later line.

    Passwords go through the same policy as registration (`check_password`); hashes must be
    ones the service can verify and no cheaper than `hash_floor` (`imported_hash_problem`).
    Never echoes a secret.
    """
    checked = CheckedFile()
    emails: dict[str, int] = {}
    usernames: dict[str, int] = {}
    for record in records:
        if record.fields is None:
            checked.errors.append(RowError(record.line, record.error or "unreadable"))
            continue
        problem, row = _check_one(record, check_password, hash_floor)
        if row is None:
            checked.errors.append(RowError(record.line, problem or "invalid"))
            continue
        email_key, name_key = normalize_email(row.email), normalize_username(row.username)
        if email_key in emails:
            checked.errors.append(
                RowError(row.line, f"email is already on line {emails[email_key]}")
            )
            continue
        if name_key in usernames:
            checked.errors.append(
                RowError(row.line, f"username is already on line {usernames[name_key]}")
            )
            continue
        emails[email_key] = row.line
        usernames[name_key] = row.line
        checked.rows.append(row)
    return checked


def _check_one(
    record: RawRecord, check_password: PasswordCheck, hash_floor: HashFloor
) -> tuple[str, ImportRow | None]:
    try:
        parsed = _Row.model_validate(record.fields)
    except ValidationError as error:
        return _describe(error), None
    if parsed.password_hash is not None:
        problem = imported_hash_problem(parsed.password_hash, floor=hash_floor)
        if problem:
            return f"password_hash: {problem}", None
    if parsed.password is not None:
        try:
            check_password(parsed.password, username=parsed.username, email=parsed.email)
        except ValidationException as error:
            return f"password: {error.detail}", None
    row = ImportRow(
        line=record.line,
        email=parsed.email,
        username=parsed.username,
        password=parsed.password,
        password_hash=parsed.password_hash,
    )
    return "", row


def _describe(error: ValidationError) -> str:
    # Built from each error's location and message only: pydantic's str() would echo the
    # input, and a row's input may be a password.
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        location = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            message = f"unknown field; expected {', '.join(COLUMNS)}"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


# ----------------------------------------------------------------------------- writing


class OnDuplicate(StrEnum):
    skip = "skip"
    fail = "fail"


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    stopped: str | None = None


def sort_out(
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


async def write_users(
    database: Database,
    hasher: PasswordHasher,
    rows: list[ImportRow],
    summary: ImportSummary,
    *,
    batch_size: int,
    on_duplicate: OnDuplicate,
    on_batch: Callable[[int], None] = lambda rows: None,
) -> None:
    """Insert in batches of one transaction each; stop at the first batch that fails.

    `on_batch` hears the size of each batch written. A failed batch is rolled back and
    recorded in `summary.stopped`; nothing is raised.
    """
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
            on_batch(len(batch))
            continue
        summary.failed = len(rows) - summary.imported - summary.skipped
        summary.stopped = (
            f"{reason}; that batch was rolled back and the import stopped after"
            f" {summary.imported} row(s)"
        )
        return
