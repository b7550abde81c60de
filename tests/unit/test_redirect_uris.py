"""The rules of a registered redirect URI and of matching a presented one (RFC 6749
§3.1.2, RFC 8252 §7)."""

from __future__ import annotations

import pytest

from app.oauth2.clients import origin_of, redirect_uri_matches, redirect_uri_problem


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback",
        "https://app.example.com:8443/cb?tenant=1",
        "http://localhost/cb",
        "http://127.0.0.1:8765/cb",
        "http://[::1]:5000/cb",
        "com.example.app:/oauth2redirect",
    ],
)
def test_allowed_redirect_uris(uri: str) -> None:
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("https://app.example.com/cb#frag", "fragment"),
        ("http://app.example.com/cb", "loopback"),
        ("http://127.0.0.2/cb", "loopback"),
        ("https://user:pw@app.example.com/cb", "credentials"),
        ("javascript:alert(1)", "private-use"),
        ("myapp:/cb", "private-use"),
        ("ftp://example.com/cb", "private-use"),
        ("https:///cb", "host"),
        ("https://app.example.com/c b", "spaces"),
        ("", "1-2048"),
    ],
)
def test_refused_redirect_uris(uri: str, why: str) -> None:
    problem = redirect_uri_problem(uri)
    assert problem is not None
    assert why in problem


def test_matching_is_exact_except_a_loopback_port() -> None:
    registered = ["https://app.example.com/cb", "http://127.0.0.1/cb"]
    assert redirect_uri_matches(registered, "https://app.example.com/cb")
    assert not redirect_uri_matches(registered, "https://app.example.com/cb/")
    assert not redirect_uri_matches(registered, "https://app.example.com/cb?x=1")
    assert not redirect_uri_matches(registered, "https://APP.example.com/cb")
    assert not redirect_uri_matches(registered, "https://app.example.com:443/cb")
    # RFC 8252 §7.3: a native app listens on whatever port is free.
    assert redirect_uri_matches(registered, "http://127.0.0.1:49152/cb")
    assert not redirect_uri_matches(registered, "http://127.0.0.1:49152/other")
    assert not redirect_uri_matches(registered, "http://localhost:49152/cb")
    assert not redirect_uri_matches(registered, "http://127.0.0.1:49152/cb#x")
    assert not redirect_uri_matches(registered, "http://evil@127.0.0.1:49152/cb")


def test_origins_of_redirect_uris() -> None:
    assert origin_of("https://App.example.com:8443/cb?x") == "https://app.example.com:8443"
    assert origin_of("http://127.0.0.1:5000/cb") == "http://127.0.0.1:5000"
    assert origin_of("com.example.app:/cb") is None
