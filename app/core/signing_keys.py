"""Asymmetric signing keys: generation, public JWKs (RFC 7517/7518), thumbprint key ids
(RFC 7638) and the encryption of private keys at rest (AES-256-GCM).

No configuration here: the secret the encryption key is derived from is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# RFC 7518 §3.3 asks for at least 2048 bits; 2048 keeps RS256 signing near 0.3 ms a token.
RSA_KEY_BITS = 2048
# Its own `info` (RFC 5869 §3.2): no other key derived from SECRET_KEY can equal this one.
_HKDF_INFO = b"authsvc/signing-keys/aes-256-gcm/v1"
_NONCE_BYTES = 12

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class KeyDecryptionError(ValueError):
    """A private key that does not decrypt: another SECRET_KEY, or a tampered row."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _b64(value.to_bytes(size, "big"))


def generate_private_key(algorithm: str) -> PrivateKey:
    """A new key for `algorithm` (CPU-heavy for RSA: call it off the event loop)."""
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    raise ValueError(f"not an asymmetric JWT algorithm: {algorithm}")


def _public_members(key: PublicKey) -> dict[str, str]:
    """The required public members of a JWK, as RFC 7638 §3.2 lists them."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}
    numbers_rsa = key.public_numbers()
    return {"e": _uint(numbers_rsa.e), "kty": "RSA", "n": _uint(numbers_rsa.n)}


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 SHA-256 thumbprint: a key id that names exactly this public key."""
    members = json.dumps(_public_members(key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(members.encode()).digest())


def public_jwk(key: PublicKey, *, kid: str, algorithm: str) -> dict[str, str]:
    """The public JWK that verifiers fetch: only public parameters, never `d`, `p`, `q`..."""
    return {**_public_members(key), "kid": kid, "alg": algorithm, "use": "sig"}


def public_key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """Rebuild a public key from the JWK this module wrote; raises ValueError otherwise."""
    kty = jwk.get("kty")
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    if kty == "EC" and jwk.get("crv") == "P-256":
        x, y = (int.from_bytes(_unb64(jwk[c]), "big") for c in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if kty == "RSA":
        e, n = (int.from_bytes(_unb64(jwk[c]), "big") for c in ("e", "n"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError("unsupported JWK")


class KeyCipher:
    """Encrypts private keys with AES-256-GCM under a key derived from a secret by HKDF.

    The key id and algorithm are the associated data: a ciphertext copied onto another
    row does not decrypt there.
    """

    def __init__(self, secret: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
        self._aead = AESGCM(hkdf.derive(secret.encode()))

    def encrypt(self, key: PrivateKey, *, kid: str, algorithm: str) -> bytes:
        """`nonce || ciphertext || tag` of the key's PKCS #8 DER encoding."""
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: fine for a few keys a year
        return nonce + self._aead.encrypt(nonce, der, _aad(kid, algorithm))

    def decrypt(self, blob: bytes, *, kid: str, algorithm: str) -> PrivateKey:
        """The private key of a row; raises KeyDecryptionError."""
        try:
            der = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(kid, algorithm))
        except (InvalidTag, ValueError):
            raise KeyDecryptionError(f"signing key {kid} does not decrypt") from None
        # The tag just checked proves this is the DER this service encrypted, of a key it
        # generated: cryptography's check of an RSA key's arithmetic (35 ms a key, at every
        # key ring load of every worker) cannot find anything wrong with it.
        key = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(
            key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        ):
            raise KeyDecryptionError(f"signing key {kid} is of an unknown type")
        return key


def _aad(kid: str, algorithm: str) -> bytes:
    return f"{kid}\x00{algorithm}".encode()
