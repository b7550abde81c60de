"""Which address a request comes from: the socket, unless trusted proxies forwarded it."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from app.utils.client_ip import resolve_client_ip

PROXIES = [ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("192.0.2.9", ["198.51.100.1"], "192.0.2.9"),  # untrusted peer: header ignored
        ("10.0.0.5", [], "10.0.0.5"),  # trusted proxy that forwarded nothing
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["203.0.113.66, 198.51.100.1, 10.1.1.1"], "198.51.100.1"),
        ("10.0.0.5", ["203.0.113.66", "198.51.100.1"], "198.51.100.1"),  # repeated headers
        ("10.0.0.5", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),  # only proxies: the farthest one
        ("10.0.0.5", ["198.51.100.1, not-an-ip"], "10.0.0.5"),  # garbage stops the walk
        ("2001:db8::1", ["2001:db8::2, 2a00:1450::1"], "2a00:1450::1"),
        ("unix-socket", ["198.51.100.1"], "unix-socket"),
    ],
)
def test_resolve_client_ip(peer: str, forwarded_for: list[str], expected: str) -> None:
    assert resolve_client_ip(peer, forwarded_for, PROXIES) == expected


def test_without_a_peer_there_is_no_client_address() -> None:
    assert resolve_client_ip(None, ["198.51.100.1"], PROXIES) is None
