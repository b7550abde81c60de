"""The client's address: the socket peer, or what trusted proxies say it forwarded for.

`X-Forwarded-For` is read right to left and only while each hop is a trusted proxy, so a
client cannot choose its own address by sending the header (RFC 7239 §8.3 on the risk;
OWASP ASVS 5.0 §4.1.3 on trusting intermediaries' headers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network


def _parse(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def resolve_client_ip(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: Sequence[Network]
) -> str | None:
    """The client address of a request whose socket peer is `peer`.

    `forwarded_for` holds the values of every `X-Forwarded-For` header, in order. Hops are
    walked from the nearest one; the first that is not a trusted proxy is the client. A
    malformed hop stops the walk at the last address known to be good.
    """
    if peer is None:
        return None
    current = _parse(peer)
    if current is None or not _trusted(current, trusted_proxies):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, trusted_proxies):
            break
    return str(current)
