"""Opaque keyset cursors: `next_cursor` names the last row a page showed, by its id.

Keyset rather than offset pagination: rows inserted while a client pages through a list
neither repeat nor push others off a page. The cursor is opaque to clients (base64url of a
versioned token), so its form can change without breaking them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.core.errors import ValidationException

T = TypeVar("T")

_PREFIX = "v1:"
MAX_CURSOR_LENGTH = 64
# Ids are at most 64-bit on every backend; a larger "id" would make the driver fail.
_MAX_ID = 2**63 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the id to continue after (None on the last page)."""

    items: Sequence[T]
    next_after: int | None


class InvalidCursor(ValueError):
    """The cursor was not issued by this service (or by an incompatible version)."""


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor points after; raises InvalidCursor for anything else."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("not a cursor") from None
    digits = raw[len(_PREFIX) :]
    if not raw.startswith(_PREFIX) or not digits.isdigit() or len(digits) > 19:
        raise InvalidCursor("not a cursor")
    value = int(digits)
    if value > _MAX_ID:
        raise InvalidCursor("not a cursor")
    return value


def cursor_after(cursor: str | None, *, field: str = "cursor") -> int | None:
    """The id a client's cursor continues after; raises ValidationException naming `field`."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor:
        message = "Not a cursor this service issued"
        raise ValidationException(message, errors=[{"field": field, "message": message}]) from None


def next_cursor(after: int | None) -> str | None:
    """The `next_cursor` of a page: None on the last one."""
    return encode_cursor(after) if after is not None else None
