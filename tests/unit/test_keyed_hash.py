"""Keys derived from SECRET_KEY (HKDF) and the keyed hashes built on them."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.utils.keyed_hash import KeyedHash, derive_key

SECRET = "unit-test-secret-key-that-is-long-enough-0123456789"


def test_a_derived_key_is_stable_and_of_the_asked_length() -> None:
    assert derive_key(SECRET, b"purpose") == derive_key(SECRET.encode(), b"purpose")
    assert len(derive_key(SECRET, b"purpose")) == 32
    assert len(derive_key(SECRET, b"aes-256-gcm", length=32)) == 32
    assert len(derive_key(SECRET, b"purpose", length=16)) == 16


def test_each_info_label_and_each_secret_gives_another_key() -> None:
    keys = {
        derive_key(SECRET, b"log"),
        derive_key(SECRET, b"throttle"),
        derive_key(SECRET + "x", b"log"),
    }
    assert len(keys) == 3
    assert SECRET.encode() not in b"".join(keys)


@pytest.mark.parametrize(("secret", "info"), [("", b"log"), (SECRET, b"")])
def test_a_key_needs_a_secret_and_a_label(secret: str, info: bytes) -> None:
    with pytest.raises(ValueError, match="secret and an info label"):
        derive_key(secret, info)


def test_the_keyed_hash_is_hmac_sha256_under_the_derived_key() -> None:
    digest = KeyedHash.from_secret(SECRET, b"log")("alice@example.com")
    expected = hmac.new(derive_key(SECRET, b"log"), b"alice@example.com", hashlib.sha256)
    assert digest == expected.hexdigest()
    # A list of addresses hashed with plain SHA-256 does not find it.
    assert digest != hashlib.sha256(b"alice@example.com").hexdigest()


def test_a_truncated_keyed_hash_keeps_its_prefix_and_equal_inputs_match() -> None:
    short = KeyedHash.from_secret(SECRET, b"log", hex_chars=16)
    full = KeyedHash.from_secret(SECRET, b"log")
    assert short("bob") == short("bob") == full("bob")[:16]
    assert short("bob") != short("bobby")
    assert short("\udcff lone surrogate")  # any str a JSON body can carry


def test_a_keyed_hash_never_shows_its_key() -> None:
    hasher = KeyedHash(b"k" * 32, hex_chars=16)
    assert "k" * 8 not in repr(hasher)
    assert repr(hasher) == "KeyedHash(hex_chars=16)"


@pytest.mark.parametrize(("key", "chars"), [(b"short", 16), (b"k" * 32, 8), (b"k" * 32, 65)])
def test_weak_keys_and_odd_lengths_are_refused(key: bytes, chars: int) -> None:
    with pytest.raises(ValueError, match="KeyedHash needs"):
        KeyedHash(key, hex_chars=chars)
