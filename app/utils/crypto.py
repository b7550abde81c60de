"""AES-GCM for small secrets at rest, under keys derived from SECRET_KEY.

Each use of the one configured secret derives its own key with its own `info`
(`app.utils.keyed_hash.derive_key`, HKDF-SHA256, RFC 5869), so a key of
one purpose is never the key of another (RFC 5869 §3.2). AES-GCM (NIST SP 800-38D) with a
random 96-bit nonce per encryption; the associated data binds a ciphertext to its row, so
one copied into another row (another user's) does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
# Stored ciphertexts name their format, so a later scheme can be told apart and migrated.
_VERSION = "v1"


class DecryptionError(ValueError):
    """A ciphertext that is malformed, of another key, or moved from another row."""


class SecretBox:
    """Encrypts short secrets with AES-256-GCM; the text form is `v1.<base64url>`."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, associated_data)
        return f"{_VERSION}.{base64.urlsafe_b64encode(sealed).decode('ascii')}"

    def decrypt(self, token: str, *, associated_data: bytes) -> bytes:
        """The plaintext; raises DecryptionError for anything that does not authenticate."""
        version, _, encoded = token.partition(".")
        if version != _VERSION:
            raise DecryptionError("unknown ciphertext version")
        try:
            sealed = base64.urlsafe_b64decode(encoded.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            raise DecryptionError("malformed ciphertext") from None
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        if len(nonce) != _NONCE_BYTES:
            raise DecryptionError("malformed ciphertext")
        try:
            return self._aead.decrypt(nonce, body, associated_data)
        except InvalidTag:
            raise DecryptionError("ciphertext does not authenticate") from None
