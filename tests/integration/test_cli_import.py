"""`authsvc users import` on real databases: kept hashes, login upgrades, bad rows, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import argon2
import bcrypt
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.models.user import User
from app.users.importer import ImportRow, ImportSummary, OnDuplicate, write_users
from app.wiring import build_hasher
from tests.support import PASSWORD, CliInvoker, UserFactory

OLD_PASSWORD = "legacy system passphrase 42"


def _bcrypt(password: str, prefix: bytes = b"2b") -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10, prefix=prefix)).decode()


def _argon2(password: str, kind: argon2.Type) -> str:
    return argon2.PasswordHasher(time_cost=1, memory_cost=2048, type=kind).hash(password)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _hashes(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(User.username, User.hashed_password))
    await session.commit()  # end the read, so the next call sees later commits
    return {row[0]: row[1] for row in rows}


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


async def test_imported_bcrypt_hashes_log_in_and_are_upgraded_to_argon2id(
    run_cli: CliInvoker, client: httpx.AsyncClient, db_session: AsyncSession, tmp_path: Path
) -> None:
    csv_file = _write(
        tmp_path / "users.csv",
        [
            "email,username,password_hash",
            f"ann@example.com,ann,{_bcrypt(OLD_PASSWORD)}",
            f"ben@example.com,ben,{_bcrypt(OLD_PASSWORD, b'2a')}",
        ],
    )

    result = await run_cli("users", "import", str(csv_file))

    assert result.exit_code == 0, result.output
    assert "imported 2, skipped 0, failed 0" in result.stdout
    before = await _hashes(db_session)
    assert all(h.startswith(("$2a$", "$2b$")) for h in before.values())  # kept as they were
    for name in ("ann", "ben"):
        assert (await _login(client, name, "wrong password entirely")).status_code == 401
        assert (await _login(client, name, OLD_PASSWORD)).status_code == 200
    after = await _hashes(db_session)
    assert all(h.startswith("$argon2id$") for h in after.values())
    for name in ("ann", "ben"):  # and the upgraded hash still holds the same password
        assert (await _login(client, name, OLD_PASSWORD)).status_code == 200


@pytest.mark.parametrize("kind", [argon2.Type.I, argon2.Type.ID])
async def test_imported_argon2_hashes_log_in_and_are_upgraded(
    run_cli: CliInvoker,
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    tmp_path: Path,
    kind: argon2.Type,
) -> None:
    legacy = _argon2(OLD_PASSWORD, kind)  # other parameters than the service's
    jsonl = _write(
        tmp_path / "users.jsonl",
        [json.dumps({"email": "cat@example.com", "username": "cat", "password_hash": legacy})],
    )

    result = await run_cli("users", "import", str(jsonl))

    assert result.exit_code == 0, result.output
    assert (await _hashes(db_session))["cat"] == legacy
    assert (await _login(client, "cat", OLD_PASSWORD)).status_code == 200
    upgraded = (await _hashes(db_session))["cat"]
    assert upgraded.startswith("$argon2id$")
    assert upgraded != legacy


async def test_imported_plain_passwords_are_hashed_with_the_configured_scheme(
    run_cli: CliInvoker, client: httpx.AsyncClient, db_session: AsyncSession, tmp_path: Path
) -> None:
    csv_file = _write(
        tmp_path / "users.csv",
        [
            "username,email,password",
            f"dan,dan@example.com,{PASSWORD}",
            f"eve,eve@example.com,{PASSWORD}",
        ],
    )

    result = await run_cli("users", "import", str(csv_file), "--batch-size", "1")

    assert result.exit_code == 0, result.output
    stored = await _hashes(db_session)
    assert all(h.startswith("$argon2id$") for h in stored.values())
    assert PASSWORD not in stored.values()
    assert (await _login(client, "eve", PASSWORD)).status_code == 200


async def test_bad_rows_are_all_reported_with_their_lines_and_nothing_is_imported(
    run_cli: CliInvoker, db_session: AsyncSession, tmp_path: Path
) -> None:
    good = _bcrypt(OLD_PASSWORD)
    csv_file = _write(
        tmp_path / "users.csv",
        [
            "email,username,password,password_hash",  # line 1
            f"fay@example.com,fay,,{good}",  # 2: fine
            f"not-an-email,gus,,{good}",  # 3: bad email
            'hal@example.com,"hal',  # 4: a quoted field spanning two lines ...
            f'continued",,{good}',  # 5: ... so the username is invalid
            f"ivy@example.com,ivy,{PASSWORD},{good}",  # 6: both secrets
            "jon@example.com,jon,,$2b$04$tooshort",  # 7: not a hash
            "kay@example.com,kay,kay-is-my-password,",  # 8: contains the username
            f"FAY@example.com,fay2,,{good}",  # 9: email repeats line 2
            f"lou@example.com,lou,,{good},extra",  # 10: too many fields
            "",  # 11: blank, ignored
            f"max@example.com,max,,{good}",  # 12: fine
        ],
    )

    result = await run_cli("users", "import", str(csv_file))

    assert result.exit_code == 1
    reported = [line for line in result.stderr.splitlines() if line.startswith("users.csv: line")]
    assert [line.split(":")[1].strip() for line in reported] == [
        "line 3", "line 4", "line 6", "line 7", "line 8", "line 9", "line 10"
    ]  # fmt: skip
    assert "email" in reported[0]
    assert "username" in reported[1]
    assert "exactly one of password or password_hash" in reported[2]
    assert "password_hash" in reported[3]
    assert "must not contain the username" in reported[4]
    assert "already on line 2" in reported[5]
    assert "kay-is-my-password" not in result.output  # a secret is never echoed
    assert "nothing was imported" in result.stderr
    assert "imported 0, skipped 0, failed 7" in result.stdout
    assert await _hashes(db_session) == {}


async def test_hashes_cheaper_than_the_services_own_are_refused_with_their_lines(
    run_cli: CliInvoker, db_session: AsyncSession, tmp_path: Path
) -> None:
    # The test service hashes with argon2 m=1024 KiB, t=1 (tests/support.py).
    cheap_bcrypt = bcrypt.hashpw(OLD_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    cheap_argon2 = argon2.PasswordHasher(time_cost=1, memory_cost=512).hash(OLD_PASSWORD)
    csv_file = _write(
        tmp_path / "users.csv",
        [
            "email,username,password_hash",
            f"amy@example.com,amy,{_bcrypt(OLD_PASSWORD)}",
            f"bo@example.com,bob,{cheap_bcrypt}",
            f'cy@example.com,cyd,"{cheap_argon2}"',
        ],
    )

    result = await run_cli("users", "import", str(csv_file))

    assert result.exit_code == 1
    assert "users.csv: line 3: password_hash: bcrypt cost 4 is below 10" in result.stderr
    assert "users.csv: line 4: password_hash: argon2 m=512,t=1 is cheaper" in result.stderr
    assert "line 2:" not in result.stderr
    assert "imported 0, skipped 0, failed 2" in result.stdout
    assert await _hashes(db_session) == {}


async def test_bad_json_lines_are_reported_with_their_lines(
    run_cli: CliInvoker, db_session: AsyncSession, tmp_path: Path
) -> None:
    good = _bcrypt(OLD_PASSWORD)
    jsonl = _write(
        tmp_path / "users.ndjson",
        [
            json.dumps({"email": "amy@example.com", "username": "amy", "password_hash": good}),
            "{not json",
            "",
            json.dumps(["a", "list"]),
            json.dumps(
                {"email": "bo@example.com", "username": "bob", "password_hash": good, "admin": True}
            ),
            json.dumps({"email": "cy@example.com", "username": "cy", "password_hash": good}),
            json.dumps({"email": 7, "username": "dee", "password": PASSWORD}),
        ],
    )

    result = await run_cli("users", "import", str(jsonl))

    assert result.exit_code == 1
    assert "users.ndjson: line 2: not valid JSON" in result.stderr
    assert "users.ndjson: line 4: not a JSON object" in result.stderr
    assert "users.ndjson: line 5: admin: unknown field" in result.stderr
    assert "users.ndjson: line 6: username: String should have at least 3 characters" in (
        result.stderr
    )
    assert "users.ndjson: line 7: email" in result.stderr
    assert "line 1:" not in result.stderr
    assert await _hashes(db_session) == {}


async def test_existing_users_fail_the_import_by_default_and_nothing_is_written(
    run_cli: CliInvoker, user_factory: UserFactory, db_session: AsyncSession, tmp_path: Path
) -> None:
    await user_factory(username="taken", email="taken@example.com")
    good = _bcrypt(OLD_PASSWORD)
    csv_file = _write(
        tmp_path / "users.csv",
        [
            "email,username,password_hash",
            f"new@example.com,newbie,{good}",
            f"TAKEN@example.com,someone,{good}",
            f"other@example.com,Taken,{good}",
        ],
    )

    result = await run_cli("users", "import", str(csv_file))

    assert result.exit_code == 1
    assert "line 3: email is already registered" in result.stderr
    assert "line 4: username is already registered" in result.stderr
    assert set(await _hashes(db_session)) == {"taken"}


async def test_existing_users_are_skipped_on_request_and_a_rerun_is_harmless(
    run_cli: CliInvoker, user_factory: UserFactory, db_session: AsyncSession, tmp_path: Path
) -> None:
    await user_factory(username="taken", email="taken@example.com")
    good = _bcrypt(OLD_PASSWORD)
    rows = [f"user{n}@example.com,user{n},{good}" for n in range(5)]
    csv_file = _write(
        tmp_path / "users.csv",
        ["email,username,password_hash", *rows, f"taken@example.com,someone,{good}"],
    )

    first = await run_cli(
        "users", "import", str(csv_file), "--on-duplicate", "skip", "--batch-size", "2"
    )
    again = await run_cli("users", "import", str(csv_file), "--on-duplicate", "skip")

    assert first.exit_code == 0, first.output
    assert "imported 5, skipped 1, failed 0" in first.stdout
    assert again.exit_code == 0
    assert "imported 0, skipped 6, failed 0" in again.stdout
    assert len(await _hashes(db_session)) == 6


async def test_dry_run_checks_every_row_and_writes_nothing(
    run_cli: CliInvoker, db_session: AsyncSession, tmp_path: Path
) -> None:
    csv_file = _write(
        tmp_path / "users.csv",
        ["email,username,password_hash", f"amy@example.com,amy,{_bcrypt(OLD_PASSWORD)}"],
    )

    result = await run_cli("users", "import", str(csv_file), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would import 1, skipped 0, failed 0" in result.stdout
    assert await _hashes(db_session) == {}


async def test_a_file_of_unknown_format_is_a_usage_error(
    run_cli: CliInvoker, tmp_path: Path
) -> None:
    path = _write(tmp_path / "users.txt", ["email,username,password_hash"])

    result = await run_cli("users", "import", str(path))

    assert result.exit_code == 2
    assert "--format" in result.output


async def test_an_explicit_format_overrides_the_suffix(
    run_cli: CliInvoker, db_session: AsyncSession, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "export.txt",
        ["email,username,password_hash", f"amy@example.com,amy,{_bcrypt(OLD_PASSWORD)}"],
    )

    result = await run_cli("users", "import", str(path), "--format", "csv")

    assert result.exit_code == 0, result.output
    assert set(await _hashes(db_session)) == {"amy"}


async def test_an_unknown_csv_column_fails_the_whole_file(
    run_cli: CliInvoker, tmp_path: Path
) -> None:
    path = _write(tmp_path / "users.csv", ["email,username,pasword", "a@example.com,abc,x"])

    result = await run_cli("users", "import", str(path))

    assert result.exit_code == 1
    assert "unknown column(s) pasword" in result.stderr


async def test_a_missing_file_is_a_usage_error(run_cli: CliInvoker, tmp_path: Path) -> None:
    result = await run_cli("users", "import", str(tmp_path / "absent.csv"))

    assert result.exit_code == 2


async def test_a_batch_that_meets_a_concurrent_registration_is_rolled_back_and_stops(
    database: Database, user_factory: UserFactory
) -> None:
    """A name taken after the checks (a registration racing the import) stops the import."""
    good = _bcrypt(OLD_PASSWORD)
    rows = [
        ImportRow(line, f"u{line}@example.com", f"user{line}", None, good) for line in (2, 3, 4, 5)
    ]
    await user_factory(username="user4")  # registered "while" the import ran
    summary = ImportSummary()
    written: list[int] = []

    await write_users(
        database,
        build_hasher(database.settings),
        rows,
        summary,
        batch_size=2,
        on_duplicate=OnDuplicate.fail,
        on_batch=written.append,
    )

    assert (summary.imported, summary.failed) == (2, 2)
    assert summary.stopped is not None
    assert summary.stopped.startswith("lines 4-5:")
    assert "rolled back" in summary.stopped
    assert written == [2]  # the first batch only
    async with database.session() as session:
        names = set((await session.execute(select(User.username))).scalars())
    assert names == {"user2", "user3", "user4"}  # user5 went with its rolled-back batch


async def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(
    run_cli: CliInvoker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _bcrypt(OLD_PASSWORD)
    rows = [f"user{n}@example.com,user{n},{good}" for n in range(3)]
    csv_file = _write(tmp_path / "users.csv", ["email,username,password_hash", *rows])

    piped = await run_cli("users", "import", str(csv_file), "--dry-run")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat the output as a terminal
    on_terminal = await run_cli("users", "import", str(csv_file))

    assert "checking" not in piped.stderr
    assert on_terminal.exit_code == 0, on_terminal.output
    assert "checking" in on_terminal.stderr
    assert "importing" in on_terminal.stderr
    assert "3/3" in on_terminal.stderr
