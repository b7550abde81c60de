"""Opaque cursors: what the service issues reads back; anything else is refused."""

from __future__ import annotations

import base64

import pytest

from app.core.errors import ValidationException
from app.utils.pagination import (
    InvalidCursor,
    cursor_after,
    decode_cursor,
    encode_cursor,
    next_cursor,
)


@pytest.mark.parametrize("last_id", [1, 50, 2**31 - 1, 2**63 - 1])
def test_a_cursor_reads_back_the_id_it_was_made_from(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert decode_cursor(cursor) == last_id
    assert str(last_id) not in cursor  # opaque: clients do not see an id to tweak


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "x" * 65,
        _raw("v2:5"),
        _raw("v1:"),
        _raw("v1:-5"),
        _raw("v1:٣"),
        _raw(f"v1:{2**63}"),
    ],
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


def test_a_bad_cursor_is_a_validation_error_on_its_field() -> None:
    with pytest.raises(ValidationException) as raised:
        cursor_after("garbage")
    assert raised.value.errors == [
        {"field": "cursor", "message": "Not a cursor this service issued"}
    ]
    assert cursor_after(None) is None
    assert next_cursor(None) is None
    assert cursor_after(next_cursor(7)) == 7
