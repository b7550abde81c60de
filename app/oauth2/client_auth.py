"""HTTP Basic client credentials (RFC 7617) as OAuth2 sends them (RFC 6749 §2.3.1)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

MAX_CREDENTIAL_CHARS = 256


class MalformedCredentials(ValueError):
    """An Authorization header that is not `Basic base64(id:secret)`."""


def parse_basic(authorization: str) -> tuple[str, str]:
    """(client_id, client_secret) of a Basic header; raises MalformedCredentials.

    §2.3.1: both are form-encoded before they are joined by a colon, so they are decoded
    after the split (a secret may then contain a colon, the id may not).
    """
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 2 * MAX_CREDENTIAL_CHARS:
        raise MalformedCredentials("not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedCredentials("bad base64") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise MalformedCredentials("no colon")
    return unquote(client_id), unquote(secret)
