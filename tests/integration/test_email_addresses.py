"""One spelling per address: registration, login, the CLI and the import agree on it, and
look-alike addresses never make a second account (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Boolean, Integer, String, column, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.migrate import downgrade_on_connection, upgrade_on_connection
from app.models.base import UTCDateTime
from app.models.user import User
from tests.support import PASSWORD, CliInvoker, assert_error

# Written with escapes: the point of these addresses is that they look like others.
DECOMPOSED = "jose\u0301@example.com"  # e + COMBINING ACUTE ACCENT
COMPOSED = "jos\u00e9@example.com"  # é as one code point
FULLWIDTH_A = "\uff41lice@example.com"  # FULLWIDTH LATIN SMALL LETTER A
CYRILLIC_A = "\u0430lice@example.com"  # CYRILLIC SMALL LETTER A, then Latin
GREEK_ALPHA = "\u03b1lice@example.com"  # GREEK SMALL LETTER ALPHA, then Latin


async def _register(client: httpx.AsyncClient, email: str, username: str) -> httpx.Response:
    return await client.post(
        "/auth/register", json={"email": email, "username": username, "password": PASSWORD}
    )


async def _login(client: httpx.AsyncClient, **identifier: str) -> httpx.Response:
    return await client.post("/auth/login", json={**identifier, "password": PASSWORD})


@pytest.mark.parametrize("typed_at_login", [DECOMPOSED, COMPOSED, "JOSE\u0301@EXAMPLE.COM"])
async def test_a_decomposed_address_registers_and_logs_in_however_it_is_typed(
    client: httpx.AsyncClient, typed_at_login: str
) -> None:
    registered = await _register(client, DECOMPOSED, "jose")
    assert registered.status_code == 201, registered.text
    assert registered.json()["user"]["email"] == COMPOSED

    response = await _login(client, email=typed_at_login)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "email",
    [
        "Alice <alice@example.com>",
        "<alice@example.com>",
        "alice@example.com (Alice)",
        "(work)alice@example.com",
        '"alice"@example.com',
        "alice@[192.0.2.1]",
    ],
)
async def test_only_the_plain_address_form_is_accepted_at_registration(
    client: httpx.AsyncClient, email: str
) -> None:
    body = assert_error(await _register(client, email, "alice"), 400, "VALIDATION_ERROR")

    assert [e["field"] for e in body["errors"]] == ["email"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("look_alike", [FULLWIDTH_A, "ALICE@EXAMPLE.COM", "alice\uff20example.com"])
async def test_a_compatibility_look_alike_is_the_same_account(
    client: httpx.AsyncClient, look_alike: str
) -> None:
    assert (await _register(client, "alice@example.com", "alice")).status_code == 201

    assert_error(await _register(client, look_alike, "alice2"), 409, "USER_ALREADY_EXISTS")
    response = await _login(client, email=look_alike)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "alice@example.com"


@pytest.mark.parametrize("email", [CYRILLIC_A, GREEK_ALPHA, "alice@ex\u0430mple.com"])
async def test_an_address_mixing_scripts_in_one_part_is_refused(
    client: httpx.AsyncClient, email: str
) -> None:
    body = assert_error(await _register(client, email, "mallory"), 400, "VALIDATION_ERROR")

    errors = body["errors"]
    assert isinstance(errors, list)
    [error] = errors
    assert error["field"] == "email"
    assert "may not mix scripts" in error["message"]


@pytest.mark.parametrize(
    "email",
    [
        "\u0430\u0441\u0435@example.com",  # all Cyrillic
        "\u5c71\u7530\u305f\u308d\u3046@example.jp",  # Han and Hiragana, as Japanese is written
        "\u00fcber@b\u00fccher.example",
    ],
)
async def test_addresses_in_one_writing_system_are_accepted(
    client: httpx.AsyncClient, email: str
) -> None:
    assert (await _register(client, email, "someone")).status_code == 201
    assert (await _login(client, email=email)).status_code == 200


async def test_an_idn_domain_is_one_domain_in_unicode_and_in_punycode(
    client: httpx.AsyncClient,
) -> None:
    registered = await _register(client, "ann@xn--bcher-kva.example", "ann")
    assert registered.json()["user"]["email"] == "ann@b\u00fccher.example"

    again = await _register(client, "ann@B\u00fccher.example", "ann2")
    assert_error(again, 409, "USER_ALREADY_EXISTS")
    assert (await _login(client, email="ann@b\u00fccher.example")).status_code == 200


async def test_a_username_typed_in_fullwidth_letters_logs_in(client: httpx.AsyncClient) -> None:
    assert (await _register(client, "bob@example.com", "bob")).status_code == 201

    response = await _login(client, username="\uff42\uff4f\uff42")

    assert response.status_code == 200, response.text


async def test_cli_create_stores_the_canonical_address(
    run_cli: CliInvoker, client: httpx.AsyncClient
) -> None:
    result = await run_cli(
        "users", "create", "--email", "JOSE\u0301@Example.com", "--username", "jose",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert (await _login(client, email=DECOMPOSED)).status_code == 200
    assert_error(await _register(client, COMPOSED, "jose2"), 409, "USER_ALREADY_EXISTS")


@pytest.mark.parametrize("email", [CYRILLIC_A, "Alice <alice@example.com>"])
async def test_cli_create_refuses_what_registration_refuses(
    run_cli: CliInvoker, email: str
) -> None:
    result = await run_cli(
        "users", "create", "--email", email, "--username", "mallory",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--email" in result.output


async def test_cli_import_stores_canonical_addresses_and_finds_look_alikes(
    run_cli: CliInvoker, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert (await _register(client, "alice@example.com", "alice")).status_code == 201
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        f"email,username,password\n{DECOMPOSED},jose,{PASSWORD}\n{FULLWIDTH_A},alice2,{PASSWORD}\n",
        encoding="utf-8",
    )

    result = await run_cli("users", "import", str(csv_file), "--on-duplicate", "skip")

    assert result.exit_code == 0, result.output
    assert "imported 1, skipped 1" in result.stdout
    assert (await _login(client, email=COMPOSED)).status_code == 200


# The users table as revision 0002 left it: later revisions add columns the ORM model has.
USERS_AT_0002 = table(
    "users",
    column("id", Integer),
    column("username", String),
    column("username_normalized", String),
    column("email", String),
    column("hashed_password", String),
    column("is_active", Boolean),
    column("created_at", UTCDateTime),
    column("updated_at", UTCDateTime),
)


async def test_migration_0003_re_normalises_stored_addresses(
    database: Database, db_session: AsyncSession
) -> None:
    """Rows stored the old way (NFC, lower case only) get the canonical form; a look-alike
    of an existing account and an address no longer accepted are left as they were."""
    old_rows = {
        1: "jose\u0301@example.com",
        2: "\uff41lice@example.com",
        3: "alice@example.com",
        4: "\u0430lice@example.com",
        5: "bob@xn--bcher-kva.example",
    }
    async with database.engine.begin() as connection:
        await connection.run_sync(downgrade_on_connection, "0002")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        await connection.execute(
            insert(USERS_AT_0002),
            [
                {
                    "id": user_id,
                    "username": f"user{user_id}",
                    "username_normalized": f"user{user_id}",
                    "email": email,
                    "hashed_password": "x",
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for user_id, email in old_rows.items()
            ],
        )
        await connection.run_sync(upgrade_on_connection)

    rows = await db_session.execute(select(User.id, User.email).order_by(User.id))
    assert dict(rows.all()) == {
        1: COMPOSED,
        2: "\uff41lice@example.com",  # alice@example.com is user 3's
        3: "alice@example.com",
        4: "\u0430lice@example.com",  # mixes scripts: kept, reachable by username only
        5: "bob@b\u00fccher.example",
    }
