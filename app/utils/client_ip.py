"""The client's address: the socket peer, or what trusted proxies say it forwarded for.

`X-Forwarded-For` is read right to left and only while each hop is a trusted proxy, so a
client cannot choose its own address by sending the header (RFC 7239 §8.3 on the risk;
OWASP ASVS 5.0 §4.1.3 on trusting intermediaries' headers).

A Unix-socket peer has no address. It is trusted as a proxy only when the operator says so
(`unix` in TRUSTED_PROXIES); otherwise such a request has no client address, and the
throttle counts every one of them in one shared bucket rather than not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

# Every per-client throttle counts requests without a client address here, together.
NO_ADDRESS_BUCKET = "no-address"
# Providers hand a customer (at least) a /64 (RFC 6177); its 2^64 addresses are one client.
IPV6_CLIENT_PREFIX = 64


def parse_ip(value: str) -> IPAddress | None:
    """The address, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 one."""
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def resolve_client_ip(
    peer: str | None,
    forwarded_for: Iterable[str],
    trusted_proxies: Sequence[Network],
    *,
    trust_unix_socket: bool = False,
) -> str | None:
    """The client address of a request whose socket peer is `peer` (None: a Unix socket).

    `forwarded_for` holds the values of every `X-Forwarded-For` header, in order. Hops are
    walked from the nearest one; the first that is not a trusted proxy is the client. A
    malformed hop stops the walk at the last address known to be good.
    """
    current: IPAddress | None
    if peer is None:
        if not trust_unix_socket:
            return None
        current = None
    else:
        current = parse_ip(peer)
        if current is None:
            return peer
        if not _trusted(current, trusted_proxies):
            return str(current)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, trusted_proxies):
            break
    return None if current is None else str(current)


def client_bucket(client_ip: str | None) -> str:
    """The key per-client limits count under: an IPv4 address, an IPv6 /64, or the one
    shared bucket of requests without an address (fail closed, never unthrottled)."""
    if client_ip is None:
        return NO_ADDRESS_BUCKET
    address = parse_ip(client_ip)
    if address is None:
        return client_ip
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def is_loopback(peer: str | None) -> bool:
    """Whether the socket peer is this host's loopback interface (a Unix socket is not:
    behind it sits a proxy that forwards anybody)."""
    address = parse_ip(peer) if peer is not None else None
    return address is not None and address.is_loopback
