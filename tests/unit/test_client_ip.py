"""Which address a request comes from: the socket, unless trusted proxies forwarded it."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from app.utils.client_ip import NO_ADDRESS_BUCKET, client_bucket, is_loopback, resolve_client_ip

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
        ("::ffff:192.0.2.9", ["198.51.100.1"], "192.0.2.9"),  # IPv4-mapped: the IPv4 address
        ("::ffff:10.0.0.5", ["::ffff:198.51.100.1"], "198.51.100.1"),  # a mapped proxy, too
        ("2001:DB8:0:0::7", [], "2001:db8::7"),  # one spelling per address
    ],
)
def test_resolve_client_ip(peer: str, forwarded_for: list[str], expected: str) -> None:
    assert resolve_client_ip(peer, forwarded_for, PROXIES) == expected


def test_without_a_peer_there_is_no_client_address() -> None:
    assert resolve_client_ip(None, ["198.51.100.1"], PROXIES) is None


def test_a_unix_socket_peer_is_a_proxy_only_when_trusted() -> None:
    assert resolve_client_ip(None, ["198.51.100.1"], PROXIES) is None
    trusted = resolve_client_ip(None, ["203.0.113.5, 10.1.1.1"], PROXIES, trust_unix_socket=True)
    assert trusted == "203.0.113.5"
    assert resolve_client_ip(None, [], PROXIES, trust_unix_socket=True) is None
    assert resolve_client_ip(None, ["garbage"], PROXIES, trust_unix_socket=True) is None


@pytest.mark.parametrize(
    ("client_ip", "bucket"),
    [
        ("192.0.2.9", "192.0.2.9"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("testclient", "testclient"),
        (None, NO_ADDRESS_BUCKET),
    ],
)
def test_the_client_bucket_is_the_ipv4_address_or_the_ipv6_64(
    client_ip: str | None, bucket: str
) -> None:
    assert client_bucket(client_ip) == bucket


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.200.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("testclient", False),
        (None, False),  # a Unix socket: the proxy behind it forwards anybody
    ],
)
def test_loopback_peers(peer: str | None, loopback: bool) -> None:
    assert is_loopback(peer) is loopback
