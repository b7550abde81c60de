"""A client id is an argument of the operator's commands: it never reads as an option."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from app.oauth2.clients import new_client_id


def test_an_id_that_would_start_with_a_dash_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws: Iterator[str] = iter(["-uCcdzsR3Ldv4Aa5xHFa_A", "-x", "uCcdzsR3Ldv4Aa5xHFa_A"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda nbytes: next(draws))
    assert new_client_id() == "uCcdzsR3Ldv4Aa5xHFa_A"


def test_ids_are_22_url_safe_characters_and_differ() -> None:
    ids = {new_client_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(c.isalnum() or c in "-_" for i in ids for c in i)
