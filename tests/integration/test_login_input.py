"""Login identifiers no account can have still get the ordinary answer."""

from __future__ import annotations

import httpx
import pytest

from tests.support import UserFactory, assert_error


@pytest.mark.parametrize("field", ["username", "email"])
async def test_an_identifier_with_a_nul_character_is_401_not_500(
    client: httpx.AsyncClient, user_factory: UserFactory, field: str
) -> None:
    user = await user_factory()
    identifier = (user.username if field == "username" else user.email) + "\x00"

    response = await client.post("/auth/login", json={field: identifier, "password": user.password})

    assert_error(response, 401, "INVALID_CREDENTIALS")
