"""Reading and checking import files: formats, line numbers, every rule, no echoed secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.errors import ValidationException
from app.core.passwords import HashFloor
from app.users.importer import (
    ImportFileError,
    RawRecord,
    check_records,
    detect_format,
    read_records,
)

HASH = "$2b$10$" + "a" * 53
FLOOR = HashFloor(argon2_memory_kib=19_456, argon2_time_cost=2)


def _accept_any(password: str, *, username: str, email: str) -> None:
    return None


def _refuse_all(password: str, *, username: str, email: str) -> None:
    raise ValidationException("Password is too common; choose a less predictable one")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", "csv"), ("a.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl"), ("a", None)],
)
def test_format_follows_the_suffix(name: str, expected: str | None) -> None:
    assert detect_format(Path(name)) == expected


def test_csv_records_carry_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        '\ufeffEmail,Username,password_hash\n"a@x.io","multi\nline",h\n\nb@x.io,bob,h\n',
        encoding="utf-8",
    )

    records = list(read_records(path, "csv"))

    assert [r.line for r in records] == [2, 5]
    assert records[1].fields == {"email": "b@x.io", "username": "bob", "password_hash": "h"}


def test_csv_empty_cells_are_absent_values(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("email,username,password,password_hash\na@x.io,abc,,h\n", encoding="utf-8")

    (record,) = read_records(path, "csv")

    assert record.fields == {"email": "a@x.io", "username": "abc", "password_hash": "h"}


def test_an_empty_csv_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("", encoding="utf-8")

    assert list(read_records(path, "csv")) == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("email,username", "needs email, username and password"),
        ("email,password", "needs email, username and password"),
        ("email,username,password,password", "appears twice"),
        ("email,username,password,role", "unknown column(s) role"),
    ],
)
def test_a_bad_csv_header_fails_the_file(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "u.csv"
    path.write_text(header + "\n", encoding="utf-8")

    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(read_records(path, "csv"))


def test_an_unterminated_quote_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text('email,username,password\na@x.io,"abc,pw\n', encoding="utf-8")

    records = list(read_records(path, "csv"))

    assert len(records) == 1
    assert records[0].fields is None
    assert records[0].line == 2


def test_a_file_that_is_not_utf8_fails_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"email": "caf\xe9@x.io"}\n')

    with pytest.raises(ImportFileError, match="not UTF-8"):
        list(read_records(path, "jsonl"))


def test_an_unreadable_path_fails_as_a_whole(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        list(read_records(tmp_path, "jsonl"))


def test_json_lines_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    row = {"email": "a@x.io", "username": "abc", "password": None, "password_hash": "h"}
    path.write_text("\n" + json.dumps(row) + "\n\n", encoding="utf-8")

    (record,) = read_records(path, "jsonl")

    assert record.line == 2
    assert record.fields == {"email": "a@x.io", "username": "abc", "password_hash": "h"}


def test_check_records_keeps_good_rows_and_explains_bad_ones() -> None:
    records = [
        RawRecord(2, {"email": "Ann@Example.com", "username": "ann", "password_hash": HASH}),
        RawRecord(3, {"email": "bob@example.com", "username": "bob"}),
        RawRecord(4, {"email": "cy@example.com", "username": "cy", "password_hash": "$1$md5"}),
        RawRecord(5, {"email": "ANN@example.com", "username": "ann2", "password_hash": HASH}),
        RawRecord(6, {"email": "dee@example.com", "username": "ANN", "password_hash": HASH}),
        RawRecord(7, None, "not valid JSON"),
    ]

    checked = check_records(records, check_password=_accept_any, hash_floor=FLOOR)

    assert [(row.line, row.email) for row in checked.rows] == [(2, "ann@example.com")]
    assert [str(e) for e in checked.errors] == [
        "line 3: give exactly one of password or password_hash",
        "line 4: username: String should have at least 3 characters",
        "line 5: email is already on line 2",
        "line 6: username is already on line 2",
        "line 7: not valid JSON",
    ]
    assert checked.total == 6


def test_check_records_applies_the_password_policy_without_echoing_the_password() -> None:
    secret = "hunter2-but-longer"
    records = [RawRecord(2, {"email": "a@x.io", "username": "abc", "password": secret})]

    checked = check_records(records, check_password=_refuse_all, hash_floor=FLOOR)

    assert checked.rows == []
    assert (
        str(checked.errors[0])
        == "line 2: password: Password is too common; choose a less predictable one"
    )
    assert secret not in str(checked.errors[0])


def test_check_records_reports_a_hash_it_cannot_keep() -> None:
    records = [
        RawRecord(2, {"email": "a@x.io", "username": "abc", "password_hash": "$2b$31$" + "a" * 53})
    ]

    checked = check_records(records, check_password=_accept_any, hash_floor=FLOOR)

    assert str(checked.errors[0]) == "line 2: password_hash: bcrypt cost must be between 4 and 16"


def test_check_records_refuses_hashes_cheaper_than_the_services_own_with_their_line() -> None:
    cheap_argon2 = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
    records = [
        RawRecord(2, {"email": "a@x.io", "username": "abc", "password_hash": HASH}),
        RawRecord(3, {"email": "b@x.io", "username": "bcd", "password_hash": "$2b$04$" + "a" * 53}),
        RawRecord(4, {"email": "c@x.io", "username": "cde", "password_hash": cheap_argon2}),
    ]

    checked = check_records(records, check_password=_accept_any, hash_floor=FLOOR)

    assert [row.line for row in checked.rows] == [2]
    assert [str(e).split(" is ")[0] for e in checked.errors] == [
        "line 3: password_hash: bcrypt cost 4",
        "line 4: password_hash: argon2 m=8,t=1",
    ]
    assert all("too cheap to keep" in str(e) for e in checked.errors)


def test_check_records_uses_the_registration_email_rules() -> None:
    records = [
        RawRecord(2, {"email": "Ann <ann@x.io>", "username": "ann", "password_hash": HASH}),
        RawRecord(3, {"email": "\u0430nn@x.io", "username": "ann3", "password_hash": HASH}),
        RawRecord(4, {"email": "\uff42en@x.io", "username": "ben", "password_hash": HASH}),
        RawRecord(5, {"email": "ben@x.io", "username": "ben2", "password_hash": HASH}),
    ]

    checked = check_records(records, check_password=_accept_any, hash_floor=FLOOR)

    assert [(row.line, row.email) for row in checked.rows] == [(4, "ben@x.io")]
    messages = [str(e) for e in checked.errors]
    assert messages[0].startswith("line 2: email: A display name")
    assert messages[1].startswith("line 3: email: An email address may not mix scripts")
    assert messages[2] == "line 5: email is already on line 4"


def test_an_unquoted_argon2_hash_in_csv_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        "email,username,password_hash\na@x.io,abc,$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA\n",
        encoding="utf-8",
    )

    (record,) = read_records(path, "csv")

    assert record.fields is None
    assert record.error is not None
    assert record.error.startswith("5 fields, the header has 3")
    assert "quote it" in record.error
