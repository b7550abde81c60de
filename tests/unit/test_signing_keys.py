"""Key generation, public JWKs, thumbprints and the encryption of private keys at rest."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.core.signing_keys import (
    KeyCipher,
    KeyDecryptionError,
    generate_private_key,
    public_jwk,
    public_key_from_jwk,
    thumbprint,
)

ALGORITHMS = ["EdDSA", "ES256", "RS256"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_public_jwk_round_trips_and_has_no_private_member(algorithm: str) -> None:
    key = generate_private_key(algorithm)
    jwk = public_jwk(key.public_key(), kid="k1", algorithm=algorithm)

    assert not PRIVATE_MEMBERS & set(jwk)
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == ("k1", algorithm, "sig")
    rebuilt = public_key_from_jwk(jwk)
    token = jwt.encode({"sub": "1"}, key, algorithm=algorithm)
    assert jwt.decode(token, rebuilt, algorithms=[algorithm]) == {"sub": "1"}
    # PyJWT reads the same JWK as the same key.
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[algorithm]) == {"sub": "1"}


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 7638 §3.1's example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
            "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
            "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
            "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
    }
    assert thumbprint(public_key_from_jwk(jwk)) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_an_unknown_jwk_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        public_key_from_jwk({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(ValueError, match="not an asymmetric"):
        generate_private_key("HS256")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_private_key_decrypts_only_under_its_secret_and_on_its_row(algorithm: str) -> None:
    key = generate_private_key(algorithm)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cipher = KeyCipher("s" * 48)

    blob = cipher.encrypt(key, kid="k1", algorithm=algorithm)

    assert der not in blob
    decrypted = cipher.decrypt(blob, kid="k1", algorithm=algorithm)
    assert thumbprint(decrypted.public_key()) == thumbprint(key.public_key())
    with pytest.raises(KeyDecryptionError):
        KeyCipher("t" * 48).decrypt(blob, kid="k1", algorithm=algorithm)
    with pytest.raises(KeyDecryptionError):
        cipher.decrypt(blob, kid="k2", algorithm=algorithm)  # copied onto another row
    with pytest.raises(KeyDecryptionError):
        cipher.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), kid="k1", algorithm=algorithm)


def test_two_encryptions_of_one_key_differ() -> None:
    key = generate_private_key("EdDSA")
    cipher = KeyCipher("s" * 48)

    first = cipher.encrypt(key, kid="k", algorithm="EdDSA")
    second = cipher.encrypt(key, kid="k", algorithm="EdDSA")

    assert first != second  # a fresh nonce each time
    assert json.dumps(public_jwk(key.public_key(), kid="k", algorithm="EdDSA"))
