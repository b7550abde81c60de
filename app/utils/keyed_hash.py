"""Keys derived from SECRET_KEY, and keyed hashes that stand in for what must not be kept.

`derive_key` is HKDF-SHA256 (RFC 5869) with no salt: SECRET_KEY is already a uniformly
random key, and the `info` label alone separates the uses (logs, throttle keys, and any
AES-GCM key another module derives), so a key derived for one never works for another.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


def derive_key(secret: str | bytes, info: bytes, *, length: int = KEY_BYTES) -> bytes:
    """A `length`-byte key for the purpose named by `info`; raises ValueError on empty input."""
    material = secret.encode() if isinstance(secret, str) else secret
    if not material or not info:
        raise ValueError("derive_key needs a secret and an info label")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


class KeyedHash:
    """HMAC-SHA256 under a derived key: equal inputs give equal digests, but without the key
    nobody can test a guess (a plain SHA-256 of an email is reversed with a list of emails)."""

    __slots__ = ("_hex_chars", "_key")

    def __init__(self, key: bytes, *, hex_chars: int = 64) -> None:
        if len(key) < 16 or not 16 <= hex_chars <= 64:
            raise ValueError("KeyedHash needs a key of 16+ bytes and 16-64 hex characters")
        self._key = key
        self._hex_chars = hex_chars

    @classmethod
    def from_secret(cls, secret: str | bytes, info: bytes, *, hex_chars: int = 64) -> KeyedHash:
        return cls(derive_key(secret, info), hex_chars=hex_chars)

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[: self._hex_chars]

    def __repr__(self) -> str:  # never the key
        return f"KeyedHash(hex_chars={self._hex_chars})"
