"""What of a User-Agent is kept: printable, at most 256 characters, nothing when empty."""

from __future__ import annotations

import pytest

from app.utils.request_context import USER_AGENT_MAX, clean_user_agent, current_client


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("curl/8.5.0", "curl/8.5.0"),
        ("evil\r\nSet-Cookie: x\x00", "evilSet-Cookie: x"),
        ("a" * 1000, "a" * USER_AGENT_MAX),
    ],
)
def test_user_agents_are_kept_printable_and_short(raw: str | None, kept: str | None) -> None:
    assert clean_user_agent(raw) == kept


def test_outside_a_request_the_client_is_unknown() -> None:
    client = current_client()
    assert (client.ip, client.user_agent) == (None, None)
